//! Templates become jobs: one coinbase, one merkle branch and one serialized
//! `mining.notify` per template and payout address, shared by every miner.

pub mod extranonce;
pub mod groups;
pub mod job;
pub mod lanes;
pub mod limits;
pub mod payout;
pub mod pool;
pub mod routes;

pub use extranonce::{Extranonce1, ExtranonceAllocator, Lease, EXTRANONCE1_SPACE};
pub use groups::PayoutGroups;
pub use job::{Job, JobConfig};
