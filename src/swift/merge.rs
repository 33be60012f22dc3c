//! Object rows and Swift's object-row merge rule
//! (`update_new_item_from_existing`), with `swift_bytes` handling.

use serde::{Deserialize, Deserializer, Serialize};

use super::timestamp::{decode_timestamps, encode_timestamps, Timestamp, TimestampError};

/// One object row: as stored in the `object` table, sent in `merge_items`,
/// or loaded from a pending record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectItem {
    /// Sender-local ROWID (replication only; never stored by a receiver).
    #[serde(rename = "ROWID", default, skip_serializing_if = "Option::is_none")]
    pub rowid: Option<i64>,
    pub name: String,
    /// Encoded data / content-type / metadata timestamps.
    pub created_at: String,
    #[serde(deserialize_with = "int_like")]
    pub size: i64,
    #[serde(deserialize_with = "string_or_null")]
    pub content_type: String,
    #[serde(deserialize_with = "string_or_null")]
    pub etag: String,
    #[serde(deserialize_with = "int_like")]
    pub deleted: i64,
    #[serde(default, deserialize_with = "int_like")]
    pub storage_policy_index: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctype_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_timestamp: Option<String>,
    /// The original `created_at`, remembered the first time the merge rule
    /// sees this item (Swift's `data_timestamp`).
    #[serde(skip)]
    pub data_timestamp: Option<String>,
}

impl ObjectItem {
    /// A live object row.
    pub fn new(
        name: impl Into<String>,
        created_at: impl Into<String>,
        size: i64,
        content_type: impl Into<String>,
        etag: impl Into<String>,
    ) -> Self {
        ObjectItem {
            rowid: None,
            name: name.into(),
            created_at: created_at.into(),
            size,
            content_type: content_type.into(),
            etag: etag.into(),
            deleted: 0,
            storage_policy_index: 0,
            ctype_timestamp: None,
            meta_timestamp: None,
            data_timestamp: None,
        }
    }

    /// A tombstone, as Swift's `delete_object` writes it.
    pub fn tombstone(name: impl Into<String>, timestamp: impl Into<String>) -> Self {
        ObjectItem {
            deleted: 1,
            ..ObjectItem::new(name, timestamp, 0, "application/deleted", "noetag")
        }
    }

    /// The logical key of a row: `(name, storage_policy_index)`.
    pub fn ident(&self) -> (&str, i64) {
        (&self.name, self.storage_policy_index)
    }
}

/// Accepts JSON integers, booleans and integral floats (Python stores
/// whatever the sender gave; senders give integers).
pub(crate) fn int_like<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| D::Error::custom(format!("expected an integer, got {n}"))),
        serde_json::Value::Bool(b) => Ok(b as i64),
        other => Err(D::Error::custom(format!(
            "expected an integer, got {other}"
        ))),
    }
}

pub(crate) fn string_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn is_token_char(c: char) -> bool {
    !(c <= ' ' || c == '\x7f' || "()<>@,;:\\\"/[]?={}".contains(c))
}

/// Splits Swift's `;swift_bytes=N` parameter off a content type.
///
/// Mirrors `extract_swift_bytes` (RFC 2616 parameter grammar, strict
/// tokens): the base type is kept as is, every other parameter is rebuilt as
/// `;key=value` without whitespace.
pub fn extract_swift_bytes(content_type: &str) -> (String, Option<String>) {
    let Some((base, params)) = content_type.split_once(';') else {
        return (content_type.to_string(), None);
    };
    let mut out = base.to_string();
    let mut swift_bytes = None;
    let params: Vec<char> = std::iter::once(';').chain(params.chars()).collect();
    let mut i = 0;
    while i < params.len() {
        match match_param(&params, i) {
            Some((key, value, end)) => {
                if key == "swift_bytes" {
                    swift_bytes = Some(value);
                } else {
                    out.push(';');
                    out.push_str(&key);
                    out.push('=');
                    out.push_str(&value);
                }
                i = end;
            }
            None => i += 1,
        }
    }
    (out, swift_bytes)
}

