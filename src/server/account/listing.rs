//! Container listings as Swift's account server renders them
//! (`account_listing_response`): JSON (`json.dumps` of `{name, count,
//! bytes, last_modified[, storage_policy]}` / `{subdir}`), plain text (one
//! name per line) and XML (`listing_formats.account_to_xml`).

use serde_json::{Map, Value};

use crate::swift::pyjson;

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

/// `json.dumps(data)`: ASCII, Python's separators, keys in Swift's order.
pub fn to_json(records: &[Record]) -> Vec<u8> {
    let list: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut m = Map::new();
            match r {
                Record::Subdir(name) => {
                    m.insert("subdir".into(), Value::String(name.clone()));
                }
                Record::Container {
                    name,
                    count,
                    bytes,
                    last_modified,
                    storage_policy,
                } => {
                    m.insert("name".into(), Value::String(name.clone()));
                    m.insert("count".into(), Value::from(*count));
                    m.insert("bytes".into(), Value::from(*bytes));
                    m.insert("last_modified".into(), Value::String(last_modified.clone()));
                    if let Some(p) = storage_policy {
                        m.insert("storage_policy".into(), Value::String(p.clone()));
                    }
                }
            }
            Value::Object(m)
        })
        .collect();
    pyjson::dumps(&Value::Array(list)).into_bytes()
}

/// `listing_to_text`: names (or subdirs), one per line.
pub fn to_text(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let name = match r {
            Record::Container { name, .. } => name,
            Record::Subdir(name) => name,
        };
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out
}

fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#09;"),
            c => out.push(c),
        }
    }
}

fn element(out: &mut String, tag: &str, text: &str) {
    out.push('<');
    out.push_str(tag);
    out.push('>');
    escape_text(text, out);
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

/// `account_to_xml(data, account)` as ElementTree writes it: the account
/// element's text and every entry's tail are `\n`.
pub fn to_xml(records: &[Record], account: &str) -> Vec<u8> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<account name=\"");
    escape_attr(account, &mut out);
    out.push_str("\">\n");
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
