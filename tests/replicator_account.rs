//! Account DBs through the same replication engine: real account servers on
//! loopback ports, real account DB files, passes run in-process.

mod common;

use common::*;
use rowsync::config::ServerType;
use rowsync::db::{Account, AccountBroker, DbKind};
use rowsync::replication::daemon::PassFilter;
use rowsync::replication::stats::Stats;
use rowsync::swift::container_row::ContainerItem;
use rowsync::swift::Timestamp;

const A: &str = "AUTH_acct";

async fn cluster() -> Cluster {
    Cluster::start_kind(3, 3, 4, ServerType::Account).await
}

async fn pass(cluster: &Cluster, i: usize, extra: &str) -> Stats {
    cluster
        .replicator_of::<Account>(i, extra)
        .run_once(&PassFilter::default())
        .await
}

fn part(cluster: &Cluster) -> u32 {
    cluster.ring.get_part(&hash_conf(), A, None, None).unwrap()
}

fn db_path(cluster: &Cluster, i: usize) -> std::path::PathBuf {
    let hash = hash_conf().hash_path(A, None, None).unwrap();
    rowsync::db::files::db_path(
        &cluster.nodes[i].devices.join(format!("sd{i}")),
        Account::DATADIR,
        part(cluster),
        &hash,
    )
}

fn create(cluster: &Cluster, i: usize) -> AccountBroker {
    AccountBroker::create(
        db_path(cluster, i),
        A,
        Some(Timestamp::parse("1700000000.00000").unwrap()),
    )
    .unwrap()
}

fn open(cluster: &Cluster, i: usize) -> Option<AccountBroker> {
    let p = db_path(cluster, i);
    p.exists().then(|| AccountBroker::open(p).unwrap())
}

fn conts(range: std::ops::Range<u64>, ts_base: u64) -> Vec<ContainerItem> {
    range
        .map(|i| {
            ContainerItem::update(format!("c{i:05}"), ts(ts_base + i), "0", i as i64, 10, 0)
                .unwrap()
        })
        .collect()
}

