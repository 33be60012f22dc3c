//! A DB file corrupted at rest, in pages that ordinary reads never touch
//! (found by the chaos suite: such a replica served and "converged" while
//! `PRAGMA integrity_check` failed): the replicator's integrity check on
//! its first pass quarantines it, and a peer restores it.

mod common;

use common::*;
use rowsync::db::ContainerBroker;
use rowsync::replication::daemon::PassFilter;

const A: &str = "AUTH_corrupt";
const C: &str = "cont";

/// Overwrites one 4 KiB page of `bytes`.
fn with_page_broken(bytes: &[u8], page: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for (i, x) in b[page * 4096..(page + 1) * 4096].iter_mut().enumerate() {
        *x = (i * 7 + 13) as u8;
    }
    b
}

/// A page whose corruption ordinary reads do not notice but the integrity
/// check does (tried on scratch copies of `db`).
fn silent_page(db: &std::path::Path) -> Option<usize> {
    silent_page_for(db, |_| true)
}

/// As [`silent_page`], for a page that `also_reads_fine` reads fine too.
fn silent_page_for(
    db: &std::path::Path,
    also_reads_fine: impl Fn(&ContainerBroker) -> bool,
) -> Option<usize> {
    let bytes = std::fs::read(db).unwrap();
    let pages = bytes.len() / 4096;
    let scratch = tempfile::tempdir().unwrap();
    for page in (1..pages).rev() {
        let h = "0123456789abcdef0123456789abcabc";
        let copy = scratch
            .path()
            .join(format!("sda/containers/0/abc/{h}/{h}.db"));
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::write(&copy, with_page_broken(&bytes, page)).unwrap();
        let Ok(b) = ContainerBroker::open(&copy) else {
            continue;
        };
        let reads_fine =
            b.get_info().is_ok() && b.get_items_since(-1, 100_000).is_ok() && also_reads_fine(&b);
        let check_fails = !matches!(b.integrity_check().as_deref(), Ok("ok"));
        if reads_fine && check_fails {
            return Some(page);
        }
    }
    None
}

/// A two-node cluster, the primaries of `A/C`, and its DB on the first
/// with 400 rows.
async fn cluster_with_rows() -> (Cluster, Vec<usize>, ContainerBroker) {
    let cl = Cluster::start(2, 2, 2).await;
    let p = cl.primaries(cl.part(A, C));
    let db = cl.create_db(p[0], A, C);
    db.merge_items(
        (0..400)
            .map(|i| obj(&format!("object-name-{i:05}"), &ts(i), "text/plain"))
            .collect(),
        None,
    )
    .unwrap();
    (cl, p, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_corrupted_at_rest_is_quarantined_and_restored_from_a_peer() {
    let (cl, p, db) = cluster_with_rows().await;
    let s = cl
        .replicator(p[0], "")
        .run_once(&PassFilter::default())
        .await;
    assert_eq!(s.rsync, 1);
    let path = cl.db_path(p[1], A, C);
    let page = silent_page(&path).expect("a page that only the integrity check notices");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, with_page_broken(&bytes, page)).unwrap();
    {
        let b = ContainerBroker::open(&path).unwrap();
        assert!(b.get_items_since(-1, 100_000).is_ok(), "reads still work");
        assert_ne!(b.integrity_check().unwrap(), "ok");
    }
    // The corrupt replica's own replicator: first pass after its start.
    let s = cl
        .replicator(p[1], "")
        .run_once(&PassFilter::default())
        .await;
    assert!(s.failure >= 1, "{s:?}");
    assert!(!path.exists(), "the corrupt DB was quarantined");
    let quarantined = cl.nodes[p[1]]
        .devices
        .join(format!("sd{}/quarantined/containers", p[1]));
    assert!(quarantined.is_dir());
    // Its peer restores it.
    let s = cl
        .replicator(p[0], "")
        .run_once(&PassFilter::default())
        .await;
    assert_eq!(s.rsync, 1, "{s:?}");
    let restored = ContainerBroker::open(&path).unwrap();
    assert_eq!(restored.integrity_check().unwrap(), "ok");
    assert_eq!(all_rows(&restored), all_rows(&db));
    // With the check off, nothing is audited.
    let s = cl
        .replicator(p[1], "integrity_check_interval = 0")
        .run_once(&PassFilter::default())
        .await;
    assert_eq!(s.failure, 0, "{s:?}");
}

/// The integrity check runs beside the peers' requests, but a DB that
/// fails it is never handed over whole: the peer that lacks it gets no
/// copy (the upload stays in its tmp dir, no `complete_rsync`), and the
/// sender's DB is quarantined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_that_fails_its_check_is_not_shipped_to_a_peer_that_lacks_it() {
    let (cl, p, db) = cluster_with_rows().await;
    let path = cl.db_path(p[0], A, C);
    drop(db);
    // A page the replicator's own reads (reclaim, replication info) do
    // not touch either: only the integrity check finds it.
    let page = silent_page_for(&path, |b| {
        b.reclaim(1e10, 0.0).is_ok() && b.get_replication_info().is_ok()
    })
    .expect("a page that only the integrity check notices");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, with_page_broken(&bytes, page)).unwrap();
    let s = cl
        .replicator(p[0], "")
        .run_once(&PassFilter::default())
        .await;
    assert!(s.failure >= 1, "{s:?}");
    assert_eq!(s.success, 0, "{s:?}");
    assert!(!cl.db_path(p[1], A, C).exists(), "no copy reached the peer");
    assert!(!path.exists(), "the sender's DB was quarantined");
}
