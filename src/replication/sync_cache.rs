//! The receiver's answers to `sync` for DBs that have not changed since
//! an earlier answer: given by the file's stamp (see
//! [`super::pass_state::stamp`]: two `stat`s, the 28-byte header at most)
//! instead of opening the DB and reading its info and sync table.
//!
//! An entry holds, for one DB file and one stamp, the DB's replication
//! info, the incoming sync points of the callers it answered, and the
//! argument sets (metadata, DB timestamps, policy) found to change nothing.
//! It is recorded only when a `sync` wrote nothing (the stamp before and
//! after are equal); any write to the file, a replaced file or pending rows
//! change the stamp, and the entry is not used again. A cached answer is
//! given only when the `sync` would write nothing: its side-effect
//! arguments are ones found to change nothing under this stamp, and it
//! would not raise the caller's sync point.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::pass_state::{self, Stamp};
use super::wire::SyncArgs;
use crate::db::DbInfo;
use crate::swift::pyjson;

/// DB files remembered at most (the oldest insertions go first): about
/// 100 MB at most for a node's worth of DBs.
const CAPACITY: usize = 131_072;
/// Argument sets remembered per entry.
const NOOP_ARGS: usize = 8;

/// One DB file's answer: its JSON (as Swift's `json.dumps`) cut where the
/// caller's point goes, so an entry is one string, not a parsed info.
#[derive(Debug)]
struct Entry {
    stamp: Stamp,
    hash: String,
    before_point: Box<str>,
    after_point: Box<str>,
    points: Vec<(String, i64)>,
    noop_args: Vec<u64>,
}

impl Entry {
    fn point(&self, id: &str) -> Option<i64> {
        self.points.iter().find(|(i, _)| i == id).map(|(_, p)| *p)
    }

    /// The answer's JSON text cut at the point's value (None if the text
    /// has no such key).
    fn cut<I: DbInfo>(info: &I) -> Option<(Box<str>, Box<str>)> {
        const MARK: i64 = i64::MIN;
        let mut marked = info.clone();
        marked.set_point(Some(MARK));
        let text = pyjson::dumps(&serde_json::to_value(&marked).ok()?);
        // Inside JSON strings quotes are escaped: the key is unique.
        let key = format!("\"point\": {MARK}");
        let at = text.find(&key)?;
        let split = at + key.len() - MARK.to_string().len();
        Some((text[..split].into(), text[at + key.len()..].into()))
    }
}

/// Cached `sync` answers of one kind of DB.
#[derive(Debug)]
pub struct SyncCache<I> {
    inner: Mutex<Inner>,
    kind: std::marker::PhantomData<fn(I)>,
}

#[derive(Debug)]
struct Inner {
    entries: HashMap<PathBuf, Entry>,
    order: std::collections::VecDeque<PathBuf>,
}

impl<I> Default for SyncCache<I> {
    fn default() -> Self {
        SyncCache {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: Default::default(),
            }),
            kind: std::marker::PhantomData,
        }
    }
}

/// A digest of the arguments whose effect (a write or none) depends only
/// on the DB's state: metadata, DB timestamps, policy.
fn side_effect_digest(args: &SyncArgs) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    args.metadata.hash(&mut h);
    args.created_at.hash(&mut h);
    args.put_timestamp.hash(&mut h);
    args.delete_timestamp.hash(&mut h);
    args.policy.hash(&mut h);
    h.finish()
}

