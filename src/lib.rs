//! rowsync: Swift-compatible container DB replication.

pub mod cli;
pub mod config;
pub mod ring;
pub mod swift;
