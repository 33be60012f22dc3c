//! Pure Swift-compatible primitives: timestamps, path hashing, the `chexor`
//! DB hash, the object-row and container-row merge rules, and the
//! pending-file record format.
//! Nothing here does I/O.

pub mod container_row;
pub mod hash;
pub mod merge;
pub mod pending;
pub mod pickle;
pub mod pyjson;
pub mod pyvalue;
pub mod timestamp;

pub use hash::{chexor, HashPathConfig};
pub use timestamp::{decode_timestamps, encode_timestamps, Timestamp, TimestampError};
