//! What the container API checks that the account API does not: object
//! and container names (Swift's `validate_internal_*` and the proxy's
//! name lengths) and `X-Container-Sync-To`.

use std::path::Path;

use crate::server::request::{valid_internal_name, AUTO_CREATE_ACCOUNT_PREFIX, RESERVED};

/// `.shards_` accounts are never auto-created by object updates.
pub const SHARDS_ACCOUNT_PREFIX: &str = ".shards_";
/// Swift's misplaced-objects account (reconciler).
pub const MISPLACED_OBJECTS_ACCOUNT: &str = ".misplaced_objects";

/// Swift's `validate_internal_container` / `validate_internal_obj`: the
/// reserved namespace rules. Name lengths are the proxy's constraint, not
/// the container server's: a too-long name is a container that does not
/// exist.
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
    Ok(())
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
    fn names() {
        assert!(validate_names("a", "c", Some("o")).is_ok());
        assert!(validate_names("a\0", "c", None).is_err());
        assert!(validate_names("a", "\0c", None).is_ok());
        assert!(validate_names("a", "\0c", Some("o")).is_err());
        assert!(validate_names("a", "c", Some("\0o")).is_err());
        assert!(validate_names(".x", "c", Some("o\0")).is_ok());
        // Swift's container server leaves name lengths to the proxy: a
        // long name is simply a container that does not exist (404).
        assert!(validate_names("a", &"c".repeat(257), None).is_ok());
        assert!(validate_names("a", "c", Some(&"o".repeat(1025))).is_ok());
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
