//! rowsync: Swift-compatible container DB replication.

pub mod bench;
pub mod cli;
pub mod db;
pub mod swift;
