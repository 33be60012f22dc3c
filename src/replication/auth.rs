//! Authenticated replication (opt-in, rowsync extra): with a
//! `replication_secret`, rowsync replicators sign every REPLICATE request
//! and whole-DB upload, and rowsync servers refuse what is unsigned (401,
//! unless it comes from an address the operator lists: the Swift peers of
//! a mixed cluster) or wrongly signed, stale or replayed (403).
//!
//! The signature is HMAC-SHA256 over
//! `METHOD \n path \n sha256(body) \n timestamp \n nonce`, sent as
//! `X-Rowsync-Signature` (hex) with `X-Rowsync-Timestamp` (seconds since
//! the epoch), `X-Rowsync-Nonce` and `X-Rowsync-Content-Sha256`. The
//! receiver checks the signature against its secret and its secondary
//! secret (rotation) in constant time, the timestamp against a window
//! either side of its clock, the nonce against those it saw within the
//! window, and the body against the digest once it has read it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::{ReplicationAuthConf, Secret};

pub const H_SIGNATURE: &str = "x-rowsync-signature";
pub const H_TIMESTAMP: &str = "x-rowsync-timestamp";
pub const H_NONCE: &str = "x-rowsync-nonce";
pub const H_DIGEST: &str = "x-rowsync-content-sha256";

type HmacSha256 = Hmac<Sha256>;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("unsigned replication request")]
    Unsigned,
    #[error("bad replication signature")]
    BadSignature,
    #[error("replication signature outside the time window")]
    Expired,
    #[error("replayed replication request")]
    Replayed,
    #[error("request body does not match its signed digest")]
    Digest,
}

impl AuthError {
    /// 401 for a request without credentials, 403 for bad ones.
    pub fn status(self) -> u16 {
        match self {
            AuthError::Unsigned => 401,
            _ => 403,
        }
    }

    /// The `reason` label of the refusal counter.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Unsigned => "unsigned",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::Replayed => "replayed",
            AuthError::Digest => "digest",
        }
    }
}

/// Hex SHA-256 of a body.
pub fn body_digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The HMAC of a request's parts (`None` never happens: HMAC takes keys
/// of every length).
fn mac(
    secret: &Secret,
    method: &str,
    path: &str,
    digest: &str,
    ts: &str,
    nonce: &str,
) -> Option<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(secret.expose()).ok()?;
    for part in [method, path, digest, ts, nonce] {
        m.update(part.as_bytes());
        m.update(b"\n");
    }
    Some(m)
}

/// The headers that sign a request (sender side).
pub fn sign(
    secret: &Secret,
    method: &str,
    path: &str,
    digest: &str,
    now: f64,
) -> Vec<(&'static str, String)> {
    let ts = format!("{now:.6}");
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let Some(m) = mac(secret, method, path, digest, &ts, &nonce) else {
        return Vec::new();
    };
    let sig = hex::encode(m.finalize().into_bytes());
    vec![
        (H_TIMESTAMP, ts),
        (H_NONCE, nonce),
        (H_DIGEST, digest.to_string()),
        (H_SIGNATURE, sig),
    ]
}

/// What a request proved: the body digest it signed (to check once the
/// body is read), or nothing (an unsigned request from a listed address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Signed { digest: String },
    UnsignedAllowed,
}

impl Verified {
    /// Checks a body read in full against the signed digest.
    pub fn check_body(&self, body: &[u8]) -> Result<(), AuthError> {
        self.check_digest(&body_digest(body))
    }

    /// Checks the hex digest of a body (computed while streaming it).
    pub fn check_digest(&self, digest: &str) -> Result<(), AuthError> {
        match self {
            Verified::Signed { digest: want } if !want.eq_ignore_ascii_case(digest) => {
                Err(AuthError::Digest)
            }
            _ => Ok(()),
        }
    }
}

/// The receiving side: secrets, window, listed unsigned peers, and the
/// nonces seen within the window.
#[derive(Debug)]
pub struct Verifier {
    conf: ReplicationAuthConf,
    /// nonce -> the time it stops mattering (timestamp + window).
    seen: Mutex<HashMap<String, f64>>,
}

/// Nonces remembered at most; past it the oldest half is dropped (a replay
/// of a dropped nonce is still refused once its timestamp leaves the
/// window).
const MAX_NONCES: usize = 1 << 20;

