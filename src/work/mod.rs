//! Templates become jobs: one coinbase, one merkle branch and one serialized
//! `mining.notify` per template, shared by every miner.

pub mod extranonce;
pub mod job;
pub mod limits;
pub mod manager;
pub mod payout;

pub use extranonce::{Extranonce1, ExtranonceAllocator, Lease, EXTRANONCE1_SPACE};
pub use job::{Job, JobConfig};
pub use manager::JobManager;
