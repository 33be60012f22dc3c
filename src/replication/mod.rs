//! DB replication, written once for every kind of DB (generic over
//! [`crate::db::DbKind`]): the REPLICATE wire format, the receiving side
//! (ops against a local DB), the sender, the daemon, and the
//! storage-policy rule both sides use.

pub mod auth;
pub mod client;
pub mod clock;
pub mod daemon;
pub mod local;
pub mod metrics;
pub mod pass_state;
pub mod policy;
pub mod recon;
pub mod rpc;
pub mod rsync;
pub mod sender;
pub mod ship_record;
pub mod stats;
pub mod statsd;
pub mod sync_cache;
pub mod walk;
pub mod wire;

pub use clock::{Clock, SystemClock};
pub use rpc::{KindRpc, ReplKind, ReplicatorRpc, RpcResponse};
pub use wire::{ReplicateOp, SyncArgs, WireError};
