//! Request parsing for the container API, as Swift's `swob` and
//! `request_helpers` do it: the percent-decoded path, query parameters,
//! Python-style integers and booleans, header-name title-casing, name
//! checks, `Accept` negotiation and `X-Container-Sync-To` validation.

use std::collections::HashMap;
use std::path::Path;

use axum::http::HeaderMap;
use percent_encoding::percent_decode;

/// Swift's reserved-namespace character.
pub const RESERVED: char = '\0';
/// Accounts starting with this are Swift's internal ("auto-create") ones.
pub const AUTO_CREATE_ACCOUNT_PREFIX: &str = ".";
/// `.shards_` accounts are never auto-created by object updates.
pub const SHARDS_ACCOUNT_PREFIX: &str = ".shards_";
/// Swift's misplaced-objects account (reconciler).
pub const MISPLACED_OBJECTS_ACCOUNT: &str = ".misplaced_objects";

/// Swift's default constraints (`swift/common/constraints.py`).
pub const MAX_ACCOUNT_NAME_LENGTH: usize = 256;
pub const MAX_CONTAINER_NAME_LENGTH: usize = 256;
pub const MAX_OBJECT_NAME_LENGTH: usize = 1024;
pub const CONTAINER_LISTING_LIMIT: usize = 10_000;
pub const MAX_META_COUNT: usize = 90;
pub const MAX_META_OVERALL_SIZE: usize = 4096;

/// Percent-decodes a request path (`+` stays `+`, as in a WSGI
/// `PATH_INFO`). `None` when the bytes are not UTF-8 (Swift's `check_utf8`).
pub fn decode_path(raw: &str) -> Option<String> {
    let bytes: Vec<u8> = percent_decode(raw.as_bytes()).collect();
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

/// Query parameters as Swift's `req.params`: `dict(parse_qsl(qs,
/// keep_blank_values=True))`, so the last occurrence of a name wins. Values
/// stay bytes until [`Params::get`] checks them.
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
    /// (empty values are returned as they are), `Err` with Swift's message
    /// when a non-empty value is not UTF-8.
    pub fn get(&self, name: &str) -> Result<Option<String>, String> {
        match self.map.get(name.as_bytes()) {
            None => Ok(None),
            Some(v) => String::from_utf8(v.clone())
                .map(Some)
                .map_err(|_| format!("\"{name}\" parameter not valid UTF-8")),
        }
    }
}

/// Python's `int(text)` for ordinary inputs: surrounding whitespace, an
/// optional sign, digits with single underscores between them.
pub fn py_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let v: i64 = digits.replace('_', "").parse().ok()?;
    Some(if neg { -v } else { v })
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

/// A header's bytes as a Latin-1 string (each byte one char), as WSGI does.
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

/// Swift's `is_sys_or_user_meta('container', key)`.
pub fn is_sys_or_user_meta(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    const USER: &str = "x-container-meta-";
    const SYS: &str = "x-container-sysmeta-";
    (lower.len() > USER.len() && lower.starts_with(USER))
        || (lower.len() > SYS.len() && lower.starts_with(SYS))
}

/// Swift's `_validate_internal_name`: the reserved character may only lead.
fn valid_internal_name(name: &str) -> bool {
    !name.contains(RESERVED) || name.starts_with(RESERVED)
}

