//! Container DB replication: the REPLICATE wire format, the receiving side
//! (ops against a local DB), and the storage-policy rule both sides use.

pub mod policy;
pub mod rpc;
pub mod wire;

pub use rpc::{ReplicatorRpc, RpcResponse};
pub use wire::{ReplicateOp, SyncArgs, WireError};
