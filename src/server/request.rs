//! Request parsing both servers share, as Swift's `swob`,
//! `request_helpers`, `constraints` and `listing_formats` do it: the
//! percent-decoded path, query parameters (`get_param`), Python-style
//! integers and booleans, header bytes as WSGI sees them, header-name
//! title-casing, metadata names, `X-Timestamp`, the listing limit and
//! `Accept` negotiation.

use std::collections::HashMap;

use axum::http::{request::Parts, HeaderMap, Method};
use percent_encoding::percent_decode;

use crate::swift::Timestamp;

/// Swift's reserved-namespace character.
pub const RESERVED: char = '\0';
/// Accounts starting with this are Swift's internal ("auto-create") ones
/// (Swift's `AUTO_CREATE_ACCOUNT_PREFIX`).
pub const AUTO_CREATE_ACCOUNT_PREFIX: &str = ".";

/// Swift's default constraints (`swift/common/constraints.py`).
pub const CONTAINER_LISTING_LIMIT: usize = 10_000;
pub const ACCOUNT_LISTING_LIMIT: usize = 10_000;
pub const MAX_META_COUNT: usize = 90;
pub const MAX_META_OVERALL_SIZE: usize = 4096;

/// Percent-decodes a request path (`+` stays `+`, as in a WSGI
/// `PATH_INFO`). `None` when the bytes are not UTF-8 or the path is empty
/// (Swift's `check_utf8(path, internal=True)`, which allows `\0`).
pub fn decode_path(raw: &str) -> Option<String> {
    let bytes: Vec<u8> = percent_decode(raw.as_bytes()).collect();
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

/// Python's `urllib.parse.quote(s)` (safe `/`), as Swift's path errors
/// show names.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Swift's `_validate_internal_name`: the reserved character may only
/// lead.
pub fn valid_internal_name(name: &str) -> bool {
    !name.contains(RESERVED) || name.starts_with(RESERVED)
}

/// Query parameters as Swift's `req.params`: `dict(parse_qsl(qs,
/// keep_blank_values=True))`, so the last occurrence of a name wins.
/// Values stay bytes until [`Params::get`] checks them.
#[derive(Debug, Default, Clone)]
pub struct Params {
    map: HashMap<Vec<u8>, Vec<u8>>,
}

fn unquote_plus(s: &str) -> Vec<u8> {
    let spaced = s.replace('+', " ");
    percent_decode(spaced.as_bytes()).collect()
}

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        let mut map = HashMap::new();
        for field in query.unwrap_or("").split('&') {
            if field.is_empty() {
                continue;
            }
            let (name, value) = field.split_once('=').unwrap_or((field, ""));
            map.insert(unquote_plus(name), unquote_plus(value));
        }
        Params { map }
    }

    /// Swift's `get_param`: `Ok(None)` when absent, the value when present
    /// (an empty value as it is), `Err` with Swift's message when a
    /// non-empty value is not UTF-8.
    pub fn get(&self, name: &str) -> Result<Option<String>, String> {
        match self.map.get(name.as_bytes()) {
            None => Ok(None),
            Some(v) => String::from_utf8(v.clone())
                .map(Some)
                .map_err(|_| format!("\"{name}\" parameter not valid UTF-8")),
        }
    }
}

/// Swift's `constrain_req_limit` on a `limit` parameter: only an all-digit
/// value counts (anything else means `max`); one over `max` is an error
/// with Swift's message (a 412).
pub fn constrain_limit(limit: Option<&str>, max: usize) -> Result<usize, String> {
    match limit {
        Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => {
            match l.parse::<usize>() {
                Ok(n) if n <= max => Ok(n),
                _ => Err(format!("Maximum limit is {max}")),
            }
        }
        _ => Ok(max),
    }
}

/// Python's `int(text)` for ordinary inputs: surrounding whitespace, an
/// optional sign, digits with single underscores between them.
pub fn py_int(text: &str) -> Option<i64> {
    parse_int(text, true)
}

