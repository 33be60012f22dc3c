//! Path hashing, partitions, storage directories and the rolling `chexor`
//! DB hash.

use md5::{Digest, Md5};

/// The `[swift-hash]` prefix and suffix of a cluster (`swift.conf`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashPathConfig {
    pub prefix: Vec<u8>,
    pub suffix: Vec<u8>,
}

impl HashPathConfig {
    pub fn new(prefix: impl Into<Vec<u8>>, suffix: impl Into<Vec<u8>>) -> Self {
        HashPathConfig {
            prefix: prefix.into(),
            suffix: suffix.into(),
        }
    }

    /// The raw MD5 digest of `prefix + "/" + components + suffix`.
    ///
    /// Empty `container` / `object` count as absent, as in Swift. An object
    /// without a container is an error.
    pub fn hash_path_raw(
        &self,
        account: &str,
        container: Option<&str>,
        object: Option<&str>,
    ) -> Result<[u8; 16], HashPathError> {
        let container = container.filter(|c| !c.is_empty());
        let object = object.filter(|o| !o.is_empty());
        if object.is_some() && container.is_none() {
            return Err(HashPathError::ObjectWithoutContainer);
        }
        let mut h = Md5::new();
        h.update(&self.prefix);
        h.update(b"/");
        h.update(account.as_bytes());
        for part in [container, object].into_iter().flatten() {
            h.update(b"/");
            h.update(part.as_bytes());
        }
        h.update(&self.suffix);
        Ok(h.finalize().into())
    }

    /// Lowercase hex `hash_path`.
    pub fn hash_path(
        &self,
        account: &str,
        container: Option<&str>,
        object: Option<&str>,
    ) -> Result<String, HashPathError> {
        Ok(hex::encode(self.hash_path_raw(account, container, object)?))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashPathError {
    #[error("container is required if object is provided")]
    ObjectWithoutContainer,
    #[error("invalid hash {0:?}: expected 32 hex digits")]
    BadHash(String),
    #[error("part power {0} out of range 0..=32")]
    BadPartPower(u32),
}

/// The partition of a raw digest: its first 4 bytes (big-endian) shifted
/// right by `32 - part_power`.
pub fn partition_of_digest(digest: &[u8; 16], part_power: u32) -> Result<u32, HashPathError> {
    if part_power > 32 {
        return Err(HashPathError::BadPartPower(part_power));
    }
    let top = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    let shift = 32 - part_power;
    Ok(if shift >= 32 { 0 } else { top >> shift })
}

/// The partition of a hex hash.
pub fn partition_of_hash(hash_hex: &str, part_power: u32) -> Result<u32, HashPathError> {
    let digest = parse_hash(hash_hex)?;
    partition_of_digest(&digest, part_power)
}

/// Parses a 32-hex-digit hash.
pub fn parse_hash(hash_hex: &str) -> Result<[u8; 16], HashPathError> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(hash_hex, &mut out)
        .map_err(|_| HashPathError::BadHash(hash_hex.into()))?;
    Ok(out)
}

/// Is `s` a 32-digit lowercase hex hash, as used for DB names?
pub fn is_valid_hash(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `storage_directory(datadir, part, hash)` = `datadir/part/hash[-3:]/hash`.
pub fn storage_directory(datadir: &str, partition: u32, hash: &str) -> String {
    let suffix = &hash[hash.len().saturating_sub(3)..];
    format!("{datadir}/{partition}/{suffix}/{hash}")
}

/// Swift's rolling DB hash: `old XOR md5(name + "-" + timestamp)`.
pub fn chexor(old_hex: &str, name: &str, timestamp: &str) -> Result<String, HashPathError> {
    let mut acc = parse_hash(old_hex)?;
    let mut h = Md5::new();
    h.update(name.as_bytes());
    h.update(b"-");
    h.update(timestamp.as_bytes());
    let d: [u8; 16] = h.finalize().into();
    for (a, b) in acc.iter_mut().zip(d.iter()) {
        *a ^= b;
    }
    Ok(hex::encode(acc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chexor_is_order_independent_and_reversible() {
        let z = "00000000000000000000000000000000";
        let a = chexor(z, "a", "1").unwrap();
        let ab = chexor(&a, "b", "2").unwrap();
        let ba = chexor(&chexor(z, "b", "2").unwrap(), "a", "1").unwrap();
        assert_eq!(ab, ba);
        assert_eq!(chexor(&ab, "b", "2").unwrap(), a);
        assert!(chexor("zz", "a", "1").is_err());
    }

    #[test]
    fn object_needs_container() {
        let c = HashPathConfig::new("p", "s");
        assert!(c.hash_path("a", None, Some("o")).is_err());
        assert_eq!(
            c.hash_path("a", Some(""), None).unwrap(),
            c.hash_path("a", None, None).unwrap()
        );
    }
}
