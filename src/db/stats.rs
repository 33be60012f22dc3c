//! What the row tables' triggers maintain (per-policy counts, the DB's
//! totals and its `chexor` hash), computed in Rust so that merges can run
//! with SQLite's triggers switched off and apply the same changes in the
//! same transaction. The triggers stay in the schema: any other writer
//! (Swift included) keeps them working as before.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

/// The running XOR of `md5(name + "-" + key)` over rows inserted and
/// deleted: what `chexor` does row by row (XOR commutes, so the order of
/// the rows does not matter).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HashXor([u8; 16]);

impl HashXor {
    pub fn add(&mut self, name: &str, key: &str) {
        let mut h = Md5::new();
        h.update(name.as_bytes());
        h.update(b"-");
        h.update(key.as_bytes());
        let d: [u8; 16] = h.finalize().into();
        for (a, b) in self.0.iter_mut().zip(d) {
            *a ^= b;
        }
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }

    /// `old` (32 hex digits) with this XOR applied.
    pub fn apply(&self, old: &str) -> Option<String> {
        let mut acc: [u8; 16] = hex::decode(old).ok()?.try_into().ok()?;
        for (a, b) in acc.iter_mut().zip(self.0) {
            *a ^= b;
        }
        Some(hex::encode(acc))
    }
}

/// One policy's `policy_stat` row as the triggers would leave it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PolicyDelta {
    /// The row existed before the merge.
    pub existed: bool,
    /// The row exists now (existed, or an insert created it).
    pub exists: bool,
    /// Added to the row's counters: `[container_count, object_count,
    /// bytes_used]` (containers use the last two).
    pub add: [i64; 3],
}

/// The per-policy effects of a merge, event by event as the triggers run:
/// an insert creates a missing policy row, a delete on a missing row does
/// nothing.
#[derive(Debug, Default)]
pub(crate) struct PolicyDeltas {
    pub rows: BTreeMap<i64, PolicyDelta>,
}

impl PolicyDeltas {
    fn entry(
        &mut self,
        policy: i64,
        exists: &mut dyn FnMut(i64) -> super::Result<bool>,
    ) -> super::Result<&mut PolicyDelta> {
        use std::collections::btree_map::Entry;
        Ok(match self.rows.entry(policy) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let e = exists(policy)?;
                v.insert(PolicyDelta {
                    existed: e,
                    exists: e,
                    add: [0; 3],
                })
            }
        })
    }

    pub fn insert(
        &mut self,
        policy: i64,
        add: [i64; 3],
        exists: &mut dyn FnMut(i64) -> super::Result<bool>,
    ) -> super::Result<()> {
        let d = self.entry(policy, exists)?;
        d.exists = true;
        for (a, v) in d.add.iter_mut().zip(add) {
            *a += v;
        }
        Ok(())
    }

    pub fn delete(
        &mut self,
        policy: i64,
        sub: [i64; 3],
        exists: &mut dyn FnMut(i64) -> super::Result<bool>,
    ) -> super::Result<()> {
        let d = self.entry(policy, exists)?;
        if d.exists {
            for (a, v) in d.add.iter_mut().zip(sub) {
                *a -= v;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_xor_matches_chexor() {
        let z = "00000000000000000000000000000000";
        let mut x = HashXor::default();
        x.add("a", "1");
        x.add("b", "2");
        let want =
            crate::swift::chexor(&crate::swift::chexor(z, "a", "1").unwrap(), "b", "2").unwrap();
        assert_eq!(x.apply(z).unwrap(), want);
        x.add("a", "1");
        x.add("b", "2");
        assert!(x.is_zero());
    }

    #[test]
    fn policy_rows_follow_the_trigger_sequence() {
        let mut d = PolicyDeltas::default();
        let mut none = |_| Ok(false);
        // A delete before any insert on a missing row does nothing.
        d.delete(1, [0, 1, 10], &mut none).unwrap();
        d.insert(1, [0, 1, 5], &mut none).unwrap();
        d.delete(1, [0, 1, 5], &mut none).unwrap();
        d.insert(1, [0, 0, 7], &mut none).unwrap();
        let r = d.rows[&1];
        assert!(!r.existed && r.exists);
        assert_eq!(r.add, [0, 0, 7]);
    }
}
