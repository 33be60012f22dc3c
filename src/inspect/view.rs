//! A quick snapshot of one replica of a container or account DB, read
//! directly from its file while servers and replicators keep running:
//! open, read, drop. (Reading commits the pending file under the same
//! directory lock the server uses, exactly what a HEAD or GET does.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::db::files::db_files;
use crate::db::{Account, Broker, Container, DbInfo, DbKind, SyncPoint};
use crate::swift::decode_timestamps;

/// How a kind's rows appear in a view: `((name, policy), version,
/// deleted)`, the version ordered by newness (a row's `created_at`; an
/// account row's put/delete timestamps and counts).
pub trait Viewed: DbKind {
    fn view_item(item: &Self::Item) -> ((String, i64), String, bool);
}

impl Viewed for Container {
    fn view_item(i: &Self::Item) -> ((String, i64), String, bool) {
        (
            (i.name.clone(), i.storage_policy_index),
            i.created_at.clone(),
            i.deleted == 1,
        )
    }
}

impl Viewed for Account {
    fn view_item(i: &Self::Item) -> ((String, i64), String, bool) {
        (
            (i.name.clone(), 0),
            format!(
                "{}|{}|{}|{}|{}",
                i.put_timestamp,
                i.delete_timestamp,
                i.object_count,
                i.bytes_used,
                i.storage_policy_index
            ),
            i.deleted == 1,
        )
    }
}

/// One replica as read from its DB file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaView {
    /// The DB file read (None: no DB for this hash on the device).
    pub path: Option<PathBuf>,
    pub id: String,
    pub hash: String,
    pub max_row: i64,
    /// Rows in the row table, tombstones included.
    pub rows: i64,
    pub tombstones: i64,
    /// Live rows (objects / containers) and their bytes.
    pub count: i64,
    pub bytes_used: i64,
    pub incoming: Vec<SyncPoint>,
    pub outgoing: Vec<SyncPoint>,
    /// `(name, policy) -> version` of every row (see [`Viewed`]).
    pub items: BTreeMap<(String, i64), String>,
    /// Why the replica could not be read this time (busy, replaced...).
    pub error: Option<String>,
}

impl ReplicaView {
    pub fn exists(&self) -> bool {
        self.path.is_some()
    }

    /// Reads the current DB of kind `K` for `hash` in `hash_dir`;
    /// `lock_timeout` bounds the wait for the pending-file lock.
    pub fn read<K: Viewed>(hash_dir: &Path, hash: &str, lock_timeout: Duration) -> ReplicaView {
        let Some(path) = db_files(hash_dir, hash).pop() else {
            return ReplicaView::default();
        };
        let mut view = ReplicaView {
            path: Some(path.clone()),
            ..Default::default()
        };
        if let Err(e) = view.fill::<K>(&path, lock_timeout) {
            view.error = Some(e.to_string());
        }
        view
    }

    fn fill<K: Viewed>(&mut self, path: &Path, lock_timeout: Duration) -> crate::db::Result<()> {
        let mut b = Broker::<K>::open_checked(path)?;
        b.set_pending_timeout(lock_timeout);
        let info = b.get_replication_info()?;
        self.id = info.id().to_string();
        self.hash = info.hash().to_string();
        self.max_row = info.max_row();
        self.count = info.count();
        self.bytes_used = info.bytes_used();
        self.incoming = b.get_syncs(true)?;
        self.outgoing = b.get_syncs(false)?;
        let items = b.items_since_no_commit(-1, usize::MAX >> 1)?;
        self.rows = items.len() as i64;
        self.tombstones = 0;
        self.items = BTreeMap::new();
        for item in &items {
            let (key, version, deleted) = K::view_item(item);
            self.tombstones += i64::from(deleted);
            self.items.insert(key, version);
        }
        Ok(())
    }

    /// Same rows and same hash as `other` (both readable).
    pub fn identical(&self, other: &ReplicaView) -> bool {
        self.exists()
            && other.exists()
            && self.error.is_none()
            && other.error.is_none()
            && self.hash == other.hash
            && self.rows == other.rows
            && self.count == other.count
            && self.bytes_used == other.bytes_used
            && self.items == other.items
    }
}

/// Orders two `created_at` values by their decoded timestamps (data,
/// content-type, metadata), falling back to the text.
fn newer(a: &str, b: &str) -> bool {
    match (decode_timestamps(a), decode_timestamps(b)) {
        (Ok(x), Ok(y)) => (x.0, x.1, x.2) > (y.0, y.1, y.2),
        _ => a > b,
    }
}

/// The newest version of every row any replica holds:
/// `(name, policy) -> created_at`.
pub fn target_rows(views: &[&ReplicaView]) -> BTreeMap<(String, i64), String> {
    let mut target: BTreeMap<(String, i64), String> = BTreeMap::new();
    for v in views {
        for (k, ts) in &v.items {
            match target.get(k) {
                Some(cur) if !newer(ts, cur) => {}
                _ => {
                    target.insert(k.clone(), ts.clone());
                }
            }
        }
    }
    target
}

/// How many rows of `target` `view` lacks or holds in an older version.
pub fn lag(view: &ReplicaView, target: &BTreeMap<(String, i64), String>) -> usize {
    target
        .iter()
        .filter(|(k, ts)| view.items.get(*k) != Some(*ts))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(rows: &[(&str, &str)]) -> ReplicaView {
        ReplicaView {
            path: Some(PathBuf::from("x")),
            items: rows
                .iter()
                .map(|(n, t)| ((n.to_string(), 0), t.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn lag_counts_missing_and_stale_rows() {
        let a = view(&[("a", "1700000001.00000"), ("b", "1700000002.00000")]);
        let b = view(&[("a", "1700000003.00000")]);
        let t = target_rows(&[&a, &b]);
        assert_eq!(t[&("a".to_string(), 0)], "1700000003.00000");
        assert_eq!(lag(&a, &t), 1);
        assert_eq!(lag(&b, &t), 1);
        assert!(!a.identical(&b));
        assert!(a.identical(&a.clone()));
    }
}
