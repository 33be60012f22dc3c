//! Request parsing for the account API, as Swift's `swob`,
//! `request_helpers` and `listing_formats` do it: the percent-decoded path
//! and `split_path`, query parameters (`get_param`), header bytes as WSGI
//! sees them, header-name title-casing, account metadata names, `Accept`
//! negotiation, and swob's default response bodies.
//!
//! The container server has its own copies of several of these in a
//! private module; the account server keeps these local ones.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode};
use percent_encoding::percent_decode;

/// Swift's reserved-namespace character.
pub const RESERVED: char = '\0';
/// Accounts starting with this are auto-created by container updates
/// (Swift's `AUTO_CREATE_ACCOUNT_PREFIX`).
pub const AUTO_CREATE_ACCOUNT_PREFIX: &str = ".";
/// Swift's default `ACCOUNT_LISTING_LIMIT`.
pub const ACCOUNT_LISTING_LIMIT: usize = 10_000;
/// Swift's default `MAX_META_COUNT` / `MAX_META_OVERALL_SIZE`.
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

/// Swift's `split_path(path, minsegs, maxsegs)` (without
/// `rest_with_last`) followed by `validate_device_partition`: `maxsegs`
/// segments, missing (or empty trailing) ones `None`. The error is Swift's
/// message (`Invalid path: ...`, `Invalid device: ...`,
/// `Invalid partition: ...`).
pub fn split_path(
    path: &str,
    minsegs: usize,
    maxsegs: usize,
) -> Result<Vec<Option<String>>, String> {
    let invalid = || format!("Invalid path: {}", quote(path));
    let (min, max) = (minsegs + 1, maxsegs + 1);
    // Python's path.split('/', max) gives at most max + 1 pieces.
    let segs: Vec<&str> = path.splitn(max + 1, '/').collect();
    let count = segs.len();
    if !segs[0].is_empty()
        || count < min
        || count > max + 1
        || segs[1..min].iter().any(|s| s.is_empty())
        || (count == max + 1 && !segs[max].is_empty())
    {
        return Err(invalid());
    }
    let kept = &segs[1..count.min(max)];
    if let Some((_, init)) = kept.split_last() {
        if init.iter().any(|s| s.is_empty()) {
            return Err(invalid());
        }
    }
    let mut out: Vec<Option<String>> = kept
        .iter()
        .map(|s| (!s.is_empty()).then(|| s.to_string()))
        .collect();
    out.resize(maxsegs, None);
    let bad = |s: &Option<String>| match s.as_deref() {
        None => true,
        Some(v) => v.is_empty() || v.contains('/') || v == "." || v == "..",
    };
    if bad(&out[0]) {
        let d = out[0].as_deref().unwrap_or("");
        return Err(format!("Invalid device: {}", quote(d)));
    }
    if bad(&out[1]) {
        let p = out[1].as_deref().unwrap_or("");
        return Err(format!("Invalid partition: {}", quote(p)));
    }
    Ok(out)
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

/// Swift's `config_true_value`.
pub fn config_true_value(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on" | "t" | "y"
    )
}

/// A header as Swift sees it through the WSGI environ: repeated headers
/// joined with `,`, bytes as they came.
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

/// How Swift names a header from the WSGI environ:
/// `HTTP_X_ACCOUNT_META_FOO` -> `X-Account-Meta-Foo` (Python's
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

/// Swift's `is_sys_or_user_meta('account', key)`.
pub fn is_account_meta(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    const USER: &str = "x-account-meta-";
    const SYS: &str = "x-account-sysmeta-";
    (lower.len() > USER.len() && lower.starts_with(USER))
        || (lower.len() > SYS.len() && lower.starts_with(SYS))
}

/// Python's `int(text)` for header counts: surrounding whitespace, an
/// optional sign, ASCII digits.
pub fn py_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<i64>().ok()
}

// ------------------------------------------------------------ swob bodies

/// swob's `RESPONSE_REASONS` (title, explanation) of the statuses the
/// account server answers.
fn reason(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        202 => ("Accepted", "The request is accepted for processing."),
        400 => (
            "Bad Request",
            "The server could not comply with the request since it is either malformed or \
             otherwise incorrect.",
        ),
        403 => ("Forbidden", "Access was denied to this resource."),
        404 => ("Not Found", "The resource could not be found."),
        405 => (
            "Method Not Allowed",
            "The method is not allowed for this resource.",
        ),
        406 => (
            "Not Acceptable",
            "The resource is not available in a format acceptable to your browser.",
        ),
        409 => (
            "Conflict",
            "There was a conflict when trying to complete your request.",
        ),
        412 => (
            "Precondition Failed",
            "A precondition for this request was not met.",
        ),
        500 => (
            "Internal Error",
            "The server has either erred or is incapable of performing the requested operation.",
        ),
        503 => (
            "Service Unavailable",
            "The server is currently unavailable. Please try again at a later time.",
        ),
        507 => (
            "Insufficient Storage",
            "There was not enough space to save the resource.",
        ),
        _ => ("", ""),
    }
}

