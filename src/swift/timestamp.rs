//! Swift timestamps (`swift.common.utils.timestamp`).
//!
//! A timestamp is a number of 10 µs units (`raw`) plus an optional 64-bit
//! offset. The forms:
//! - normal: `%016.05f` (`1700000000.00000`);
//! - internal: normal, or `normal_%016x` when the offset is non-zero;
//! - short: normal, or `normal_%x` when the offset is non-zero.
//!
//! Ordering is by `(raw, offset)`, which is the order of the internal strings.

use std::cmp::Ordering;
use std::fmt;

/// Largest offset (16 hex digits).
pub const MAX_OFFSET: u64 = u64::MAX;
/// Timestamps must be strictly below this many seconds.
pub const MAX_SECONDS: f64 = 10_000_000_000.0;
const PRECISION: f64 = 1e-5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp {value:?}: {reason}")]
pub struct TimestampError {
    pub value: String,
    pub reason: &'static str,
}

fn err(value: &str, reason: &'static str) -> TimestampError {
    TimestampError {
        value: value.chars().take(64).collect(),
        reason,
    }
}

/// A Swift timestamp: `raw` units of 10 µs and an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timestamp {
    raw: i64,
    offset: u64,
}

impl Timestamp {
    /// The zero timestamp (`0000000000.00000`).
    pub const ZERO: Timestamp = Timestamp { raw: 0, offset: 0 };

    /// Builds a timestamp from raw 10 µs units and an offset, checking bounds.
    pub fn from_raw(raw: i64, offset: u64) -> Result<Timestamp, TimestampError> {
        if raw < 0 {
            return Err(err(&raw.to_string(), "timestamp cannot be negative"));
        }
        if raw >= 1_000_000_000_000_000 {
            return Err(err(&raw.to_string(), "timestamp too large"));
        }
        Ok(Timestamp { raw, offset })
    }

    /// From float seconds, rounded to 10 µs as Python does.
    pub fn from_f64(seconds: f64) -> Result<Timestamp, TimestampError> {
        if !seconds.is_finite() {
            return Err(err(&seconds.to_string(), "not a finite number"));
        }
        let raw = (seconds / PRECISION).round_ties_even();
        if raw < 0.0 {
            return Err(err(&seconds.to_string(), "timestamp cannot be negative"));
        }
        if seconds >= MAX_SECONDS || raw >= 1e15 {
            return Err(err(&seconds.to_string(), "timestamp too large"));
        }
        Ok(Timestamp {
            raw: raw as i64,
            offset: 0,
        })
    }

    /// The current time.
    pub fn now() -> Timestamp {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Timestamp::from_f64(secs).unwrap_or(Timestamp::ZERO)
    }

    /// Parses Swift's string forms: a float, optionally followed by `_<hex offset>`.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        let (float_part, hex_part) = match text.split_once('_') {
            Some((f, h)) => (f, Some(h)),
            None => (text, None),
        };
        let offset = match hex_part {
            None | Some("") => 0,
            Some(h) => {
                if h.contains('_') {
                    return Err(err(text, "invalid hex offset"));
                }
                if h.len() > 16 {
                    return Err(err(text, "hex part too long"));
                }
                u64::from_str_radix(h, 16).map_err(|_| err(text, "invalid hex offset"))?
            }
        };
        let seconds = parse_python_float(float_part).ok_or_else(|| err(text, "not a number"))?;
        let mut ts = Timestamp::from_f64(seconds).map_err(|e| err(text, e.reason))?;
        ts.offset = offset;
        Ok(ts)
    }

    pub fn raw(&self) -> i64 {
        self.raw
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// This timestamp with another offset.
    pub fn with_offset(self, offset: u64) -> Timestamp {
        Timestamp { offset, ..self }
    }

    /// This timestamp moved by `delta` raw units, without its offset (as
    /// Python's `Timestamp(t.normal, delta=delta)`).
    pub fn add_delta(self, delta: i64) -> Result<Timestamp, TimestampError> {
        let raw = self
            .raw
            .checked_add(delta)
            .ok_or_else(|| err(&delta.to_string(), "delta out of range"))?;
        if raw < 0 {
            return Err(err(&delta.to_string(), "delta makes timestamp negative"));
        }
        Timestamp::from_raw(raw, 0)
    }

    /// Seconds as a float.
    pub fn as_f64(&self) -> f64 {
        self.raw as f64 / 100_000.0
    }

    /// `%016.05f`.
    pub fn normal(&self) -> String {
        format!("{:010}.{:05}", self.raw / 100_000, self.raw % 100_000)
    }

    /// Normal form, plus `_%016x` when the offset is non-zero.
    pub fn internal(&self) -> String {
        if self.offset != 0 {
            format!("{}_{:016x}", self.normal(), self.offset)
        } else {
            self.normal()
        }
    }

    /// Normal form, plus `_%x` when the offset is non-zero.
    pub fn short(&self) -> String {
        if self.offset != 0 {
            format!("{}_{:x}", self.normal(), self.offset)
        } else {
            self.normal()
        }
    }

    /// Whole seconds, rounded up (Last-Modified granularity).
    pub fn ceil_seconds(&self) -> i64 {
        (self.raw + 99_999) / 100_000
    }

    pub fn is_zero(&self) -> bool {
        self.raw == 0 && self.offset == 0
    }

    /// Swift's `Timestamp.isoformat`: UTC, microseconds, no zone
    /// (`2023-11-14T22:13:20.000000`); the offset is not shown.
    pub fn isoformat(&self) -> String {
        let secs = self.raw / 100_000;
        let micros = (self.raw % 100_000) * 10;
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// (year, month, day) of a day count since 1970-01-01 (days >= 0), from
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.raw, self.offset).cmp(&(other.raw, other.offset))
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.internal())
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

