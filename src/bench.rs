//! Benchmarks behind `rowsync bench`. They use real DB files in a scratch
//! directory and report throughput; nothing here asserts on time.

use std::path::Path;
use std::time::Instant;

use rusqlite::params;

use crate::db::{ContainerBroker, Result};
use crate::swift::merge::ObjectItem;
use crate::swift::Timestamp;

/// One measured step.
#[derive(Debug, Clone)]
pub struct Measure {
    pub name: String,
    pub rows: usize,
    pub seconds: f64,
}

impl Measure {
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.seconds.max(1e-9)
    }
}

/// How benchmark object names relate to their insertion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NamePattern {
    /// Names ascend with insertion order (append-only name index).
    Sequential,
    /// Each batch's names are spread over ~1000 places in the name index,
    /// as when uploads arrive in no particular name order.
    Scattered,
}

/// Deterministic object rows `first..first+count` (data timestamp `ts_base + i`).
pub fn synthetic_rows(
    first: usize,
    count: usize,
    ts_base: i64,
    names: NamePattern,
) -> Vec<ObjectItem> {
    (first..first + count)
        .map(|i| {
            let ts = Timestamp::from_raw(ts_base + i as i64, 0)
                .map(|t| t.internal())
                .unwrap_or_else(|_| "0000000001.00000".into());
            let mut it = ObjectItem::new(
                match names {
                    NamePattern::Sequential => format!("bench/object-{i:09}"),
                    NamePattern::Scattered => format!("bench/{:03}/object-{i:09}", i % 997),
                },
                ts,
                (i as i64 * 7919) % 1_000_000,
                "application/octet-stream",
                format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            );
            it.rowid = Some(i as i64 + 1);
            it
        })
        .collect()
}

fn bench_db(dir: &Path, name: &str) -> Result<ContainerBroker> {
    let path = dir
        .join("bench/containers/0/aaa")
        .join(name)
        .join(format!("{name}.db"));
    if let Some(hash_dir) = path.parent() {
        let _ = std::fs::remove_dir_all(hash_dir);
    }
    ContainerBroker::create(&path, "bench", name, Some(Timestamp::now()), 0)
}

/// The floor: a plain prepared INSERT of the rows into the same schema
/// (same triggers), one transaction per batch.
pub fn insert_floor(dir: &Path, rows: &[ObjectItem], batch: usize) -> Result<Measure> {
    let b = bench_db(dir, "00000000000000000000000000floor0")?;
    let conn = b.connection();
    let start = Instant::now();
    let run = || -> rusqlite::Result<()> {
        for chunk in rows.chunks(batch) {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let mut ins = conn.prepare_cached(
                "INSERT INTO object (name, created_at, size, content_type, etag, deleted,
                                     storage_policy_index) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )?;
            for it in chunk {
                ins.execute(params![
                    it.name,
                    it.created_at,
                    it.size,
                    it.content_type,
                    it.etag,
                    it.deleted,
                    it.storage_policy_index
                ])?;
            }
            conn.execute_batch("COMMIT")?;
        }
        Ok(())
    };
    run().map_err(|e| crate::db::DbError::Invalid(format!("floor insert failed: {e}")))?;
    Ok(Measure {
        name: "floor: plain INSERT".into(),
        rows: rows.len(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn merge_all(
    b: &ContainerBroker,
    rows: &[ObjectItem],
    batch: usize,
    name: &str,
) -> Result<Measure> {
    let start = Instant::now();
    for chunk in rows.chunks(batch) {
        b.merge_items(chunk.to_vec(), Some("bench-source"))?;
    }
    Ok(Measure {
        name: name.into(),
        rows: rows.len(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The merge benchmark: floor, (a) fresh rows into an empty DB, (b) the same
/// rows replayed, (c) fresh batches into the full DB.
pub fn merge_bench(
    dir: &Path,
    total: usize,
    batch: usize,
    names: NamePattern,
) -> Result<Vec<Measure>> {
    merge_bench_with(dir, total, batch, names, &mut |_| {})
}

/// [`merge_bench`], calling `on_step` with each step's name before it runs.
pub fn merge_bench_with(
    dir: &Path,
    total: usize,
    batch: usize,
    names: NamePattern,
    on_step: &mut dyn FnMut(&str),
) -> Result<Vec<Measure>> {
    let base = Timestamp::parse("1700000000")
        .map(|t| t.raw())
        .unwrap_or(170_000_000_000_000);
    on_step("generating rows");
    let rows = synthetic_rows(0, total, base, names);
    on_step("floor: plain INSERT");
    let mut out = vec![insert_floor(dir, &rows, batch)?];
    let b = bench_db(dir, "0000000000000000000000000merge00")?;
    on_step("(a) merge_items, fresh rows");
    out.push(merge_all(&b, &rows, batch, "(a) merge_items, fresh rows")?);
    on_step("(b) merge_items, replayed rows");
    out.push(merge_all(
        &b,
        &rows,
        batch,
        "(b) merge_items, replayed rows",
    )?);
    on_step("(c) merge_items, fresh batches into full DB");
    // Ten fresh batches, each into the full DB, to average out noise.
    let extra = synthetic_rows(total, batch * 10, base, names);
    out.push(merge_all(
        &b,
        &extra,
        batch,
        "(c) merge_items, fresh batches into full DB",
    )?);
    Ok(out)
}