/// Sorted rows without ROWIDs.
fn rows(b: &AccountBroker) -> Vec<ContainerItem> {
    let mut v: Vec<ContainerItem> = b
        .get_items_since(-1, 1_000_000)
        .unwrap()
        .into_iter()
        .map(|mut r| {
            r.rowid = None;
            r
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_account_replicas_get_the_whole_db_then_rows_follow() {
    let cl = cluster().await;
    let p = cl.primaries(part(&cl));
    let db = create(&cl, p[0]);
    db.merge_items(conts(0..40, 0), None).unwrap();
    let s = pass(&cl, p[0], "").await;
    assert_eq!((s.rsync, s.success, s.failure), (2, 2, 0), "{s:?}");
    let local_id = db.get_info().unwrap().id;
    for &i in &p[1..] {
        let peer = open(&cl, i).expect("shipped");
        assert_eq!(rows(&peer), rows(&db));
        assert_eq!(peer.get_info().unwrap().hash, db.get_info().unwrap().hash);
        assert_eq!(peer.get_sync(&local_id, true).unwrap(), 40);
        assert!(peer.get_info().unwrap().id.ends_with(&format!("-sd{i}")));
    }
    // Container updates after the ship travel as rows (usync).
    db.put_container("late", &ts(500), "0", 9, 90, 0).unwrap();
    // A delete newer than reclaim_age ago (an old one would be reclaimed
    // before it is sent, as Swift does).
    db.put_container("c00003", "0", &Timestamp::now().internal(), 0, 0, 0)
        .unwrap();
    let s = pass(&cl, p[0], "").await;
    assert_eq!((s.diff, s.rsync, s.failure), (2, 0, 0), "{s:?}");
    for &i in &p[1..] {
        let peer = open(&cl, i).unwrap();
        assert_eq!(rows(&peer), rows(&db));
        let info = peer.get_info().unwrap();
        assert_eq!(
            (info.count, info.object_count),
            (40, db.get_info().unwrap().object_count)
        );
    }
    // Nothing left: the next pass changes nothing.
    let s = pass(&cl, p[0], "").await;
    assert_eq!((s.no_change, s.diff, s.rsync), (2, 0, 0), "{s:?}");
    // The account recon cache, with Swift's keys.
    let recon = std::fs::read_to_string(cl.nodes[p[0]].dir.path().join("account.recon")).unwrap();
    let v: serde_json::Value = serde_json::from_str(recon.lines().next().unwrap()).unwrap();
    assert!(
        v["replication_stats"]["no_change"].as_i64() == Some(2),
        "{v}"
    );
    assert!(!cl.nodes[p[0]].dir.path().join("container.recon").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_behind_account_gets_rsync_then_merge_and_keeps_its_own_rows() {
    let cl = cluster().await;
    let p = cl.primaries(part(&cl));
    let db = create(&cl, p[0]);
    db.merge_items(conts(0..3000, 0), None).unwrap();
    let behind = create(&cl, p[1]);
    behind
        .merge_items(
            vec![ContainerItem::update("only-here", ts(1), "0", 5, 5, 0).unwrap()],
            None,
        )
        .unwrap();
    let s = pass(&cl, p[0], "per_diff = 100\nmax_diffs = 2").await;
    assert!(s.remote_merge >= 1, "{s:?}");
    let peer = open(&cl, p[1]).unwrap();
    let got = rows(&peer);
    assert_eq!(got.len(), 3001);
    assert!(got.iter().any(|r| r.name == "only-here"));
    // Back the other way: the only-here row reaches the sender.
    pass(&cl, p[1], "").await;
    assert!(rows(&db).iter().any(|r| r.name == "only-here"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capped_usync_of_accounts_resumes_across_passes() {
    let cl = cluster().await;
    let p = cl.primaries(part(&cl));
    let db = create(&cl, p[0]);
    db.merge_items(conts(0..300, 0), None).unwrap();
    pass(&cl, p[0], "").await;
    db.merge_items(conts(300..550, 1000), None).unwrap();
    let extra = "per_diff = 20\nmax_diffs = 5";
    let s = pass(&cl, p[0], extra).await;
    assert_eq!(s.diff_capped, 2, "{s:?}");
    let mut passes = 1;
    while rows(&open(&cl, p[1]).unwrap()).len() < 550 && passes < 10 {
        pass(&cl, p[0], extra).await;
        passes += 1;
    }
    assert!(passes <= 4, "took {passes} passes");
    for &i in &p[1..] {
        assert_eq!(rows(&open(&cl, i).unwrap()), rows(&db));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_replicate_refuses_shard_range_ops_and_bad_rows() {
    let cl = cluster().await;
    let node = &cl.nodes[0];
    let hash = hash_conf().hash_path(A, None, None).unwrap();
    let pt = part(&cl);
    let hash_dir =
        rowsync::db::files::hash_dir(&node.devices.join("sd0"), Account::DATADIR, pt, &hash);
    let b = AccountBroker::create(hash_dir.join(format!("{hash}.db")), A, None).unwrap();
    let client = reqwest::Client::new();
    let path = format!("/sd0/{pt}/{hash}");
    let (st, _) = replicate(&client, node, &path, br#"["get_shard_ranges"]"#.to_vec()).await;
    assert_eq!(st, 400);
    // An object row is not a container row: 400, nothing written.
    let body = br#"["merge_items", [{"ROWID": 1, "name": "o", "created_at": "1.00000", "size": 1, "content_type": "t", "etag": "e", "deleted": 0}], "peer"]"#;
    let (st, _) = replicate(&client, node, &path, body.to_vec()).await;
    assert_eq!(st, 400);
    assert_eq!(b.get_sync("peer", true).unwrap(), -1);
    // A container row merges and advances the point.
    let body = br#"["merge_items", [{"ROWID": 7, "name": "c", "put_timestamp": "1700000001.00000", "delete_timestamp": "0", "object_count": 2, "bytes_used": 20, "deleted": 0, "storage_policy_index": 0}], "peer"]"#;
    let (st, _) = replicate(&client, node, &path, body.to_vec()).await;
    assert_eq!(st, 202);
    assert_eq!(b.get_sync("peer", true).unwrap(), 7);
    assert_eq!(b.get_info().unwrap().object_count, 2);
    // The sync answer has Swift's account keys.
    let body = br#"["sync", 7, "h", "peer", "1", "1700000000.00000", "0", ""]"#;
    let (st, answer) = replicate(&client, node, &path, body.to_vec()).await;
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v["count"], 1);
    assert_eq!(v["point"], 7);
    assert!(v.get("container").is_none() && v.get("storage_policy_index").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peers_account_delete_reaches_the_sender_only_when_the_peer_pushes() {
    let cl = cluster().await;
    let p = cl.primaries(part(&cl));
    let db = create(&cl, p[0]);
    db.merge_items(conts(0..3, 0), None).unwrap();
    pass(&cl, p[0], "").await;
    // Every container gone and the account deleted on the peers.
    let gone = Timestamp::now().internal();
    for &i in &p[1..] {
        let peer = open(&cl, i).unwrap();
        for c in conts(0..3, 0) {
            peer.put_container(&c.name, "0", &gone, 0, 0, 0).unwrap();
        }
        peer.delete_db(&Timestamp::now().internal()).unwrap();
        assert!(peer.is_deleted().unwrap());
    }
    // The sender's pass does not take the peers' delete from their sync
    // answers (Swift's account replicator does not merge them).
    pass(&cl, p[0], "").await;
    let info = db.get_info().unwrap();
    assert_eq!(info.delete_timestamp, "0");
    assert!(!db.is_status_deleted().unwrap());
    // A peer's own pass brings the rows (and the deletes) over.
    pass(&cl, p[1], "").await;
    assert_eq!(db.get_info().unwrap().count, 0);
}
