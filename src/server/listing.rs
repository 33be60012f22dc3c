//! What both servers' listings are made of: plain text (one name per
//! line), JSON (`json.dumps` of a list), ElementTree's XML escaping and
//! elements, and the date formats listings and headers use
//! (`Timestamp.isoformat`, HTTP dates).

use serde_json::{Map, Value};

use crate::swift::{pyjson, Timestamp};

/// `listing_to_text`: names (or subdirs), one per line.
pub fn to_text<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for name in names {
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out
}

/// `json.dumps(listing)` of a list of objects (ASCII, Python's
/// separators, keys in insertion order).
pub fn to_json(objects: impl IntoIterator<Item = Map<String, Value>>) -> Vec<u8> {
    let list: Vec<Value> = objects.into_iter().map(Value::Object).collect();
    pyjson::dumps(&Value::Array(list)).into_bytes()
}

/// A listing's `{"subdir": name}` entry.
pub fn subdir_json(name: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("subdir".into(), Value::String(name.to_string()));
    m
}

/// ElementTree's text escaping.
pub fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

/// ElementTree's attribute escaping.
pub fn escape_attr(s: &str, out: &mut String) {
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

/// `<tag>text</tag>`.
pub fn element(out: &mut String, tag: &str, text: &str) {
    out.push('<');
    out.push_str(tag);
    out.push('>');
    escape_text(text, out);
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

/// The XML declaration and the start of the root element, up to its
/// `name` attribute: `<?xml ...?>\n<root name="..."` (the caller closes
/// the tag).
pub fn xml_start(root: &str, name: &str) -> String {
    let mut out = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} name=\"");
    escape_attr(name, &mut out);
    out.push('"');
    out
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
    fn pieces() {
        assert_eq!(to_text(["a", "b/"]), b"a\nb/\n");
        assert!(to_text([]).is_empty());
        assert_eq!(to_json([]), b"[]");
        assert_eq!(
            to_json([subdir_json("d\u{e9}/")]),
            b"[{\"subdir\": \"d\\u00e9/\"}]"
        );
        let mut s = xml_start("account", "a<\"\n\t\r&");
        element(&mut s, "name", "<&>\"\n");
        assert_eq!(
            s,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <account name=\"a&lt;&quot;&#10;&#09;&#13;&amp;\"<name>&lt;&amp;&gt;\"\n</name>"
        );
    }
}
