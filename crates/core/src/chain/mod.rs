//! Bitcoin data: pure, synchronous, no I/O.
//!
//! Everything a pool needs to turn a block template into work and a share into
//! a block: double SHA-256, 256-bit targets, merkle trees, the coinbase, the
//! 80-byte header and the serialized block.

pub mod address;
pub mod block;
pub mod coinbase;
pub mod encode;
pub mod hash;
pub mod header;
pub mod merkle;
pub mod network;
pub mod target;

pub use hash::{sha256d, Hash256};
pub use network::Network;
pub use target::Target;
