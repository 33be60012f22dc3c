//! Object listings as Swift's container server renders them: JSON
//! (`json.dumps` of `{bytes, hash, name, content_type, last_modified}` /
//! `{subdir}`), plain text (one name per line) and XML (ElementTree).

use serde_json::{Map, Value};

use crate::db::ListingEntry;
use crate::server::listing::{self, element, escape_attr, isoformat};
use crate::server::request::py_int;
use crate::swift::merge::extract_swift_bytes;
use crate::swift::timestamp::decode_timestamps;
use crate::swift::Timestamp;

/// One listing record after Swift's `update_object_record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Object {
        name: String,
        hash: String,
        bytes: i64,
        content_type: String,
        last_modified: String,
    },
    Subdir(String),
}

/// `_transform_record` + `update_object_record`: the metadata timestamp as
/// `last_modified`, and `swift_bytes` taken off the content type.
pub fn record_of(entry: &ListingEntry) -> Record {
    match entry {
        ListingEntry::Subdir(name) => Record::Subdir(name.clone()),
        ListingEntry::Object(item) => {
            let meta = decode_timestamps(&item.created_at)
                .map(|(_, _, m)| m)
                .or_else(|_| Timestamp::parse(&item.created_at))
                .unwrap_or(Timestamp::ZERO);
            let (content_type, swift_bytes) = extract_swift_bytes(&item.content_type);
            let bytes = swift_bytes.as_deref().and_then(py_int).unwrap_or(item.size);
            Record::Object {
                name: item.name.clone(),
                hash: item.etag.clone(),
                bytes,
                content_type,
                last_modified: isoformat(&meta),
            }
        }
    }
}

impl Record {
    /// The name, or the subdir.
    pub fn name(&self) -> &str {
        match self {
            Record::Object { name, .. } | Record::Subdir(name) => name,
        }
    }
}

/// `json.dumps(listing)`: `{bytes, hash, name, content_type,
/// last_modified}` / `{subdir}`.
pub fn to_json(records: &[Record]) -> Vec<u8> {
    listing::to_json(records.iter().map(|r| match r {
        Record::Subdir(name) => listing::subdir_json(name),
        Record::Object {
            name,
            hash,
            bytes,
            content_type,
            last_modified,
        } => {
            let mut m = Map::new();
            m.insert("bytes".into(), Value::from(*bytes));
            m.insert("hash".into(), Value::String(hash.clone()));
            m.insert("name".into(), Value::String(name.clone()));
            m.insert("content_type".into(), Value::String(content_type.clone()));
            m.insert("last_modified".into(), Value::String(last_modified.clone()));
            m
        }
    }))
}

/// `listing_to_text`: names (or subdirs), one per line.
pub fn to_text(records: &[Record]) -> Vec<u8> {
    listing::to_text(records.iter().map(Record::name))
}

/// `container_to_xml(listing, container)` as ElementTree writes it.
pub fn to_xml(records: &[Record], container: &str) -> Vec<u8> {
    let mut out = listing::xml_start("container", container);
    if records.is_empty() {
        out.push_str(" />");
        return out.into_bytes();
    }
    out.push('>');
    for r in records {
        match r {
            Record::Subdir(name) => {
                out.push_str("<subdir name=\"");
                escape_attr(name, &mut out);
                out.push_str("\">");
                element(&mut out, "name", name);
                out.push_str("</subdir>");
            }
            Record::Object {
                name,
                hash,
                bytes,
                content_type,
                last_modified,
            } => {
                out.push_str("<object>");
                element(&mut out, "name", name);
                element(&mut out, "hash", hash);
                element(&mut out, "bytes", &bytes.to_string());
                element(&mut out, "content_type", content_type);
                element(&mut out, "last_modified", last_modified);
                out.push_str("</object>");
            }
        }
    }
    out.push_str("</container>");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swift::merge::ObjectItem;

    #[test]
    fn formats() {
        let mut item = ObjectItem::new(
            "a&b",
            "1700000000.00000+186a0+0",
            10,
            "text/plain;swift_bytes=99",
            "etag",
        );
        item.deleted = 0;
        let records = vec![
            record_of(&ListingEntry::Object(item)),
            record_of(&ListingEntry::Subdir("d/".into())),
        ];
        assert_eq!(
            String::from_utf8(to_json(&records)).unwrap(),
            "[{\"bytes\": 99, \"hash\": \"etag\", \"name\": \"a&b\", \
             \"content_type\": \"text/plain\", \"last_modified\": \
             \"2023-11-14T22:13:21.000000\"}, {\"subdir\": \"d/\"}]"
        );
        assert_eq!(to_text(&records), b"a&b\nd/\n");
        assert_eq!(
            String::from_utf8(to_xml(&records, "c\"")).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"c&quot;\">\
             <object><name>a&amp;b</name><hash>etag</hash><bytes>99</bytes>\
             <content_type>text/plain</content_type>\
             <last_modified>2023-11-14T22:13:21.000000</last_modified></object>\
             <subdir name=\"d/\"><name>d/</name></subdir></container>"
        );
        assert_eq!(
            String::from_utf8(to_xml(&[], "c")).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"c\" />"
        );
        assert_eq!(to_json(&[]), b"[]");
    }
}
