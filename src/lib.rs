//! rowsync: Swift-compatible account and container DB servers and
//! replication.

pub mod bench;
pub mod chaos;
pub mod cli;
pub mod config;
pub mod db;
pub mod devcluster;
pub mod inspect;
pub mod replication;
pub mod ring;
pub mod server;
pub mod swift;