/// Swift's `validate_internal_container` / `validate_internal_obj`, plus
/// the proxy's default name-length constraints (not applied to internal
/// accounts nor to reserved-namespace names, which Swift builds longer).
pub fn validate_names(account: &str, container: &str, obj: Option<&str>) -> Result<(), String> {
    if !valid_internal_name(account) {
        return Err("Invalid reserved-namespace account".into());
    }
    if !valid_internal_name(container) {
        return Err("Invalid reserved-namespace container".into());
    }
    let internal_account = account.starts_with(AUTO_CREATE_ACCOUNT_PREFIX);
    if let Some(obj) = obj {
        if !(internal_account || account == MISPLACED_OBJECTS_ACCOUNT) {
            if !valid_internal_name(obj) {
                return Err("Invalid reserved-namespace object".into());
            }
            if container.starts_with(RESERVED) && !obj.starts_with(RESERVED) {
                return Err("Invalid user-namespace object in reserved-namespace container".into());
            }
            if obj.starts_with(RESERVED) && !container.starts_with(RESERVED) {
                return Err("Invalid reserved-namespace object in user-namespace container".into());
            }
        }
    }
    if internal_account {
        return Ok(());
    }
    if !account.starts_with(RESERVED) && account.len() > MAX_ACCOUNT_NAME_LENGTH {
        return Err(format!(
            "Account name length of {} longer than {MAX_ACCOUNT_NAME_LENGTH}",
            account.len()
        ));
    }
    if !container.starts_with(RESERVED) && container.len() > MAX_CONTAINER_NAME_LENGTH {
        return Err(format!(
            "Container name length of {} longer than {MAX_CONTAINER_NAME_LENGTH}",
            container.len()
        ));
    }
    if let Some(obj) = obj {
        if !obj.starts_with(RESERVED) && obj.len() > MAX_OBJECT_NAME_LENGTH {
            return Err(format!(
                "Object name length of {} longer than {MAX_OBJECT_NAME_LENGTH}",
                obj.len()
            ));
        }
    }
    Ok(())
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

/// Matches `\s*(token)/(token)(extension*\s*)$` where an extension is
/// `\s*;\s*token\s*=\s*(token|quoted-string)`; returns the three groups.
fn match_media_range(s: &str) -> Option<(String, String, String)> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
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
    i = skip_ws(i);
    let t_end = token(i)?;
    let typ: String = chars[i..t_end].iter().collect();
    if chars.get(t_end) != Some(&'/') {
        return None;
    }
    let s_start = t_end + 1;
    let s_end = token(s_start)?;
    let subtype: String = chars[s_start..s_end].iter().collect();
    let rest_start = s_end;
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
    let rest: String = chars[rest_start..].iter().collect();
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
    // Stable sort, best first (Python's sort(reverse=True) keeps ties in order).
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
    /// 400: a parameter or the `Accept` header is malformed.
    Bad(String),
    /// 406: nothing acceptable.
    NotAcceptable,
}

/// Swift's `get_listing_content_type`: `format=` wins over `Accept`; the
/// default is `text/plain`.
pub fn listing_content_type(
    params: &Params,
    accept: Option<&str>,
) -> Result<&'static str, ContentTypeError> {
    let format = params.get("format").map_err(ContentTypeError::Bad)?;
    let accept: String = match format.filter(|f| !f.is_empty()) {
        Some(f) => match f.to_lowercase().as_str() {
            "json" => "application/json".into(),
            "xml" => "application/xml".into(),
            _ => "text/plain".into(),
        },
        None => accept.unwrap_or("").to_string(),
    };
    let types =
        parse_accept(&accept).map_err(|_| ContentTypeError::Bad("Invalid Accept header".into()))?;
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

// ------------------------------------------------------ X-Container-Sync-To

