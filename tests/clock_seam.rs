//! The replicator's wall clock and randomness are seams: a pass reads the
//! time from the replicator's `Clock` (pass start, tombstone and tmp-file
//! reclaim), and its random choices come from a generator seeded by the
//! replicator's seed.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;
use rowsync::replication::daemon::PassFilter;
use rowsync::replication::Clock;
use rowsync::swift::Timestamp;

const A: &str = "AUTH_clock";
const C: &str = "cont";
const RECLAIM_AGE: f64 = 604_800.0;

fn set_mtime(p: &Path, t: SystemTime) {
    std::fs::File::open(p).unwrap().set_modified(t).unwrap();
}

fn tombstones(db: &rowsync::db::ContainerBroker) -> usize {
    db.get_items_since(-1, 1_000_000)
        .unwrap()
        .into_iter()
        .filter(|r| r.deleted == 1)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_two_reclaim_ages_ahead_reclaims_what_the_real_one_keeps() {
    let cl = Cluster::start(2, 2, 4).await;
    let p = cl.primaries(cl.part(A, C));
    let db = cl.create_db(p[0], A, C);
    // Live rows and tombstones written now (by the real clock).
    let now = Timestamp::now().internal();
    let mut rows: Vec<_> = (0..5)
        .map(|i| obj(&format!("live{i}"), &now, "t"))
        .collect();
    for i in 0..4 {
        let mut o = obj(&format!("gone{i}"), &now, "t");
        o.deleted = 1;
        rows.push(o);
    }
    db.merge_items(rows, None).unwrap();
    assert_eq!(tombstones(&db), 4);
    // Tmp files a day old: the device's tmp dir, a DB's hash dir and a
    // whole-DB ship record.
    let day_ago = SystemTime::now() - Duration::from_secs(86_400);
    let dev = cl.nodes[p[0]].devices.join(format!("sd{}", p[0]));
    let dev_tmp = dev.join("tmp/leftover-sd0");
    let records = dev.join("rowsync-ships");
    let record = records.join("0123.127.0.0.1_1_sd9");
    let db_tmp = db.db_file().parent().unwrap().join("x.db.tmp");
    std::fs::create_dir_all(&records).unwrap();
    std::fs::create_dir_all(dev.join("tmp")).unwrap();
    for f in [&dev_tmp, &db_tmp, &record] {
        std::fs::write(f, b"1\n").unwrap();
        set_mtime(f, day_ago);
    }

    // The system clock: a day is younger than reclaim_age.
    let before = SystemTime::now();
    let s = cl
        .replicator(p[0], "")
        .run_once(&PassFilter::default())
        .await;
    assert_eq!(s.failure, 0, "{s:?}");
    assert!((s.start - rowsync::replication::clock::epoch_secs(before)).abs() < 60.0);
    assert_eq!(tombstones(&cl.open_db(p[0], A, C).unwrap()), 4);
    for f in [&dev_tmp, &db_tmp, &record] {
        assert!(f.exists(), "{} kept", f.display());
    }

    // Two reclaim ages later by the replicator's clock.
    let clock = OffsetClock::new(2.0 * RECLAIM_AGE);
    let r = cl.replicator(p[0], "").with_clock(clock.clone());
    let s = r.run_once(&PassFilter::default()).await;
    assert_eq!(s.failure, 0, "{s:?}");
    assert!(
        s.start >= clock.now_secs() - 60.0,
        "the pass starts by the clock"
    );
    let db = cl.open_db(p[0], A, C).unwrap();
    assert_eq!(tombstones(&db), 0, "tombstones reclaimed");
    assert_eq!(all_rows(&db).len(), 5, "live rows stay");
    for f in [&dev_tmp, &db_tmp, &record] {
        assert!(!f.exists(), "{} reclaimed", f.display());
    }
    // The recon cache was written by the same clock.
    let recon: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cl.nodes[p[0]].dir.path().join("container.recon")).unwrap(),
    )
    .unwrap();
    let last = recon["replication_last"].as_f64().unwrap();
    assert!(last >= clock.now_secs() - 60.0, "{recon}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_seed_one_initial_delay() {
    let cl = Cluster::start(1, 1, 4).await;
    let conf = "interval = 1000";
    let a = cl.replicator(0, conf).with_seed(42);
    let b = cl.replicator(0, conf).with_seed(42);
    assert_eq!(a.seed(), 42);
    let (da, db) = (a.initial_delay(), b.initial_delay());
    assert_eq!(da, db);
    assert!(da < Duration::from_secs(1000));
    // The generator moves on; the same sequence for the same seed.
    assert_eq!(a.initial_delay(), b.initial_delay());
    let c = cl.replicator(0, conf).with_seed(43);
    assert_ne!(c.initial_delay(), da);
    // By default the seed comes from entropy.
    let (x, y) = (cl.replicator(0, conf), cl.replicator(0, conf));
    assert_ne!(x.seed(), y.seed());
}