/// [`py_int`] without underscores: an optional sign and ASCII digits
/// only (the account server's header counts).
pub fn py_int_digits(text: &str) -> Option<i64> {
    parse_int(text, false)
}

fn parse_int(text: &str, underscores: bool) -> Option<i64> {
    let t = text.trim();
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => ("-", &t[1..]),
        Some(b'+') => ("", &t[1..]),
        _ => ("", t),
    };
    let ok_byte = |b: u8| b.is_ascii_digit() || (underscores && b == b'_');
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(ok_byte)
    {
        return None;
    }
    format!("{sign}{}", digits.replace('_', "")).parse().ok()
}

/// Swift's `config_true_value`.
pub fn config_true_value(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on" | "t" | "y"
    )
}

/// A header as Swift sees it through the WSGI environ: repeated headers
/// joined with `,`, bytes as they came (Latin-1 "WSGI string").
pub fn header_bytes(headers: &HeaderMap, name: &str) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for v in headers.get_all(name) {
        match out.as_mut() {
            None => out = Some(v.as_bytes().to_vec()),
            Some(o) => {
                o.push(b',');
                o.extend_from_slice(v.as_bytes());
            }
        }
    }
    out
}

/// A header's bytes as a Latin-1 string (each byte one char), as WSGI
/// does.
pub fn header_latin1(headers: &HeaderMap, name: &str) -> Option<String> {
    header_bytes(headers, name).map(|b| b.into_iter().map(char::from).collect())
}

/// A header as UTF-8 text (`None` when absent, `Err` when not UTF-8).
pub fn header_utf8(headers: &HeaderMap, name: &str) -> Result<Option<String>, ()> {
    match header_bytes(headers, name) {
        None => Ok(None),
        Some(b) => String::from_utf8(b).map(Some).map_err(|_| ()),
    }
}

/// Is a header set to a true value (Swift's
/// `config_true_value(req.headers.get(name))`)?
pub fn header_true(headers: &HeaderMap, name: &str) -> bool {
    header_latin1(headers, name).is_some_and(|v| config_true_value(&v))
}

/// Swift's `valid_timestamp`: the request's `X-Timestamp`, or Swift's
/// message for a 400.
pub fn valid_timestamp(headers: &HeaderMap) -> Result<Timestamp, &'static str> {
    match header_latin1(headers, "x-timestamp") {
        None => Err("Missing X-Timestamp header"),
        Some(v) => Timestamp::parse(&v).map_err(|_| "Invalid X-Timestamp header"),
    }
}

/// How Swift names a header from the WSGI environ:
/// `HTTP_X_CONTAINER_META_FOO` -> `X-Container-Meta-Foo` (Python's
/// `bytes.title()` after `_` -> `-`).
pub fn title_header(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut prev_letter = false;
    for c in name.chars() {
        let c = if c == '_' { '-' } else { c };
        if c.is_ascii_alphabetic() {
            out.push(if prev_letter {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            });
            prev_letter = true;
        } else {
            out.push(c);
            prev_letter = false;
        }
    }
    out
}

/// Swift's `is_sys_or_user_meta(server_type, key)`: `x-<type>-meta-*` or
/// `x-<type>-sysmeta-*` with something after the prefix.
pub fn is_sys_or_user_meta(server_type: &str, key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    [
        format!("x-{server_type}-meta-"),
        format!("x-{server_type}-sysmeta-"),
    ]
    .iter()
    .any(|prefix| lower.len() > prefix.len() && lower.starts_with(prefix.as_str()))
}

// ---------------------------------------------------------------- Accept

/// The listing content types in Swift's order of preference.
pub const LISTING_TYPES: [&str; 4] = [
    "text/plain",
    "application/json",
    "application/xml",
    "text/xml",
];