/// Python's `float(str)`: surrounding whitespace allowed, decimal or
/// exponent notation; `inf`/`nan` are accepted by Python but rejected later
/// by the bounds checks, so they are simply refused here.
fn parse_python_float(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let valid = body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && body
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.');
    if !valid {
        return None;
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `normalize_timestamp(x)`: the normal form of `Timestamp(x)`.
pub fn normalize_timestamp(text: &str) -> Result<String, TimestampError> {
    Ok(Timestamp::parse(text)?.normal())
}

/// `encode_timestamps(t1, t2, t3)`: `t1.short`, plus signed hex deltas when
/// `t2` or `t3` differ.
pub fn encode_timestamps(t1: Timestamp, t2: Option<Timestamp>, t3: Option<Timestamp>) -> String {
    let mut out = t1.short();
    let Some(t2) = t2 else {
        return out;
    };
    let d2 = t2.raw - t1.raw;
    let d3 = t3.map(|t3| t3.raw - t2.raw);
    if d2 != 0 || d3.is_some_and(|d| d != 0) {
        push_signed_hex(&mut out, d2);
        if let Some(d3) = d3 {
            push_signed_hex(&mut out, d3);
        }
    }
    out
}

fn push_signed_hex(out: &mut String, v: i64) {
    if v < 0 {
        out.push_str(&format!("-{:x}", v.unsigned_abs()));
    } else {
        out.push_str(&format!("+{v:x}"));
    }
}

/// `decode_timestamps(s)`: the data, content-type and metadata timestamps of
/// an encoded `created_at`.
pub fn decode_timestamps(
    encoded: &str,
) -> Result<(Timestamp, Timestamp, Timestamp), TimestampError> {
    let mut parts: Vec<&str> = Vec::with_capacity(3);
    let mut signs: Vec<i64> = Vec::with_capacity(3);
    for pos in encoded.split('+') {
        for (i, neg) in pos.split('-').enumerate() {
            parts.push(neg);
            signs.push(if i == 0 { 1 } else { -1 });
        }
    }
    let t1 = Timestamp::parse(parts[0])?;
    let delta = |i: usize| -> Result<i64, TimestampError> {
        let v = i64::from_str_radix(parts[i], 16).map_err(|_| err(encoded, "bad delta"))?;
        Ok(signs[i] * v)
    };
    let mut t2 = t1;
    if parts.len() > 1 {
        let d = delta(1)?;
        if d != 0 {
            t2 = t1.with_offset(0).add_delta(d)?;
        }
    }
    let mut t3 = t2;
    if parts.len() > 2 {
        let d = delta(2)?;
        if d != 0 {
            t3 = t2.with_offset(0).add_delta(d)?;
        }
    }
    Ok((t1, t2, t3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isoformat() {
        let iso = |s: &str| Timestamp::parse(s).unwrap().isoformat();
        assert_eq!(iso("0"), "1970-01-01T00:00:00.000000");
        assert_eq!(iso("1700000000.00000"), "2023-11-14T22:13:20.000000");
        assert_eq!(iso("1700000398.74102"), "2023-11-14T22:19:58.741020");
        assert_eq!(iso("951782400"), "2000-02-29T00:00:00.000000");
        assert_eq!(iso("1795606040.80681"), "2026-11-25T11:27:20.806810");
        assert_eq!(iso("9999999999.99999"), "2286-11-20T17:46:39.999990");
    }

    #[test]
    fn forms() {
        let t = Timestamp::parse("1464431281.36208_0000010000000000").unwrap();
        assert_eq!(t.normal(), "1464431281.36208");
        assert_eq!(t.internal(), "1464431281.36208_0000010000000000");
        assert_eq!(t.short(), "1464431281.36208_10000000000");
        assert_eq!(Timestamp::parse("0").unwrap().normal(), "0000000000.00000");
        assert_eq!(Timestamp::parse("1").unwrap().normal(), "0000000001.00000");
        assert!(Timestamp::parse("-1").is_err());
        assert!(Timestamp::parse("abc").is_err());
        assert!(Timestamp::parse("nan").is_err());
        assert!(Timestamp::parse("1_2_3").is_err());
        assert!(Timestamp::parse("1_12345678901234567").is_err());
        assert!(Timestamp::parse("10000000000").is_err());
        assert!(Timestamp::parse("").is_err());
    }

    #[test]
    fn ordering_matches_internal_strings() {
        let a = Timestamp::parse("1700000000.00000").unwrap();
        let b = Timestamp::parse("1700000000.00000_1").unwrap();
        let c = Timestamp::parse("1700000000.00001").unwrap();
        assert!(a < b && b < c);
        assert!(a.internal() < b.internal() && b.internal() < c.internal());
    }

    #[test]
    fn encode_decode_example() {
        let (d, c, m) = decode_timestamps("1570939838.00000+30d40+0").unwrap();
        assert_eq!(d.normal(), "1570939838.00000");
        assert_eq!(c.normal(), "1570939840.00000");
        assert_eq!(m, c);
        assert_eq!(
            encode_timestamps(d, Some(c), Some(m)),
            "1570939838.00000+30d40+0"
        );
        assert!(decode_timestamps("1570939838.00000+zz").is_err());
    }
}
