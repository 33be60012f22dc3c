//! DB metadata as both servers take it from requests and give it back:
//! items are `{key: [value, timestamp]}`, keys named as Swift names
//! headers, checked with `DatabaseBroker.validate_metadata`'s limits.

use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::request::{header_bytes, title_header, MAX_META_COUNT, MAX_META_OVERALL_SIZE};

/// A stored item's value, if it is a string.
pub fn value(v: &Value) -> Option<&str> {
    v.get(0).and_then(Value::as_str)
}

/// A stored item's timestamp (`""` when missing).
pub fn timestamp(v: &Value) -> &str {
    v.get(1).and_then(Value::as_str).unwrap_or("")
}

/// An item as stored: `[value, timestamp]`.
pub fn item(value: String, timestamp: String) -> Value {
    Value::Array(vec![Value::String(value), Value::String(timestamp)])
}

/// The request headers `keep` picks (given their lower-case names), named
/// as Swift names them (`X-Container-Meta-Foo`), with their values as text
/// (`None` when not UTF-8).
pub fn from_headers(
    headers: &HeaderMap,
    keep: impl Fn(&str) -> bool,
) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for name in headers.keys() {
        let lower = name.as_str();
        if !keep(lower) {
            continue;
        }
        let Some(raw) = header_bytes(headers, lower) else {
            continue;
        };
        out.push((title_header(lower), String::from_utf8(raw).ok()));
    }
    out
}

/// The stored items with a non-empty value, as `(key, value)`.
pub fn nonempty(md: &Map<String, Value>) -> impl Iterator<Item = (&str, &str)> {
    md.iter().filter_map(|(k, v)| match value(v) {
        Some(v) if !v.is_empty() => Some((k.as_str(), v)),
        _ => None,
    })
}

/// `DatabaseBroker.validate_metadata` over the metadata as it would be:
/// Swift's message (a 400) when it holds a NUL or exceeds the limits on
/// user metadata.
pub fn validate(md: &Map<String, Value>) -> Result<(), String> {
    let mut count = 0usize;
    let mut size = 0usize;
    for (key, v) in md {
        let value = value(v).unwrap_or("");
        if key.contains('\0') || value.contains('\0') {
            return Err("Metadata must be valid UTF-8".into());
        }
        let lower = key.to_lowercase();
        let stripped = lower
            .strip_prefix("x-account-meta-")
            .or_else(|| lower.strip_prefix("x-container-meta-"));
        if let (false, Some(k)) = (value.is_empty(), stripped) {
            count += 1;
            size += k.chars().count() + value.chars().count();
        }
    }
    if count > MAX_META_COUNT {
        return Err(format!("Too many metadata items; max {MAX_META_COUNT}"));
    }
    if size > MAX_META_OVERALL_SIZE {
        return Err(format!(
            "Total metadata too large; max {MAX_META_OVERALL_SIZE}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let mut md = Map::new();
        md.insert("X-Container-Meta-A".into(), item("1".into(), "t".into()));
        md.insert("X-Account-Meta-B".into(), item(String::new(), "t".into()));
        md.insert(
            "X-Container-Read".into(),
            item("x".repeat(5000), "t".into()),
        );
        assert_eq!(validate(&md), Ok(()));
        for i in 0..90 {
            md.insert(format!("X-Account-Meta-{i}"), item("v".into(), "t".into()));
        }
        assert_eq!(
            validate(&md).unwrap_err(),
            "Too many metadata items; max 90"
        );
        let mut md = Map::new();
        md.insert(
            "X-Account-Meta-Big".into(),
            item("v".repeat(4094), "t".into()),
        );
        assert_eq!(
            validate(&md).unwrap_err(),
            "Total metadata too large; max 4096"
        );
        md.insert(
            "X-Account-Meta-Big".into(),
            item("v".repeat(4093), "t".into()),
        );
        assert_eq!(validate(&md), Ok(()));
        md.insert("X-Account-Meta-N".into(), item("\0".into(), "t".into()));
        assert_eq!(validate(&md).unwrap_err(), "Metadata must be valid UTF-8");
        let shown: Vec<_> = nonempty(&md).map(|(k, _)| k).collect();
        assert_eq!(shown, vec!["X-Account-Meta-Big", "X-Account-Meta-N"]);
        assert_eq!(timestamp(&md["X-Account-Meta-N"]), "t");
    }
}
