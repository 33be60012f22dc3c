//! The `.pending` file record format: `":" + base64(pickle(tuple, 2))` per
//! record, records concatenated with no newline.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use super::container_row::ContainerItem;
use super::merge::ObjectItem;
use super::pickle::{self, PickleError, Value};

/// Swift's `PENDING_CAP`: above this size the pending file is committed
/// instead of appended to.
pub const PENDING_CAP: u64 = 131_072;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PendingError {
    #[error("bad base64 in pending entry")]
    Base64,
    #[error(transparent)]
    Pickle(#[from] PickleError),
    #[error("pending entry is not a tuple of the kind's fields")]
    Shape,
    #[error("pending entry field {0} has the wrong type")]
    Field(&'static str),
}

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Encodes one container pending record (a 9-tuple, as Swift 2.38 writes).
pub fn encode_object_record(item: &ObjectItem) -> Vec<u8> {
    let opt = |v: &Option<String>| match v {
        Some(s) => Value::Str(s.clone()),
        None => Value::None,
    };
    let tuple = [
        Value::Str(item.name.clone()),
        Value::Str(item.created_at.clone()),
        Value::Int(item.size),
        Value::Str(item.content_type.clone()),
        Value::Str(item.etag.clone()),
        Value::Int(item.deleted),
        Value::Int(item.storage_policy_index),
        opt(&item.ctype_timestamp),
        opt(&item.meta_timestamp),
    ];
    let mut out = Vec::with_capacity(160);
    out.push(b':');
    out.extend_from_slice(STANDARD.encode(pickle::dumps_tuple(&tuple)).as_bytes());
    out
}

/// Encodes one account pending record (a 7-tuple, as Swift 2.38 writes).
pub fn encode_container_record(item: &ContainerItem) -> Vec<u8> {
    let tuple = [
        Value::Str(item.name.clone()),
        Value::Str(item.put_timestamp.clone()),
        Value::Str(item.delete_timestamp.clone()),
        Value::Int(item.object_count),
        Value::Int(item.bytes_used),
        Value::Int(item.deleted),
        Value::Int(item.storage_policy_index),
    ];
    let mut out = Vec::with_capacity(120);
    out.push(b':');
    out.extend_from_slice(STANDARD.encode(pickle::dumps_tuple(&tuple)).as_bytes());
    out
}

/// Turns an account pending tuple (6 or 7 fields) into a container row.
pub fn container_item_from_tuple(t: &[Value]) -> Result<ContainerItem, PendingError> {
    if !(6..=7).contains(&t.len()) {
        return Err(PendingError::Shape);
    }
    let ts = |v: &Value, field: &'static str| -> Result<String, PendingError> {
        match v {
            Value::Str(s) => Ok(s.clone()),
            Value::Float(f) => Ok(python_float_repr(*f)),
            Value::Int(i) => Ok(i.to_string()),
            Value::None => Ok("0".into()),
            _ => Err(PendingError::Field(field)),
        }
    };
    Ok(ContainerItem {
        rowid: None,
        name: as_str(&t[0], "name")?,
        put_timestamp: ts(&t[1], "put_timestamp")?,
        delete_timestamp: ts(&t[2], "delete_timestamp")?,
        object_count: as_int(&t[3], "object_count")?,
        bytes_used: as_int(&t[4], "bytes_used")?,
        deleted: as_int(&t[5], "deleted")?,
        storage_policy_index: t
            .get(6)
            .map(|v| as_int(v, "storage_policy_index"))
            .transpose()?
            .unwrap_or(0),
    })
}

/// Splits a pending file's contents into entries and decodes each; a bad
/// entry yields an error in its place (callers log and skip it, as Swift).
pub fn decode_entries(data: &[u8]) -> Vec<Result<Vec<Value>, (PendingError, String)>> {
    data.split(|b| *b == b':')
        .filter(|e| !e.is_empty())
        .map(|entry| decode_entry(entry).map_err(|e| (e, String::from_utf8_lossy(entry).into())))
        .collect()
}

fn decode_entry(entry: &[u8]) -> Result<Vec<Value>, PendingError> {
    let cleaned: Vec<u8> = entry
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .collect();
    let unpadded: &[u8] = {
        let end = cleaned
            .iter()
            .position(|b| *b == b'=')
            .unwrap_or(cleaned.len());
        &cleaned[..end]
    };
    let raw = LENIENT.decode(unpadded).map_err(|_| PendingError::Base64)?;
    match pickle::loads(&raw)? {
        Value::Tuple(items) => Ok(items),
        _ => Err(PendingError::Shape),
    }
}

fn as_str(v: &Value, field: &'static str) -> Result<String, PendingError> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(PendingError::Field(field)),
    }
}

fn as_opt_str(v: Option<&Value>, field: &'static str) -> Result<Option<String>, PendingError> {
    match v {
        None | Some(Value::None) => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(Value::Float(f)) => Ok(Some(python_float_repr(*f))),
        Some(_) => Err(PendingError::Field(field)),
    }
}

fn as_int(v: &Value, field: &'static str) -> Result<i64, PendingError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(*b as i64),
        Value::Str(s) => s.trim().parse().map_err(|_| PendingError::Field(field)),
        _ => Err(PendingError::Field(field)),
    }
}

/// A timestamp written as a float by an old writer, as Python's `str()`.
fn python_float_repr(f: f64) -> String {
    super::pyjson::float_repr(f)
}

/// Turns a container pending tuple (6, 7 or 9 fields) into an item.
pub fn object_item_from_tuple(t: &[Value]) -> Result<ObjectItem, PendingError> {
    if !(6..=9).contains(&t.len()) {
        return Err(PendingError::Shape);
    }
    let created_at = match &t[1] {
        Value::Str(s) => s.clone(),
        Value::Float(f) => python_float_repr(*f),
        Value::Int(i) => i.to_string(),
        _ => return Err(PendingError::Field("created_at")),
    };
    Ok(ObjectItem {
        rowid: None,
        name: as_str(&t[0], "name")?,
        created_at,
        size: as_int(&t[2], "size")?,
        content_type: as_str(&t[3], "content_type")?,
        etag: as_str(&t[4], "etag")?,
        deleted: as_int(&t[5], "deleted")?,
        storage_policy_index: t
            .get(6)
            .map(|v| as_int(v, "storage_policy_index"))
            .transpose()?
            .unwrap_or(0),
        ctype_timestamp: as_opt_str(t.get(7), "ctype_timestamp")?,
        meta_timestamp: as_opt_str(t.get(8), "meta_timestamp")?,
        data_timestamp: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let mut item = ObjectItem::new("déjà/1", "1700000000.00000", 12, "text/plain", "etag");
        item.meta_timestamp = Some("1700000001.00000".into());
        let enc = encode_object_record(&item);
        assert_eq!(enc[0], b':');
        let decoded = decode_entries(&enc);
        assert_eq!(decoded.len(), 1);
        let t = decoded[0].as_ref().unwrap();
        assert_eq!(object_item_from_tuple(t).unwrap(), item);
    }

    #[test]
    fn bad_entries_are_reported_not_fatal() {
        let mut data = encode_object_record(&ObjectItem::tombstone("a", "1.00000"));
        data.extend_from_slice(b":!!!notbase64:");
        data.extend_from_slice(&encode_object_record(&ObjectItem::tombstone(
            "b", "2.00000",
        )));
        let d = decode_entries(&data);
        assert_eq!(d.len(), 3);
        assert!(d[0].is_ok() && d[1].is_err() && d[2].is_ok());
    }
}
