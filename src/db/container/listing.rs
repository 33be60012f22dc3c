//! Object listings of a container DB (Swift's `list_objects_iter`).

use super::{row_to_item, ContainerBroker};
use crate::db::core::increment_last_char;
use crate::db::Result;
use crate::swift::merge::ObjectItem;

/// Options of an object listing (Swift's `list_objects_iter`).
#[derive(Debug, Clone, Default)]
pub struct ListingParams {
    pub limit: usize,
    pub marker: String,
    pub end_marker: String,
    pub prefix: Option<String>,
    pub delimiter: Option<String>,
    pub path: Option<String>,
    pub storage_policy_index: i64,
    pub reverse: bool,
    /// `Some(false)`: live rows only (default); `Some(true)`: tombstones
    /// only; `None`: both.
    pub include_deleted: Option<bool>,
    pub since_row: Option<i64>,
    pub all_policies: bool,
    pub allow_reserved: bool,
}

impl ListingParams {
    pub fn new(limit: usize) -> Self {
        ListingParams {
            limit,
            include_deleted: Some(false),
            ..Default::default()
        }
    }
}

/// One listing entry: an object row or a `subdir` (delimiter roll-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListingEntry {
    Object(ObjectItem),
    Subdir(String),
}

impl ContainerBroker {
    /// Swift's `list_objects_iter`: rows in name order (or reverse) within
    /// marker / end_marker / prefix, with delimiter roll-ups.
    pub fn list_objects(&self, p: &ListingParams) -> Result<Vec<ListingEntry>> {
        self.commit_pending()?;
        let deleted_arg = match p.include_deleted {
            Some(true) => " = 1",
            Some(false) => " = 0",
            None => " IN (0, 1)",
        };
        let deleted_key = if self.db_version >= 1 {
            "deleted"
        } else {
            "+deleted"
        };
        let (mut marker, mut end_marker) = if p.reverse {
            (p.end_marker.clone(), p.marker.clone())
        } else {
            (p.marker.clone(), p.end_marker.clone())
        };
        let mut prefix = p.prefix.clone();
        let mut delimiter = p.delimiter.clone().filter(|d| !d.is_empty());
        let mut path = p.path.clone();
        if let Some(pa) = path.as_mut() {
            if !pa.is_empty() {
                *pa = format!("{}/", pa.trim_end_matches('/'));
            }
            prefix = Some(pa.clone());
            delimiter = Some("/".to_string());
        } else if delimiter.is_some() && prefix.as_deref().unwrap_or("").is_empty() {
            prefix = Some(String::new());
        }
        let end_prefix = prefix
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(increment_last_char);
        let orig_marker = marker.clone();
        let mut delim_force_gte = false;
        let mut results: Vec<ListingEntry> = Vec::new();
        let limit = p.limit;
        let nonempty_prefix = prefix.as_deref().filter(|s| !s.is_empty());
        // Bounded: each round either ends the listing or moves the marker
        // past at least one name.
        while results.len() < limit {
            let mut conds: Vec<String> = Vec::new();
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            match (&end_prefix, nonempty_prefix) {
                (Some(ep), Some(_)) if end_marker.is_empty() || end_marker >= *ep => {
                    conds.push("name < ?".into());
                    args.push(ep.clone().into());
                }
                _ if !end_marker.is_empty() => {
                    conds.push("name < ?".into());
                    args.push(end_marker.clone().into());
                }
                _ => {}
            }
            if delim_force_gte {
                conds.push("name >= ?".into());
                args.push(marker.clone().into());
                delim_force_gte = false;
            } else if !marker.is_empty() && nonempty_prefix.is_none_or(|pr| marker.as_str() >= pr) {
                conds.push("name > ?".into());
                args.push(marker.clone().into());
            } else if let Some(pr) = nonempty_prefix {
                conds.push("name >= ?".into());
                args.push(pr.to_string().into());
            }
            if !p.allow_reserved {
                conds.push("name >= ?".into());
                args.push("\u{1}".to_string().into());
            }
            conds.push(format!("{deleted_key}{deleted_arg}"));
            if let Some(since) = p.since_row.filter(|s| *s != 0) {
                conds.push("ROWID > ?".into());
                args.push(since.into());
            }
            if !p.all_policies {
                conds.push("storage_policy_index = ?".into());
                args.push(p.storage_policy_index.into());
            }
            let sql = format!(
                "SELECT name, created_at, size, content_type, etag, deleted, storage_policy_index
                 FROM object WHERE {} ORDER BY name {} LIMIT ?",
                conds.join(" AND "),
                if p.reverse { "DESC" } else { "" }
            );
            args.push(((limit - results.len()) as i64).into());
            let mut q = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
            let rows: Vec<ObjectItem> = q
                .query_map(rusqlite::params_from_iter(args.iter()), row_to_item)
                .map_err(|e| self.err(e))?
                .collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?;
            let (Some(prefix), Some(delimiter)) = (prefix.as_deref(), delimiter.as_deref()) else {
                results.extend(rows.into_iter().map(ListingEntry::Object));
                return Ok(results);
            };
            if rows.is_empty() {
                break;
            }
            let mut broke = false;
            for row in rows {
                let name = row.name.clone();
                if p.reverse {
                    end_marker.clone_from(&name);
                } else {
                    marker.clone_from(&name);
                }
                if results.len() >= limit {
                    return Ok(results);
                }
                let end = name
                    .get(prefix.len()..)
                    .and_then(|rest| rest.find(delimiter))
                    .map(|i| i + prefix.len());
                if path.is_some() {
                    if Some(name.as_str()) == path.as_deref() {
                        continue;
                    }
                    if let Some(end) = end {
                        if name.len() > end + delimiter.len() {
                            if p.reverse {
                                end_marker = name[..end + delimiter.len()].to_string();
                            } else {
                                marker =
                                    format!("{}{}", &name[..end], increment_last_char(delimiter));
                            }
                            broke = true;
                            break;
                        }
                    }
                } else if let Some(end) = end {
                    if p.reverse {
                        end_marker = name[..end + delimiter.len()].to_string();
                    } else {
                        marker = format!("{}{}", &name[..end], increment_last_char(delimiter));
                        delim_force_gte = true;
                    }
                    let dir_name = name[..end + delimiter.len()].to_string();
                    if dir_name != orig_marker {
                        results.push(ListingEntry::Subdir(dir_name));
                    }
                    broke = true;
                    break;
                }
                results.push(ListingEntry::Object(row));
            }
            let _ = broke;
        }
        Ok(results)
    }
}