impl Verifier {
    /// `None` unless a secret is configured.
    pub fn new(conf: &ReplicationAuthConf) -> Option<Verifier> {
        conf.enabled().then(|| Verifier {
            conf: conf.clone(),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Checks a request's headers (`header(name)` looks one up, lower
    /// case) before its body is read. `peer` is the client's address, when
    /// known; `now` the receiver's clock.
    pub fn verify<'h>(
        &self,
        method: &str,
        path: &str,
        header: impl Fn(&str) -> Option<&'h str>,
        peer: Option<IpAddr>,
        now: f64,
    ) -> Result<Verified, AuthError> {
        let Some(sig) = header(H_SIGNATURE) else {
            let listed =
                peer.is_some_and(|ip| self.conf.unsigned_from.iter().any(|b| b.contains(ip)));
            return if listed {
                Ok(Verified::UnsignedAllowed)
            } else {
                Err(AuthError::Unsigned)
            };
        };
        let (Some(ts), Some(nonce), Some(digest)) =
            (header(H_TIMESTAMP), header(H_NONCE), header(H_DIGEST))
        else {
            return Err(AuthError::BadSignature);
        };
        let Ok(sig) = hex::decode(sig.trim()) else {
            return Err(AuthError::BadSignature);
        };
        let ok = [self.conf.secret.as_ref(), self.conf.secondary.as_ref()]
            .into_iter()
            .flatten()
            .any(|s| {
                mac(s, method, path, digest, ts, nonce)
                    .is_some_and(|m| m.verify_slice(&sig).is_ok())
            });
        if !ok {
            return Err(AuthError::BadSignature);
        }
        let Some(t) = ts.trim().parse::<f64>().ok().filter(|t| t.is_finite()) else {
            return Err(AuthError::BadSignature);
        };
        if (now - t).abs() > self.conf.window {
            return Err(AuthError::Expired);
        }
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if seen.len() >= MAX_NONCES {
            seen.retain(|_, until| *until >= now);
            if seen.len() >= MAX_NONCES {
                let mut untils: Vec<f64> = seen.values().copied().collect();
                untils.sort_by(f64::total_cmp);
                let cut = untils[untils.len() / 2];
                seen.retain(|_, until| *until > cut);
            }
        }
        if seen
            .insert(nonce.to_string(), t + self.conf.window)
            .is_some()
        {
            return Err(AuthError::Replayed);
        }
        Ok(Verified::Signed {
            digest: digest.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IpBlock;

    fn conf(secret: &str, secondary: Option<&str>, unsigned: &[&str]) -> ReplicationAuthConf {
        ReplicationAuthConf {
            secret: Some(Secret::new(secret.as_bytes())),
            secondary: secondary.map(|s| Secret::new(s.as_bytes())),
            unsigned_from: unsigned.iter().filter_map(|s| IpBlock::parse(s)).collect(),
            window: 60.0,
        }
    }

    fn lookup<'h>(h: &'h [(&'static str, String)]) -> impl Fn(&str) -> Option<&'h str> {
        move |name| h.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    const A: &str = "secret-number-one-0123";
    const B: &str = "secret-number-two-4567";

    #[test]
    fn signed_requests_pass_once() {
        let v = Verifier::new(&conf(A, None, &[])).unwrap();
        let body = b"[\"sync\"]";
        let h = sign(
            &Secret::new(A),
            "REPLICATE",
            "/sda/1/abc",
            &body_digest(body),
            1000.0,
        );
        let ok = v
            .verify("REPLICATE", "/sda/1/abc", lookup(&h), None, 1010.0)
            .unwrap();
        assert_eq!(ok.check_body(body), Ok(()));
        assert_eq!(ok.check_body(b"[\"other\"]"), Err(AuthError::Digest));
        // The same headers again: a replay.
        assert_eq!(
            v.verify("REPLICATE", "/sda/1/abc", lookup(&h), None, 1011.0),
            Err(AuthError::Replayed)
        );
    }

    #[test]
    fn tampered_expired_and_unsigned_are_refused() {
        let v = Verifier::new(&conf(A, None, &["10.0.0.0/24"])).unwrap();
        let h = sign(
            &Secret::new(A),
            "REPLICATE",
            "/sda/1/abc",
            &body_digest(b"x"),
            1000.0,
        );
        assert_eq!(
            v.verify("REPLICATE", "/sda/2/abc", lookup(&h), None, 1000.0),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            v.verify("REPLICATE", "/sda/1/abc", lookup(&h), None, 1061.0),
            Err(AuthError::Expired)
        );
        let wrong = sign(
            &Secret::new(B),
            "REPLICATE",
            "/sda/1/abc",
            &body_digest(b"x"),
            1000.0,
        );
        assert_eq!(
            v.verify("REPLICATE", "/sda/1/abc", lookup(&wrong), None, 1000.0),
            Err(AuthError::BadSignature)
        );
        let none: Vec<(&'static str, String)> = Vec::new();
        assert_eq!(
            v.verify("REPLICATE", "/sda/1/abc", lookup(&none), None, 1000.0),
            Err(AuthError::Unsigned)
        );
        assert_eq!(
            v.verify(
                "REPLICATE",
                "/sda/1/abc",
                lookup(&none),
                "10.0.1.1".parse().ok(),
                1000.0
            ),
            Err(AuthError::Unsigned)
        );
        assert_eq!(
            v.verify(
                "REPLICATE",
                "/sda/1/abc",
                lookup(&none),
                "10.0.0.7".parse().ok(),
                1000.0
            ),
            Ok(Verified::UnsignedAllowed)
        );
        assert_eq!(AuthError::Unsigned.status(), 401);
        assert_eq!(AuthError::Replayed.status(), 403);
    }

    #[test]
    fn two_secrets_during_rotation() {
        let v = Verifier::new(&conf(B, Some(A), &[])).unwrap();
        for s in [A, B] {
            let h = sign(
                &Secret::new(s),
                "REPLICATE",
                "/d/1/h",
                &body_digest(b""),
                5.0,
            );
            assert!(
                v.verify("REPLICATE", "/d/1/h", lookup(&h), None, 5.0)
                    .is_ok(),
                "{s}"
            );
        }
    }

    #[test]
    fn secrets_never_print() {
        let c = conf(A, Some(B), &[]);
        let text = format!("{c:?} {:?}", Verifier::new(&c));
        assert!(!text.contains(A) && !text.contains(B), "{text}");
    }
}