fn is_token_char(c: char) -> bool {
    !(c <= ' ' || c == '\x7f' || "()<>@,;:\\\"/[]?={}".contains(c))
}

/// One media range of an `Accept` header: type, subtype, quality, and
/// whether it has no `*`.
#[derive(Debug, Clone, PartialEq)]
struct MediaRange {
    typ: String,
    subtype: String,
    quality: f64,
    specific: bool,
}

impl MediaRange {
    fn matches(&self, option: &str) -> bool {
        let Some((t, s)) = option.split_once('/') else {
            return false;
        };
        let part = |pat: &str, v: &str| {
            if pat == "*" {
                !v.is_empty() && v.chars().all(is_token_char)
            } else {
                pat == v
            }
        };
        part(&self.typ, t) && part(&self.subtype, s)
    }
}

/// Matches swob's `^\s*(token)/(token)(extension*?\s*)$`, where an
/// extension is `\s*;\s*token\s*=\s*(token|quoted-string)` and a quoted
/// string may hold `\`-escaped characters; returns the three groups.
fn match_media_range(s: &str) -> Option<(String, String, String)> {
    let chars: Vec<char> = s.chars().collect();
    let skip_ws = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    let token = |mut j: usize| {
        let start = j;
        while j < chars.len() && is_token_char(chars[j]) {
            j += 1;
        }
        (j > start).then_some(j)
    };
    let i = skip_ws(0);
    let t_end = token(i)?;
    let typ: String = chars[i..t_end].iter().collect();
    if chars.get(t_end) != Some(&'/') {
        return None;
    }
    let s_start = t_end + 1;
    let s_end = token(s_start)?;
    let subtype: String = chars[s_start..s_end].iter().collect();
    let mut j = s_end;
    loop {
        let k = skip_ws(j);
        if k == chars.len() {
            break;
        }
        if chars[k] != ';' {
            return None;
        }
        let k = skip_ws(k + 1);
        let k = token(k)?;
        let k = skip_ws(k);
        if chars.get(k) != Some(&'=') {
            return None;
        }
        let k = skip_ws(k + 1);
        if chars.get(k) == Some(&'"') {
            let mut m = k + 1;
            loop {
                match chars.get(m) {
                    None => return None,
                    Some('"') => break,
                    Some('\\') => {
                        if m + 1 >= chars.len() || chars[m + 1] == '\n' {
                            return None;
                        }
                        m += 2
                    }
                    Some(_) => m += 1,
                }
            }
            j = m + 1;
        } else {
            j = token(k)?;
        }
    }
    let rest: String = chars[s_end..].iter().collect();
    Some((typ, subtype, rest))
}

fn parse_accept(header: &str) -> Result<Vec<MediaRange>, ()> {
    let mut types = Vec::new();
    if header.is_empty() {
        return Ok(types);
    }
    for part in header.split(',') {
        let (typ, subtype, params) = match_media_range(part).ok_or(())?;
        let mut quality = 1.0;
        let mut seen_q = false;
        for parm in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let pieces: Vec<&str> = parm.split('=').collect();
            if pieces.len() != 2 {
                return Err(());
            }
            if pieces[0].trim() == "q" {
                if seen_q {
                    return Err(());
                }
                seen_q = true;
                quality = pieces[1].trim().parse::<f64>().map_err(|_| ())?;
            }
        }
        let specific = typ != "*" && subtype != "*";
        types.push(MediaRange {
            typ,
            subtype,
            quality,
            specific,
        });
    }
    // Stable sort, best first (Python's sort(reverse=True) keeps ties in
    // order).
    types.sort_by(|a, b| {
        (b.quality, b.specific)
            .partial_cmp(&(a.quality, a.specific))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(types)
}

/// Why a listing content type could not be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentTypeError {
    /// 400: the `format` parameter is not UTF-8 (Swift's message).
    BadParam(String),
    /// 400: the `Accept` header is malformed.
    BadAccept,
    /// 406: nothing acceptable.
    NotAcceptable,
}

