//! rowsync: Swift-compatible container DB replication.

pub mod cli;
pub mod swift;