/// Matches `\s*;\s*(token)\s*(?:=\s*(token|"(?:[^"\\]|\\.)*"))?` at `i`.
fn match_param(s: &[char], mut i: usize) -> Option<(String, String, usize)> {
    let skip_ws = |mut j: usize| {
        while j < s.len() && s[j].is_whitespace() {
            j += 1;
        }
        j
    };
    i = skip_ws(i);
    if s.get(i) != Some(&';') {
        return None;
    }
    i = skip_ws(i + 1);
    let key_start = i;
    while i < s.len() && is_token_char(s[i]) {
        i += 1;
    }
    if i == key_start {
        return None;
    }
    let key: String = s[key_start..i].iter().collect();
    i = skip_ws(i);
    let mut value = String::new();
    if s.get(i) == Some(&'=') {
        let j = skip_ws(i + 1);
        let mut k = j;
        while k < s.len() && is_token_char(s[k]) {
            k += 1;
        }
        if k > j {
            value = s[j..k].iter().collect();
            i = k;
        } else if s.get(j) == Some(&'"') {
            let mut k = j + 1;
            let mut closed = None;
            while k < s.len() {
                match s[k] {
                    '"' => {
                        closed = Some(k + 1);
                        break;
                    }
                    '\\' if k + 1 < s.len() && s[k + 1] != '\n' => k += 2,
                    '\\' => break,
                    _ => k += 1,
                }
            }
            if let Some(end) = closed {
                value = s[j..end].iter().collect();
                i = end;
            }
        }
    }
    Some((key.trim().to_string(), value.trim().to_string(), i))
}

/// Swift's object merge rule. Updates `new` with whatever the existing row
/// has that is at least as new, and returns whether `new` carries anything
/// strictly newer (i.e. whether the row must be rewritten).
pub fn update_new_item_from_existing(
    new: &mut ObjectItem,
    existing: Option<&ObjectItem>,
) -> Result<bool, TimestampError> {
    let data_ts = new
        .data_timestamp
        .get_or_insert_with(|| new.created_at.clone())
        .clone();
    let (mut d, mut c, mut m) = decode_timestamps(&data_ts)?;
    if let Some(ct) = new.ctype_timestamp.as_deref().filter(|s| !s.is_empty()) {
        c = Timestamp::parse(ct)?;
        m = c;
    }
    if let Some(mt) = new.meta_timestamp.as_deref().filter(|s| !s.is_empty()) {
        m = Timestamp::parse(mt)?;
    }
    let Some(existing) = existing else {
        new.created_at = encode_timestamps(d, Some(c), Some(m));
        return Ok(true);
    };
    let (rd, rc, rm) = decode_timestamps(&existing.created_at)?;
    let (new_ct, mut swift_bytes) = extract_swift_bytes(&new.content_type);
    let (existing_ct, existing_swift_bytes) = extract_swift_bytes(&existing.content_type);
    new.content_type = new_ct;
    let mut newer = [true; 3];
    if rd >= d {
        new.size = existing.size;
        new.etag.clone_from(&existing.etag);
        new.deleted = existing.deleted;
        swift_bytes = existing_swift_bytes;
        d = rd;
        newer[0] = false;
    }
    if rc >= c {
        new.content_type = existing_ct;
        c = rc;
        newer[1] = false;
    }
    if rm >= m {
        m = rm;
        newer[2] = false;
    }
    new.created_at = encode_timestamps(d, Some(c), Some(m));
    if let Some(sb) = swift_bytes.filter(|s| !s.is_empty()) {
        new.content_type.push_str(";swift_bytes=");
        new.content_type.push_str(&sb);
    }
    Ok(newer.iter().any(|n| *n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swift_bytes_extraction() {
        assert_eq!(
            extract_swift_bytes("text/plain; charset=utf-8"),
            ("text/plain;charset=utf-8".to_string(), None)
        );
        assert_eq!(
            extract_swift_bytes("a/b;swift_bytes=12; x=\"q r\""),
            ("a/b;x=\"q r\"".to_string(), Some("12".to_string()))
        );
        assert_eq!(extract_swift_bytes("a/b;k"), ("a/b;k=".to_string(), None));
        assert_eq!(extract_swift_bytes("plain"), ("plain".to_string(), None));
    }

    #[test]
    fn wire_item_parsing() {
        let it: ObjectItem = serde_json::from_str(
            r#"{"ROWID": 3, "name": "o", "created_at": "1.00000", "size": 1,
                "content_type": "t", "etag": "e", "deleted": 0}"#,
        )
        .unwrap();
        assert_eq!(it.rowid, Some(3));
        assert_eq!(it.storage_policy_index, 0);
        assert!(serde_json::from_str::<ObjectItem>(r#"{"name": "o"}"#).is_err());
        let bad =
            r#"{"name":"o","created_at":"1","size":"x","content_type":"t","etag":"e","deleted":0}"#;
        assert!(serde_json::from_str::<ObjectItem>(bad).is_err());
    }
}
