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
        let reads_fine = b.get_info().is_ok() && b.get_items_since(-1, 100_000).is_ok();
        let check_fails = !matches!(b.integrity_check().as_deref(), Ok("ok"));
        if reads_fine && check_fails {
            return Some(page);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_corrupted_at_rest_is_quarantined_and_restored_from_a_peer() {
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
