//! `rowsync info`: show everything about one container or account DB file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::config::SwiftConf;
use crate::inspect::info::{AnyReport, InfoContext};

/// The long `--help` text (set on the subcommand in `cli/mod.rs`).
pub const LONG_ABOUT: &str = "Show everything about one container or account DB file (the kind is read\n\
                  from the file), like swift-container-info / swift-account-info: account,\n\
                  container, partition and hash, timestamps (stored and ISO 8601 UTC),\n\
                  deleted or not, object count and bytes (accounts: container count and\n\
                  per-policy stats), storage policy, metadata, DB id, max_row, and the\n\
                  incoming and outgoing sync tables.\n\n\
                  Sync points count ROWIDs of different DBs:\n  \
                  incoming  (peer id, point): this DB holds that peer's rows up to the\n            \
                  peer's ROWID `point` (the peer's numbering: compare it with the\n            \
                  peer's max_row, e.g. with `rowsync status`).\n  \
                  outgoing  (peer id, point): our rows up to OUR ROWID `point` were sent\n            \
                  to that peer; behind = max_row - point = our rows it may still lack\n            \
                  (ROWIDs start at 1: a point of -1, nothing sent yet, counts as 0).\n\n\
                  The partition comes from --ring when given, otherwise from the DB's path\n\
                  (<part>/<suffix>/<hash>/<hash>.db). Reading commits the DB's pending file\n\
                  (as Swift's tools do): work on a copy to keep a file unchanged.\n\n\
                  With --json, one object with Swift's replication-info names (account,\n\
                  container, hash, id, max_row, count, bytes_used, put_timestamp,\n\
                  delete_timestamp, created_at, status_changed_at, storage_policy_index,\n\
                  metadata as an object, incoming_sync, outgoing_sync) plus partition,\n\
                  db_state, status (\"active\" or \"deleted\"), rows, tombstones and more.\n\
                  For an account DB, the keys of Swift's account get_replication_info()\n\
                  (count = container count, object_count, bytes_used, ...), db_type\n\
                  \"account\" and policy_stats.";

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
                  rowsync info /srv/node/sdb1/containers/943/9c3/ebc55d9bb05fefafe2d4fda7424e29c3/ebc55d9bb05fefafe2d4fda7424e29c3.db\n  \
                  rowsync info DB_FILE --json | jq .outgoing_sync\n  \
                  rowsync info DB_FILE --ring /etc/swift/container.ring.gz --swift-conf /etc/swift/swift.conf")]
pub struct InfoArgs {
    /// The container or account DB file (<hash>.db).
    pub db_file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The DB kind's ring: compute the partition and list its primary nodes.
    #[arg(long)]
    pub ring: Option<PathBuf>,
    /// swift.conf: hash the container's path (checks the DB is where Swift
    /// looks for it) and name its storage policy.
    #[arg(long)]
    pub swift_conf: Option<PathBuf>,
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let ring = match &args.ring {
        Some(p) => {
            Some(crate::ring::load(p).with_context(|| format!("loading ring {}", p.display()))?)
        }
        None => None,
    };
    let swift = match &args.swift_conf {
        Some(p) => {
            Some(SwiftConf::from_file(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let report = AnyReport::read(
        &args.db_file,
        InfoContext {
            ring: ring.as_ref(),
            swift: swift.as_ref(),
        },
    )?;
    if args.json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        super::print_stdout(&format!("{text}\n"))
    } else {
        super::print_stdout(&report.render_text())
    }
}