/// Swift's `validate_sync_to` (error message on failure). Realms come from
/// `<swift_dir>/container-sync-realms.conf` when it exists.
pub fn validate_sync_to(value: &str, allowed_hosts: &[&str], swift_dir: &Path) -> Option<String> {
    let orig = value;
    let value = value.trim_end_matches('/');
    if value.is_empty() {
        return None;
    }
    if let Some(rest) = value.strip_prefix("//") {
        let data: Vec<&str> = rest.split('/').collect();
        if data.len() != 4 {
            return Some(format!("Invalid X-Container-Sync-To format {orig:?}"));
        }
        let (realm, cluster) = (data[0], data[1]);
        let realms =
            crate::config::ini::Ini::from_path(&swift_dir.join("container-sync-realms.conf")).ok();
        let section = realms.as_ref().and_then(|ini| {
            ini.section_names()
                .filter(|s| *s != crate::config::ini::DEFAULT_SECTION)
                .find(|s| s.to_uppercase() == realm.to_uppercase())
                .and_then(|s| ini.daemon_section(s))
        });
        let get = |key: &str| {
            section.as_ref().and_then(|sec| {
                sec.values
                    .iter()
                    .find(|(k, _)| k.to_lowercase() == key)
                    .map(|(_, v)| v.clone())
                    .filter(|v| !v.is_empty())
            })
        };
        if get("key").is_none() {
            return Some(format!("No realm key for {realm:?}"));
        }
        if get(&format!("cluster_{}", cluster.to_lowercase())).is_none() {
            return Some(format!("No cluster endpoint for {realm:?} {cluster:?}"));
        }
        return None;
    }
    let (scheme, rest) = match value.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (String::new(), value),
    };
    if scheme != "http" && scheme != "https" {
        return Some(format!(
            "Invalid scheme {scheme:?} in X-Container-Sync-To, must be \"//\", \"http\", or \"https\"."
        ));
    }
    let (netloc, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path_only = path.split(['?', '#']).next().unwrap_or("");
    if path_only.is_empty() {
        return Some("Path required in X-Container-Sync-To".into());
    }
    if path.contains(['?', '#'])
        || path_only
            .rsplit('/')
            .next()
            .is_some_and(|s| s.contains(';'))
    {
        return Some("Params, queries, and fragments not allowed in X-Container-Sync-To".into());
    }
    let hostport = netloc.rsplit('@').next().unwrap_or("");
    let host = if let Some(h) = hostport.strip_prefix('[') {
        h.split(']').next().unwrap_or("").to_string()
    } else {
        hostport.split(':').next().unwrap_or("").to_string()
    }
    .to_lowercase();
    if !allowed_hosts.contains(&host.as_str()) {
        return Some(format!("Invalid host {host:?} in X-Container-Sync-To"));
    }
    None
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
        assert_eq!(py_int("1.5"), None);
        assert_eq!(py_int(""), None);
        assert_eq!(py_int("99999999999999999999"), None);
        assert!(config_true_value("Yes") && !config_true_value("no"));
    }

    #[test]
    fn titles() {
        assert_eq!(title_header("x-container-meta-foo"), "X-Container-Meta-Foo");
        assert_eq!(
            title_header("X-CONTAINER-META-a1b_c"),
            "X-Container-Meta-A1B-C"
        );
        assert!(is_sys_or_user_meta("X-Container-Meta-X"));
        assert!(!is_sys_or_user_meta("X-Container-Meta-"));
        assert!(is_sys_or_user_meta("x-container-sysmeta-a"));
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
        assert_eq!(ct("image/png"), Err(ContentTypeError::NotAcceptable));
        assert!(matches!(ct("bogus"), Err(ContentTypeError::Bad(_))));
        assert!(matches!(
            ct("text/plain;q=1;q=2"),
            Err(ContentTypeError::Bad(_))
        ));
        let f = Params::parse(Some("format=XML"));
        assert_eq!(
            listing_content_type(&f, Some("text/plain")),
            Ok("application/xml")
        );
        let f = Params::parse(Some("format=nonsense"));
        assert_eq!(listing_content_type(&f, None), Ok("text/plain"));
    }

    #[test]
    fn names() {
        assert!(validate_names("a", "c", Some("o")).is_ok());
        assert!(validate_names("a\0", "c", None).is_err());
        assert!(validate_names("a", "\0c", None).is_ok());
        assert!(validate_names("a", "\0c", Some("o")).is_err());
        assert!(validate_names("a", "c", Some("\0o")).is_err());
        assert!(validate_names(".x", "c", Some("o\0")).is_ok());
        assert!(validate_names("a", &"c".repeat(257), None).is_err());
        assert!(validate_names("a", "c", Some(&"o".repeat(1025))).is_err());
        assert!(validate_names(".a", &"c".repeat(300), None).is_ok());
    }

    #[test]
    fn sync_to() {
        let d = Path::new("/nonexistent");
        let hosts = ["127.0.0.1"];
        assert_eq!(validate_sync_to("", &hosts, d), None);
        assert_eq!(validate_sync_to("http://127.0.0.1/v1/a/c", &hosts, d), None);
        assert!(validate_sync_to("ftp://127.0.0.1/v1/a/c", &hosts, d).is_some());
        assert!(validate_sync_to("http://10.0.0.1/v1/a/c", &hosts, d).is_some());
        assert!(validate_sync_to("http://127.0.0.1", &hosts, d).is_some());
        assert!(validate_sync_to("http://127.0.0.1/a?x", &hosts, d).is_some());
        assert!(validate_sync_to("//r/c/a/c", &hosts, d).is_some());
    }
}
