//! The account API's path rule: Swift's `split_path` followed by
//! `validate_device_partition`, with Swift's messages. (The container API
//! uses [`crate::server::split_path`].)

use crate::server::request::quote;

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
}
