//! Object listings as Swift's container server renders them: JSON
//! (`json.dumps` of `{bytes, hash, name, content_type, last_modified}` /
//! `{subdir}`), plain text (one name per line) and XML (ElementTree), plus
//! the date formats used (`Timestamp.isoformat`, HTTP dates).

use serde_json::{Map, Value};

use crate::db::ListingEntry;
use crate::swift::merge::extract_swift_bytes;
use crate::swift::timestamp::decode_timestamps;
use crate::swift::{pyjson, Timestamp};

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
            let bytes = swift_bytes
                .as_deref()
                .and_then(super::request::py_int)
                .unwrap_or(item.size);
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

/// `json.dumps(listing)`.
pub fn to_json(records: &[Record]) -> Vec<u8> {
    let list: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut m = Map::new();
            match r {
                Record::Subdir(name) => {
                    m.insert("subdir".into(), Value::String(name.clone()));
                }
                Record::Object {
                    name,
                    hash,
                    bytes,
                    content_type,
                    last_modified,
                } => {
                    m.insert("bytes".into(), Value::from(*bytes));
                    m.insert("hash".into(), Value::String(hash.clone()));
                    m.insert("name".into(), Value::String(name.clone()));
                    m.insert("content_type".into(), Value::String(content_type.clone()));
                    m.insert("last_modified".into(), Value::String(last_modified.clone()));
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
            Record::Object { name, .. } => name,
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

/// `container_to_xml(listing, container)` as ElementTree writes it.
pub fn to_xml(records: &[Record], container: &str) -> Vec<u8> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"");
    escape_attr(container, &mut out);
    out.push('"');
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

/// Days since 1970-01-01 -> (year, month, day) (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `Timestamp.isoformat`: `YYYY-MM-DDTHH:MM:SS.ffffff` (UTC, no zone),
/// computed with the same float steps as Swift.
pub fn isoformat(ts: &Timestamp) -> String {
    let t: f64 = ts.normal().parse().unwrap_or(0.0);
    let (frac, whole) = (t.fract(), t.trunc());
    let mut us = (frac * 1e6).round_ties_even() as i64;
    let mut secs = whole as i64;
    if us >= 1_000_000 {
        secs += 1;
        us -= 1_000_000;
    } else if us < 0 {
        secs -= 1;
        us += 1_000_000;
    }
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{us:06}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) of whole seconds.
pub fn http_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(mo - 1) as usize],
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Swift's `Last-Modified` of a timestamp: rounded up to the second.
pub fn last_modified(ts: &Timestamp) -> String {
    http_date(ts.ceil_seconds())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swift::merge::ObjectItem;

    #[test]
    fn dates() {
        let t = |s: &str| Timestamp::parse(s).unwrap();
        assert_eq!(isoformat(&t("0")), "1970-01-01T00:00:00.000000");
        assert_eq!(
            isoformat(&t("1700000000.12345")),
            "2023-11-14T22:13:20.123450"
        );
        assert_eq!(
            isoformat(&t("951782400.00001")),
            "2000-02-29T00:00:00.000010"
        );
        assert_eq!(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            last_modified(&t("1700000000.00001")),
            "Tue, 14 Nov 2023 22:13:21 GMT"
        );
    }

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
