//! Container listings as Swift's account server renders them
//! (`account_listing_response`): JSON (`json.dumps` of `{name, count,
//! bytes, last_modified[, storage_policy]}` / `{subdir}`), plain text (one
//! name per line) and XML (`listing_formats.account_to_xml`).

use serde_json::{Map, Value};

use crate::server::listing::{self, element, escape_attr};

/// One listing record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Container {
        name: String,
        count: i64,
        bytes: i64,
        /// `Timestamp(put_timestamp).isoformat`.
        last_modified: String,
        /// The policy's name; `None` when the index is not configured.
        storage_policy: Option<String>,
    },
    Subdir(String),
}

impl Record {
    /// The name, or the subdir.
    pub fn name(&self) -> &str {
        match self {
            Record::Container { name, .. } | Record::Subdir(name) => name,
        }
    }
}

/// `json.dumps(data)`: ASCII, Python's separators, keys in Swift's order.
pub fn to_json(records: &[Record]) -> Vec<u8> {
    listing::to_json(records.iter().map(|r| match r {
        Record::Subdir(name) => listing::subdir_json(name),
        Record::Container {
            name,
            count,
            bytes,
            last_modified,
            storage_policy,
        } => {
            let mut m = Map::new();
            m.insert("name".into(), Value::String(name.clone()));
            m.insert("count".into(), Value::from(*count));
            m.insert("bytes".into(), Value::from(*bytes));
            m.insert("last_modified".into(), Value::String(last_modified.clone()));
            if let Some(p) = storage_policy {
                m.insert("storage_policy".into(), Value::String(p.clone()));
            }
            m
        }
    }))
}

/// `listing_to_text`: names (or subdirs), one per line.
pub fn to_text(records: &[Record]) -> Vec<u8> {
    listing::to_text(records.iter().map(Record::name))
}

/// `account_to_xml(data, account)` as ElementTree writes it: the account
/// element's text and every entry's tail are `\n`.
pub fn to_xml(records: &[Record], account: &str) -> Vec<u8> {
    let mut out = listing::xml_start("account", account);
    out.push_str(">\n");
    for r in records {
        match r {
            Record::Subdir(name) => {
                out.push_str("<subdir name=\"");
                escape_attr(name, &mut out);
                out.push_str("\" />");
            }
            Record::Container {
                name,
                count,
                bytes,
                last_modified,
                storage_policy,
            } => {
                out.push_str("<container>");
                element(&mut out, "name", name);
                element(&mut out, "count", &count.to_string());
                element(&mut out, "bytes", &bytes.to_string());
                element(&mut out, "last_modified", last_modified);
                if let Some(p) = storage_policy {
                    element(&mut out, "storage_policy", p);
                }
                out.push_str("</container>");
            }
        }
        out.push('\n');
    }
    out.push_str("</account>");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<Record> {
        vec![
            Record::Container {
                name: "c1&\u{e9}".into(),
                count: 2,
                bytes: 30,
                last_modified: "2023-11-14T22:13:20.123450".into(),
                storage_policy: Some("gold".into()),
            },
            Record::Container {
                name: "c2".into(),
                count: 0,
                bytes: 0,
                last_modified: "1970-01-01T00:00:00.000000".into(),
                storage_policy: None,
            },
            Record::Subdir("d\"-".into()),
        ]
    }

    #[test]
    fn json() {
        assert_eq!(
            String::from_utf8(to_json(&records())).unwrap(),
            "[{\"name\": \"c1&\\u00e9\", \"count\": 2, \"bytes\": 30, \"last_modified\": \
             \"2023-11-14T22:13:20.123450\", \"storage_policy\": \"gold\"}, {\"name\": \"c2\", \
             \"count\": 0, \"bytes\": 0, \"last_modified\": \"1970-01-01T00:00:00.000000\"}, \
             {\"subdir\": \"d\\\"-\"}]"
        );
        assert_eq!(to_json(&[]), b"[]");
    }

    #[test]
    fn text() {
        assert_eq!(to_text(&records()), "c1&\u{e9}\nc2\nd\"-\n".as_bytes());
        assert!(to_text(&[]).is_empty());
    }

    #[test]
    fn xml() {
        assert_eq!(
            String::from_utf8(to_xml(&records(), "a<\n")).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<account name=\"a&lt;&#10;\">\n\
             <container><name>c1&amp;\u{e9}</name><count>2</count><bytes>30</bytes>\
             <last_modified>2023-11-14T22:13:20.123450</last_modified>\
             <storage_policy>gold</storage_policy></container>\n\
             <container><name>c2</name><count>0</count><bytes>0</bytes>\
             <last_modified>1970-01-01T00:00:00.000000</last_modified></container>\n\
             <subdir name=\"d&quot;-\" />\n</account>"
        );
        assert_eq!(
            String::from_utf8(to_xml(&[], "a")).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<account name=\"a\">\n</account>"
        );
    }
}
