//! rowsync: Swift-compatible container DB replication.

pub mod bench;
pub mod cli;
pub mod config;
pub mod db;
pub mod ring;
pub mod swift;
