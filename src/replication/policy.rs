//! Storage-policy disagreement between replicas (Swift's
//! `cmp_policy_info` / `incorrect_policy_index`): which replica's policy
//! index wins.

use std::cmp::Ordering;

use crate::swift::Timestamp;

/// The parts of a replica's info the policy decision looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    pub put_timestamp: String,
    pub delete_timestamp: String,
    pub status_changed_at: String,
    pub count: i64,
    pub storage_policy_index: i64,
}

impl PolicyInfo {
    /// The policy facts of a DB's info; `None` for kinds without a policy.
    pub fn of<I: crate::db::DbInfo>(i: &I) -> Option<Self> {
        Some(PolicyInfo {
            put_timestamp: i.put_timestamp().to_string(),
            delete_timestamp: i.delete_timestamp().to_string(),
            status_changed_at: i.status_changed_at().to_string(),
            count: i.count(),
            storage_policy_index: i.storage_policy_index()?,
        })
    }
}

fn is_deleted(i: &PolicyInfo) -> bool {
    i.delete_timestamp > i.put_timestamp && i.count == 0
}

fn has_been_recreated(i: &PolicyInfo) -> bool {
    i.put_timestamp > i.delete_timestamp
        && Timestamp::parse(&i.delete_timestamp).is_ok_and(|t| t > Timestamp::ZERO)
}

/// `Less` when ours is right, `Greater` when the remote's is better.
pub fn cmp_policy_info(ours: &PolicyInfo, remote: &PolicyInfo) -> Ordering {
    let deleted = is_deleted(ours);
    let remote_deleted = is_deleted(remote);
    if deleted || remote_deleted {
        if !deleted {
            return Ordering::Less;
        } else if !remote_deleted {
            return Ordering::Greater;
        }
        return remote.status_changed_at.cmp(&ours.status_changed_at);
    }
    let recreated = has_been_recreated(ours);
    let remote_recreated = has_been_recreated(remote);
    if recreated || remote_recreated {
        if !recreated {
            return Ordering::Greater;
        } else if !remote_recreated {
            return Ordering::Less;
        }
        let latest_delete = std::cmp::max(&ours.delete_timestamp, &remote.delete_timestamp);
        if &ours.put_timestamp < latest_delete {
            return Ordering::Greater;
        } else if &remote.put_timestamp < latest_delete {
            return Ordering::Less;
        }
    }
    ours.status_changed_at.cmp(&remote.status_changed_at)
}

/// Should we adopt the remote's storage policy index?
pub fn incorrect_policy_index(ours: &PolicyInfo, remote: &PolicyInfo) -> bool {
    remote.storage_policy_index != ours.storage_policy_index
        && cmp_policy_info(ours, remote) == Ordering::Greater
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pi(put: &str, del: &str, sca: &str, count: i64, spi: i64) -> PolicyInfo {
        PolicyInfo {
            put_timestamp: put.into(),
            delete_timestamp: del.into(),
            status_changed_at: sca.into(),
            count,
            storage_policy_index: spi,
        }
    }

    #[test]
    fn oldest_assignment_wins_when_neither_deleted() {
        let a = pi("0000000002.00000", "0", "0000000002.00000", 1, 0);
        let b = pi("0000000003.00000", "0", "0000000003.00000", 1, 1);
        assert!(!incorrect_policy_index(&a, &b));
        assert!(incorrect_policy_index(&b, &a));
    }

    #[test]
    fn undeleted_beats_deleted_and_recreated_beats_plain() {
        let deleted = pi(
            "0000000001.00000",
            "0000000005.00000",
            "0000000005.00000",
            0,
            0,
        );
        let live = pi("0000000002.00000", "0", "0000000002.00000", 0, 1);
        assert!(incorrect_policy_index(&deleted, &live));
        assert!(!incorrect_policy_index(&live, &deleted));
        let recreated = pi(
            "0000000009.00000",
            "0000000005.00000",
            "0000000009.00000",
            0,
            2,
        );
        assert!(incorrect_policy_index(&live, &recreated));
        assert!(!incorrect_policy_index(&recreated, &live));
    }
}
