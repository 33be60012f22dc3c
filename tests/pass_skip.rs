//! Change-proportional passes: a DB unchanged since it was in sync with
//! every (rowsync) peer is skipped without being opened, and skipping never
//! misses work: a write between passes is sent on the next pass, a peer
//! that lost the DB (or its whole device) gets it back on the next pass, a
//! crash in mid-pass or a deleted / corrupt state file costs a full pass and
//! no rows, and a ring change re-checks the moved partition.

mod common;

use common::*;
use rowsync::replication::daemon::PassFilter;
use rowsync::replication::stats::Stats;

const A: &str = "AUTH_skip";
const C: &str = "cont";

async fn pass(cl: &Cluster, i: usize) -> Stats {
    cl.replicator(i, "").run_once(&PassFilter::default()).await
}

/// Passes until the DB is skipped (bounded): our own replication writes the
/// local DB (sync points), so it takes a pass or two to settle.
async fn until_skipped(cl: &Cluster, i: usize) -> Stats {
    for _ in 0..4 {
        let s = pass(cl, i).await;
        if s.skipped == 1 {
            assert_eq!(s.attempted, 0, "{s:?}");
            return s;
        }
    }
    panic!("the DB was never skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_never_misses_a_write_or_a_lost_peer_replica() {
    let cl = Cluster::start(3, 3, 4).await;
    let p = cl.primaries(cl.part(A, C));
    let db = cl.create_db(p[0], A, C);
    db.merge_items(
        (0..20)
            .map(|i| obj(&format!("o{i}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    let s = pass(&cl, p[0]).await;
    assert_eq!(s.rsync, 2);
    until_skipped(&cl, p[0]).await;

    // A write between passes: sent on the next pass.
    db.merge_items(vec![obj("late", &ts(100), "t")], None)
        .unwrap();
    let s = pass(&cl, p[0]).await;
    assert_eq!((s.attempted, s.diff, s.skipped), (1, 2, 0), "{s:?}");
    for &i in &p[1..] {
        assert_eq!(all_rows(&cl.open_db(i, A, C).unwrap()), all_rows(&db));
    }
    // A row written through the pending file (a server's object PUT).
    db.put_item(&obj("pending", &ts(101), "t")).unwrap();
    let s = pass(&cl, p[0]).await;
    assert_eq!((s.attempted, s.skipped), (1, 0), "{s:?}");
    until_skipped(&cl, p[0]).await;
    for &i in &p[1..] {
        assert_eq!(all_rows(&cl.open_db(i, A, C).unwrap()), all_rows(&db));
    }

    // A peer loses its replica: found by the partition listing, re-shipped.
    let lost = cl.db_path(p[1], A, C);
    std::fs::remove_dir_all(lost.parent().unwrap()).unwrap();
    let s = pass(&cl, p[0]).await;
    assert_eq!((s.attempted, s.rsync), (1, 1), "{s:?}");
    assert_eq!(all_rows(&cl.open_db(p[1], A, C).unwrap()), all_rows(&db));

    // A peer loses its whole device's datadir.
    until_skipped(&cl, p[0]).await;
    std::fs::remove_dir_all(
        cl.nodes[p[2]]
            .devices
            .join(format!("sd{}/containers", p[2])),
    )
    .unwrap();
    let s = pass(&cl, p[0]).await;
    assert_eq!((s.attempted, s.rsync), (1, 1), "{s:?}");
    assert_eq!(all_rows(&cl.open_db(p[2], A, C).unwrap()), all_rows(&db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_or_corrupt_state_file_or_a_crash_costs_a_full_pass_and_no_rows() {
    let cl = Cluster::start(2, 2, 3).await;
    let p = cl.primaries(cl.part(A, C));
    let db = cl.create_db(p[0], A, C);
    db.merge_items(
        (0..10)
            .map(|i| obj(&format!("o{i}"), &ts(i), "t"))
            .collect(),
        None,
    )
    .unwrap();
    pass(&cl, p[0]).await;
    until_skipped(&cl, p[0]).await;
    let state = cl.nodes[p[0]]
        .devices
        .join(format!("sd{}/rowsync-containers.state", p[0]));
    assert!(state.is_file());

    std::fs::write(&state, b"{\"version\": 1, \"entries\": [garbage").unwrap();
    let s = pass(&cl, p[0]).await;
    assert_eq!((s.attempted, s.no_change, s.skipped), (1, 1, 0), "{s:?}");
    until_skipped(&cl, p[0]).await;

    std::fs::remove_file(&state).unwrap();
    let s = pass(&cl, p[0]).await;
    assert_eq!((s.attempted, s.skipped), (1, 0), "{s:?}");
    until_skipped(&cl, p[0]).await;

    // A crash in mid-pass (the pass dropped at a random point, as kill -9
    // leaves it): rows written before it still go out on the next pass.
    db.merge_items(vec![obj("before-crash", &ts(50), "t")], None)
        .unwrap();
    for ms in [0, 1, 3, 10] {
        let rep = cl.replicator(p[0], "");
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(ms),
            rep.run_once(&PassFilter::default()),
        )
        .await;
    }
    let mut delivered = false;
    for _ in 0..3 {
        pass(&cl, p[0]).await;
        if all_rows(&cl.open_db(p[1], A, C).unwrap()) == all_rows(&db) {
            delivered = true;
            break;
        }
    }
    assert!(delivered, "rows written before the crash reached the peer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_full_pass_interval_zero_every_pass_visits_every_db() {
    let cl = Cluster::start(2, 2, 3).await;
    let p = cl.primaries(cl.part(A, C));
    let db = cl.create_db(p[0], A, C);
    db.merge_items(vec![obj("o", &ts(1), "t")], None).unwrap();
    for _ in 0..3 {
        let s = cl
            .replicator(p[0], "full_pass_interval = 0")
            .run_once(&PassFilter::default())
            .await;
        assert_eq!((s.attempted, s.skipped), (1, 0), "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_change_rechecks_the_moved_partition() {
    let cl = Cluster::start(3, 2, 4).await;
    // Ring B: the third device drained (weight 0); its partitions move.
    let mut devs: Vec<rowsync::ring::Device> = cl.ring.devs().iter().flatten().cloned().collect();
    devs[2].weight = 0.0;
    let ring_b = rowsync::ring::build_ring(devs, 2, 4).unwrap();
    // A container on devices {x, 2} in ring A and {x, y} in ring B.
    let hc = hash_conf();
    let (name, a_nodes, b_nodes) = (0..500)
        .find_map(|k| {
            let c = format!("moved{k}");
            let part = cl.ring.get_part(&hc, A, Some(&c), None).unwrap();
            let a: Vec<u32> = cl.ring.primary_ids(part);
            let b: Vec<u32> = ring_b.primary_ids(part);
            (a.contains(&2) && !b.contains(&2) && a.iter().any(|d| b.contains(d)))
                .then_some((c, a, b))
        })
        .expect("a container whose partition moves");
    let keep = *a_nodes.iter().find(|d| b_nodes.contains(d)).unwrap() as usize;
    let gains = *b_nodes.iter().find(|d| !a_nodes.contains(d)).unwrap() as usize;
    let db = cl.create_db(keep, A, &name);
    db.merge_items(vec![obj("o", &ts(1), "t")], None).unwrap();
    pass(&cl, keep).await;
    until_skipped(&cl, keep).await;
    assert!(cl.open_db(gains, A, &name).is_none());
    rowsync::ring::write_v1(&ring_b, cl.swift_dir.path().join("container.ring.gz")).unwrap();
    let s = pass(&cl, keep).await;
    assert_eq!((s.attempted, s.skipped), (1, 0), "{s:?}");
    let moved = cl
        .open_db(gains, A, &name)
        .expect("the new primary got the DB");
    assert_eq!(all_rows(&moved), all_rows(&db));
}