/// swob's default body of a status without one: `<html><h1>{title}</h1>
/// <p>{explanation}</p></html>`, empty for statuses without an
/// explanation (200, 201, 204). `drive` fills 507's `Drive: ...`.
pub fn default_body(status: StatusCode, drive: Option<&str>) -> String {
    let (title, explanation) = reason(status);
    if explanation.is_empty() {
        return String::new();
    }
    let explanation = if status == StatusCode::INSUFFICIENT_STORAGE {
        format!("{explanation} Drive: {}", drive.unwrap_or("unknown"))
    } else {
        explanation.to_string()
    };
    format!("<html><h1>{title}</h1><p>{explanation}</p></html>")
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
    /// 400 text/plain: the `format` parameter is not UTF-8.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|x| x.map(str::to_string)).collect()
    }

    #[test]
    fn paths() {
        assert_eq!(
            split_path("/d/p/a", 3, 3).unwrap(),
            s(&[Some("d"), Some("p"), Some("a")])
        );
        assert_eq!(
            split_path("/d/p/a/", 3, 3).unwrap(),
            s(&[Some("d"), Some("p"), Some("a")])
        );
        assert_eq!(
            split_path("/d/p/a", 3, 4).unwrap(),
            s(&[Some("d"), Some("p"), Some("a"), None])
        );
        assert_eq!(
            split_path("/d/p/a/", 3, 4).unwrap(),
            s(&[Some("d"), Some("p"), Some("a"), None])
        );
        assert_eq!(
            split_path("/d/p/a/c/", 3, 4).unwrap(),
            s(&[Some("d"), Some("p"), Some("a"), Some("c")])
        );
        assert_eq!(split_path("/d/p", 3, 3).unwrap_err(), "Invalid path: /d/p");
        assert_eq!(
            split_path("/d/p/a/c", 3, 3).unwrap_err(),
            "Invalid path: /d/p/a/c"
        );
        assert!(split_path("/d/p/a/c/o", 3, 4).is_err());
        assert!(split_path("/d//a", 3, 3).is_err());
        assert!(split_path("d/p/a", 3, 3).is_err());
        assert_eq!(split_path("/./p/a", 3, 3).unwrap_err(), "Invalid device: .");
        assert_eq!(
            split_path("/d/../a", 3, 3).unwrap_err(),
            "Invalid partition: .."
        );
        assert_eq!(
            split_path("/d/p\u{e9}", 3, 3).unwrap_err(),
            "Invalid path: /d/p%C3%A9"
        );
        assert_eq!(
            split_path("/d/x/a", 3, 3).unwrap(),
            s(&[Some("d"), Some("x"), Some("a")])
        );
    }

    #[test]
    fn metadata_names() {
        assert!(is_account_meta("X-Account-Meta-A"));
        assert!(!is_account_meta("x-account-meta-"));
        assert!(is_account_meta("x-account-sysmeta-a"));
        assert!(!is_account_meta("x-container-meta-a"));
        assert_eq!(title_header("x-account-meta-foo_b"), "X-Account-Meta-Foo-B");
    }

    #[test]
    fn accept() {
        let none = Params::default();
        let ct = |a: &str| listing_content_type(&none, Some(a));
        assert_eq!(ct(""), Ok("text/plain"));
        assert_eq!(ct("*/*"), Ok("text/plain"));
        assert_eq!(ct("application/*"), Ok("application/json"));
        assert_eq!(ct("application/xml*"), Err(ContentTypeError::NotAcceptable));
        assert_eq!(
            ct("application/plain"),
            Err(ContentTypeError::NotAcceptable)
        );
        assert_eq!(ct("bogus"), Err(ContentTypeError::BadAccept));
        assert_eq!(ct("text/plain;q=foo"), Err(ContentTypeError::BadAccept));
        assert_eq!(ct("text/plain;q=0.5, text/xml;q=0.9"), Ok("text/xml"));
        let f = Params::parse(Some("format=plain"));
        assert_eq!(
            listing_content_type(&f, Some("application/json")),
            Ok("text/plain")
        );
        let f = Params::parse(Some("format=%ff"));
        assert!(matches!(
            listing_content_type(&f, None),
            Err(ContentTypeError::BadParam(_))
        ));
    }

    #[test]
    fn bodies() {
        assert_eq!(
            default_body(StatusCode::INSUFFICIENT_STORAGE, Some("sdz")),
            "<html><h1>Insufficient Storage</h1><p>There was not enough space to save the \
             resource. Drive: sdz</p></html>"
        );
        assert_eq!(default_body(StatusCode::NO_CONTENT, None), "");
        assert_eq!(py_int(" 12 "), Some(12));
        assert_eq!(py_int("-1"), Some(-1));
        assert_eq!(py_int("1.5"), None);
        assert_eq!(py_int(""), None);
    }
}
