//! Container rows of an account DB (Swift's `AccountBroker` records) and
//! the account merge rule.

use serde::{Deserialize, Serialize};

use super::merge::{int_like, string_or_null};
use super::timestamp::{Timestamp, TimestampError};

/// One container row of an account DB: as stored in the `container` table,
/// sent in `merge_items`, or loaded from a pending record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerItem {
    /// Sender-local ROWID (replication only; never stored by a receiver).
    #[serde(rename = "ROWID", default, skip_serializing_if = "Option::is_none")]
    pub rowid: Option<i64>,
    pub name: String,
    #[serde(deserialize_with = "timestamp_text")]
    pub put_timestamp: String,
    #[serde(deserialize_with = "timestamp_text")]
    pub delete_timestamp: String,
    #[serde(deserialize_with = "int_like")]
    pub object_count: i64,
    #[serde(deserialize_with = "int_like")]
    pub bytes_used: i64,
    #[serde(default, deserialize_with = "int_like")]
    pub deleted: i64,
    #[serde(default, deserialize_with = "int_like")]
    pub storage_policy_index: i64,
}

/// Timestamps as text; a null reads as `"0"` (never newer than anything).
fn timestamp_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = string_or_null(d)?;
    Ok(if s.is_empty() { "0".into() } else { s })
}

fn ts(s: &str) -> Result<Timestamp, TimestampError> {
    if s.is_empty() || s == "0" {
        return Ok(Timestamp::ZERO);
    }
    Timestamp::parse(s)
}

impl ContainerItem {
    /// A container update as an account server records it (Swift's
    /// `put_container`): `deleted` when the delete is newer than the put
    /// and no objects are left.
    pub fn update(
        name: impl Into<String>,
        put_timestamp: impl Into<String>,
        delete_timestamp: impl Into<String>,
        object_count: i64,
        bytes_used: i64,
        storage_policy_index: i64,
    ) -> Result<Self, TimestampError> {
        let mut item = ContainerItem {
            rowid: None,
            name: name.into(),
            put_timestamp: put_timestamp.into(),
            delete_timestamp: delete_timestamp.into(),
            object_count,
            bytes_used,
            deleted: 0,
            storage_policy_index,
        };
        item.deleted = item.is_deleted()? as i64;
        Ok(item)
    }

    /// Deleted after its last PUT, with no objects left.
    pub fn is_deleted(&self) -> Result<bool, TimestampError> {
        Ok(ts(&self.delete_timestamp)? > ts(&self.put_timestamp)? && self.object_count == 0)
    }

    /// Both timestamps parse.
    pub fn check(&self) -> Result<(), TimestampError> {
        ts(&self.put_timestamp)?;
        ts(&self.delete_timestamp)?;
        Ok(())
    }

    /// What the row is stored as, for comparing with a stored row.
    fn same_row(&self, other: &ContainerItem) -> bool {
        self.name == other.name
            && self.put_timestamp == other.put_timestamp
            && self.delete_timestamp == other.delete_timestamp
            && self.object_count == other.object_count
            && self.bytes_used == other.bytes_used
            && self.deleted == other.deleted
            && self.storage_policy_index == other.storage_policy_index
    }
}

/// Swift's account merge rule: against an existing row of the same name,
/// keep the newer `put_timestamp` and the newer `delete_timestamp`, and
/// recompute `deleted` from them and the incoming object count; the
/// incoming counts and policy always win. Returns whether the row must be
/// written (false only when it equals the stored row, which Swift would
/// rewrite identically).
pub fn merge_container_row(
    new: &mut ContainerItem,
    existing: Option<&ContainerItem>,
) -> Result<bool, TimestampError> {
    let Some(old) = existing else {
        return Ok(true);
    };
    if ts(&old.put_timestamp)? > ts(&new.put_timestamp)? {
        new.put_timestamp.clone_from(&old.put_timestamp);
    }
    if ts(&old.delete_timestamp)? > ts(&new.delete_timestamp)? {
        new.delete_timestamp.clone_from(&old.delete_timestamp);
    }
    new.deleted = new.is_deleted()? as i64;
    Ok(!new.same_row(old))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(put: &str, del: &str, count: i64) -> ContainerItem {
        ContainerItem::update("c", put, del, count, count * 10, 0).unwrap()
    }

    #[test]
    fn newest_timestamps_win_counts_come_from_the_incoming_row() {
        let old = row("1700000002.00000", "0", 5);
        let mut new = row("1700000001.00000", "0", 3);
        assert!(merge_container_row(&mut new, Some(&old)).unwrap());
        assert_eq!(new.put_timestamp, "1700000002.00000");
        assert_eq!((new.object_count, new.deleted), (3, 0));
    }

    #[test]
    fn deleted_needs_a_newer_delete_and_no_objects() {
        let old = row("1700000001.00000", "0", 0);
        let mut del = row("0", "1700000002.00000", 0);
        merge_container_row(&mut del, Some(&old)).unwrap();
        assert_eq!(del.deleted, 1);
        let mut del_with_objects = row("0", "1700000002.00000", 1);
        merge_container_row(&mut del_with_objects, Some(&old)).unwrap();
        assert_eq!(del_with_objects.deleted, 0);
    }

    #[test]
    fn identical_rows_are_not_rewritten() {
        let old = row("1700000001.00000", "0", 2);
        let mut same = old.clone();
        assert!(!merge_container_row(&mut same, Some(&old)).unwrap());
    }
}
