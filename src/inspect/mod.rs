//! Read-mostly tools for people looking at a cluster:
//!
//! - [`info`]: everything about one container or account DB file
//!   (`rowsync info`).
//! - [`metrics`]: the Prometheus endpoints of a cluster's servers and
//!   replicators, scraped into one table (`rowsync metrics`).
//! - [`scan`]: the DBs in a datadir of a node's devices, found without
//!   changing anything (unlike the replicator's walk, which removes empty
//!   directories).
//! - [`status`]: how far each replica of a node's DBs is behind
//!   (`rowsync status`), from the local sync tables and a `sync` query to
//!   every peer.
//! - [`view`]: a quick snapshot of one replica (rows, hash, sync points)
//!   for live displays such as the dev-cluster demo.

pub mod info;
pub mod metrics;
pub mod scan;
pub mod status;
pub mod view;

use crate::swift::Timestamp;

/// `isoformat (raw)` of a stored timestamp, or the raw text alone when it
/// does not parse.
pub fn human_ts(raw: &str) -> String {
    match Timestamp::parse(raw) {
        Ok(t) => format!("{} ({raw})", t.isoformat()),
        Err(_) => raw.to_string(),
    }
}

/// The isoformat of a stored timestamp, if it parses.
pub fn iso_ts(raw: &str) -> Option<String> {
    Timestamp::parse(raw).ok().map(|t| t.isoformat())
}