/// Swift's `get_listing_content_type`: `format=` replaces `Accept`; the
/// default is `text/plain`.
pub fn listing_content_type(
    params: &Params,
    accept: Option<&str>,
) -> Result<&'static str, ContentTypeError> {
    let format = params.get("format").map_err(ContentTypeError::BadParam)?;
    let accept: String = match format.filter(|f| !f.is_empty()) {
        Some(f) => match f.to_lowercase().as_str() {
            "json" => "application/json".into(),
            "xml" => "application/xml".into(),
            _ => "text/plain".into(),
        },
        None => accept.unwrap_or("").to_string(),
    };
    let types = parse_accept(&accept).map_err(|_| ContentTypeError::BadAccept)?;
    if types.is_empty() {
        return Ok(LISTING_TYPES[0]);
    }
    for t in &types {
        for option in LISTING_TYPES {
            if t.matches(option) {
                return Ok(option);
            }
        }
    }
    Err(ContentTypeError::NotAcceptable)
}

/// The listing side of a HEAD or GET, in Swift's order: a GET's listing
/// options (`options` reads them from the query; a HEAD has none), then
/// the content type (`format=` / `Accept`), a [`ContentTypeError`] turned
/// into the server's answer by `type_err`.
pub fn listing_request<Q, E>(
    parts: &Parts,
    options: impl FnOnce(&Params) -> Result<Q, E>,
    type_err: impl FnOnce(ContentTypeError) -> E,
) -> Result<(Option<Q>, &'static str), E> {
    let params = Params::parse(parts.uri.query());
    let query = if parts.method == Method::GET {
        Some(options(&params)?)
    } else {
        None
    };
    let accept = header_latin1(&parts.headers, "accept");
    let out_type = listing_content_type(&params, accept.as_deref()).map_err(type_err)?;
    Ok((query, out_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_and_bools() {
        assert_eq!(py_int(" 12 "), Some(12));
        assert_eq!(py_int("-3"), Some(-3));
        assert_eq!(py_int("+1_000"), Some(1000));
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_int("_1"), None);
        assert_eq!(py_int("1_"), None);
        assert_eq!(py_int("1.5"), None);
        assert_eq!(py_int(""), None);
        assert_eq!(py_int("-"), None);
        assert_eq!(py_int("99999999999999999999"), None);
        assert_eq!(py_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(py_int_digits(" 12 "), Some(12));
        assert_eq!(py_int_digits("-1"), Some(-1));
        assert_eq!(py_int_digits("+7"), Some(7));
        assert_eq!(py_int_digits("1_000"), None);
        assert_eq!(py_int_digits("1.5"), None);
        assert_eq!(py_int_digits(""), None);
        assert!(config_true_value("Yes") && !config_true_value("no"));
    }

    #[test]
    fn limits() {
        assert_eq!(constrain_limit(None, 10), Ok(10));
        assert_eq!(constrain_limit(Some(""), 10), Ok(10));
        assert_eq!(constrain_limit(Some("-1"), 10), Ok(10));
        assert_eq!(constrain_limit(Some("x"), 10), Ok(10));
        assert_eq!(constrain_limit(Some("0"), 10), Ok(0));
        assert_eq!(constrain_limit(Some("10"), 10), Ok(10));
        assert_eq!(
            constrain_limit(Some("11"), 10).unwrap_err(),
            "Maximum limit is 10"
        );
        assert!(constrain_limit(Some("99999999999999999999999"), 10).is_err());
    }

    #[test]
    fn titles_and_meta_names() {
        assert_eq!(title_header("x-container-meta-foo"), "X-Container-Meta-Foo");
        assert_eq!(
            title_header("X-CONTAINER-META-a1b_c"),
            "X-Container-Meta-A1B-C"
        );
        assert_eq!(title_header("x-account-meta-foo_b"), "X-Account-Meta-Foo-B");
        assert!(is_sys_or_user_meta("container", "X-Container-Meta-X"));
        assert!(!is_sys_or_user_meta("container", "X-Container-Meta-"));
        assert!(is_sys_or_user_meta("container", "x-container-sysmeta-a"));
        assert!(!is_sys_or_user_meta("container", "x-account-meta-a"));
        assert!(is_sys_or_user_meta("account", "X-Account-Meta-A"));
        assert!(!is_sys_or_user_meta("account", "x-account-meta-"));
        assert!(is_sys_or_user_meta("account", "x-account-sysmeta-a"));
        assert!(!is_sys_or_user_meta("account", "x-container-meta-a"));
    }

    #[test]
    fn timestamps_and_quoting() {
        let mut h = HeaderMap::new();
        assert_eq!(valid_timestamp(&h), Err("Missing X-Timestamp header"));
        h.insert("x-timestamp", "nope".parse().unwrap());
        assert_eq!(valid_timestamp(&h), Err("Invalid X-Timestamp header"));
        h.insert("x-timestamp", "1700000000.5".parse().unwrap());
        assert_eq!(valid_timestamp(&h).unwrap().normal(), "1700000000.50000");
        assert_eq!(quote("/d/p\u{e9} x"), "/d/p%C3%A9%20x");
        assert!(valid_internal_name("\0a\0") && !valid_internal_name("a\0"));
    }

    #[test]
    fn params() {
        let p = Params::parse(Some("a=1&b=&c&a=2&d=x+y%2Fz&e=%ff"));
        assert_eq!(p.get("a").unwrap().as_deref(), Some("2"));
        assert_eq!(p.get("b").unwrap().as_deref(), Some(""));
        assert_eq!(p.get("c").unwrap().as_deref(), Some(""));
        assert_eq!(p.get("d").unwrap().as_deref(), Some("x y/z"));
        assert_eq!(p.get("zz").unwrap(), None);
        assert!(p.get("e").is_err());
    }

    #[test]
    fn accept() {
        let none = Params::default();
        let ct = |a: &str| listing_content_type(&none, Some(a));
        assert_eq!(ct(""), Ok("text/plain"));
        assert_eq!(ct("application/json"), Ok("application/json"));
        assert_eq!(ct("*/*"), Ok("text/plain"));
        assert_eq!(ct("application/*"), Ok("application/json"));
        assert_eq!(ct("text/xml"), Ok("text/xml"));
        assert_eq!(
            ct("text/plain;q=0.5, application/xml;q=0.9"),
            Ok("application/xml")
        );
        assert_eq!(ct("text/plain;q=0.5, text/xml;q=0.9"), Ok("text/xml"));
        assert_eq!(ct("image/png"), Err(ContentTypeError::NotAcceptable));
        assert_eq!(ct("application/xml*"), Err(ContentTypeError::NotAcceptable));
        assert_eq!(
            ct("application/plain"),
            Err(ContentTypeError::NotAcceptable)
        );
        assert_eq!(ct("bogus"), Err(ContentTypeError::BadAccept));
        assert_eq!(ct("text/plain;q=foo"), Err(ContentTypeError::BadAccept));
        assert_eq!(ct("text/plain;q=1;q=2"), Err(ContentTypeError::BadAccept));
        let f = Params::parse(Some("format=XML"));
        assert_eq!(
            listing_content_type(&f, Some("text/plain")),
            Ok("application/xml")
        );
        let f = Params::parse(Some("format=plain"));
        assert_eq!(
            listing_content_type(&f, Some("application/json")),
            Ok("text/plain")
        );
        let f = Params::parse(Some("format=nonsense"));
        assert_eq!(listing_content_type(&f, None), Ok("text/plain"));
        let f = Params::parse(Some("format=%ff"));
        assert!(matches!(
            listing_content_type(&f, None),
            Err(ContentTypeError::BadParam(_))
        ));
    }
}