impl<I: DbInfo> SyncCache<I> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The stamp of `db_file` now, compared with its entry's.
    pub fn stamp(&self, db_file: &Path) -> Option<Stamp> {
        let known = self.lock().entries.get(db_file).map(|e| e.stamp);
        pass_state::stamp(db_file, known.as_ref())
    }

    /// The answer's JSON (info with the caller's point) if the file is
    /// unchanged since a recorded answer and this `sync` would write
    /// nothing.
    pub fn answer(&self, db_file: &Path, args: &SyncArgs) -> Option<String> {
        let stamp = self.stamp(db_file)?;
        let g = self.lock();
        let e = g.entries.get(db_file)?;
        if e.stamp != stamp || !e.noop_args.contains(&side_effect_digest(args)) {
            return None;
        }
        let point = e.point(&args.id)?;
        if args.hash == e.hash && point < args.max_row {
            return None;
        }
        Some(format!("{}{point}{}", e.before_point, e.after_point))
    }

    /// Records an answer given by the DB itself: `before` and `after` are
    /// the file's stamps around the `sync`; unequal (it wrote), nothing is
    /// kept. Returns the answer's JSON text (serialized once, for the
    /// cache and the reply), or None when it has no point to cut at.
    pub fn record(
        &self,
        db_file: &Path,
        before: Option<Stamp>,
        after: Option<Stamp>,
        args: &SyncArgs,
        answer: &I,
    ) -> Option<String> {
        let cut = answer.point().zip(Entry::cut(answer));
        let text = cut
            .as_ref()
            .map(|(point, (head, tail))| format!("{head}{point}{tail}"));
        let mut g = self.lock();
        let (Some(before), Some(after)) = (before, after) else {
            g.entries.remove(db_file);
            return text;
        };
        if before != after {
            g.entries.remove(db_file);
            return text;
        }
        let Some((point, (before_point, after_point))) = cut else {
            g.entries.remove(db_file);
            return text;
        };
        let digest = side_effect_digest(args);
        let entry = |stamp| Entry {
            stamp,
            hash: answer.hash().to_string(),
            before_point,
            after_point,
            points: vec![(args.id.clone(), point)],
            noop_args: vec![digest],
        };
        let fresh = match g.entries.get_mut(db_file) {
            Some(e) if e.stamp == after => {
                match e.points.iter_mut().find(|(i, _)| *i == args.id) {
                    Some(p) => p.1 = point,
                    None => e.points.push((args.id.clone(), point)),
                }
                if !e.noop_args.contains(&digest) {
                    if e.noop_args.len() >= NOOP_ARGS {
                        e.noop_args.remove(0);
                    }
                    e.noop_args.push(digest);
                }
                false
            }
            Some(e) => {
                *e = entry(after);
                false
            }
            None => {
                g.entries.insert(db_file.to_path_buf(), entry(after));
                true
            }
        };
        if fresh {
            g.order.push_back(db_file.to_path_buf());
            while g.entries.len() > CAPACITY {
                let Some(old) = g.order.pop_front() else {
                    break;
                };
                g.entries.remove(&old);
            }
            // Paths whose entries were removed otherwise linger in `order`.
            if g.order.len() > 2 * CAPACITY {
                let Inner { entries, order } = &mut *g;
                order.retain(|p| entries.contains_key(p));
            }
        }
        text
    }

    /// DB files with an entry.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ContainerInfo;

    /// The text `record` returns (the reply, and what the cache keeps cut
    /// at the point) is the answer's own serialization, byte for byte,
    /// whether or not it is kept.
    #[test]
    fn recorded_text_is_the_answers_serialization() {
        let cache = SyncCache::<ContainerInfo>::default();
        let info = ContainerInfo {
            account: "a".into(),
            container: "c \"quoted\" \"point\": 1".into(),
            hash: "0123".into(),
            id: "id-1".into(),
            max_row: 42,
            metadata: r#"{"X-Container-Meta-Point": ["point", "1"]}"#.into(),
            point: Some(-1),
            ..Default::default()
        };
        let want = pyjson::dumps(&serde_json::to_value(&info).unwrap());
        let args = SyncArgs {
            max_row: 7,
            hash: "other".into(),
            id: "peer".into(),
            created_at: String::new(),
            put_timestamp: String::new(),
            delete_timestamp: String::new(),
            metadata: String::new(),
            policy: None,
        };
        let path = Path::new("/nonexistent/x.db");
        let s = Stamp {
            size: 1,
            mtime_ns: 1,
            ino: 1,
            counter: None,
        };
        // Kept (equal stamps), and not kept (the sync wrote): same text.
        assert_eq!(
            cache.record(path, Some(s), Some(s), &args, &info),
            Some(want.clone())
        );
        assert_eq!(cache.len(), 1);
        let other = Stamp { size: 2, ..s };
        assert_eq!(
            cache.record(path, Some(s), Some(other), &args, &info),
            Some(want)
        );
        assert_eq!(cache.len(), 0);
        // No point: nothing to cut, the caller serializes it itself.
        let bare = ContainerInfo {
            point: None,
            ..info
        };
        assert_eq!(cache.record(path, Some(s), Some(s), &args, &bare), None);
    }
}
