//! The rows `history.redb` keeps, one type per table, stored as JSON. They
//! belong to the history and not to the API: a file outlives the NDAS that
//! wrote it, and while the rows were the JSON of API views
//! (`stats::Totals`, `stats::BlockView`), renaming or adding a field for the
//! API silently changed the file, and the next NDAS dropped every row it
//! could no longer decode. Now the API types meet these only in the `From`
//! impls below, which name every field on both sides, so a field added to
//! either is a compile error here rather than a quiet change of format.
//!
//! Changing a type here changes the format: raise `SCHEMA_VERSION` and
//! migrate at open. `schema/tests.rs` holds rows written before these types
//! existed, and fails if they no longer read back byte for byte.

use serde::{Deserialize, Serialize};

use crate::stats::{BlockView, Totals};

/// One time bucket of the pool, in `pool_minutes` and `pool_hours`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Bucket {
    pub accepted: u64,
    pub rejected: u64,
    pub stale: u64,
    /// Accepted difficulty: the hashrate is this × 2³² over the bucket's length.
    pub difficulty: f64,
    /// At the bucket's last write.
    pub workers_online: u64,
    pub workers_connected: u64,
}

impl Bucket {
    /// Adds `other`'s counts; its worker figures replace this one's.
    pub fn add(&mut self, other: &Bucket) {
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.stale += other.stale;
        self.difficulty += other.difficulty;
        self.workers_online = other.workers_online;
        self.workers_connected = other.workers_connected;
    }
}

/// A worker's totals across runs, in `workers` (keyed by its name).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StoredTotals {
    pub accepted: u64,
    pub rejected: u64,
    pub stale: u64,
    pub best_share: f64,
    /// Unix seconds; the least recent are dropped first past the cap.
    pub last_share: u64,
}

/// A found block and its verdict, in `blocks` (keyed by its hash).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StoredBlock {
    pub height: u32,
    pub hash: String,
    pub worker: String,
    /// Unix seconds its share arrived.
    pub found_at: u64,
    pub status: String,
    /// The address its main output pays; absent in rows written before
    /// payout modes, which read as empty.
    #[serde(default)]
    pub payout: String,
}

impl From<Totals> for StoredTotals {
    fn from(totals: Totals) -> StoredTotals {
        let Totals {
            accepted,
            rejected,
            stale,
            best_share,
            last_share,
        } = totals;
        StoredTotals {
            accepted,
            rejected,
            stale,
            best_share,
            last_share,
        }
    }
}

impl From<StoredTotals> for Totals {
    fn from(row: StoredTotals) -> Totals {
        let StoredTotals {
            accepted,
            rejected,
            stale,
            best_share,
            last_share,
        } = row;
        Totals {
            accepted,
            rejected,
            stale,
            best_share,
            last_share,
        }
    }
}

impl From<BlockView> for StoredBlock {
    fn from(block: BlockView) -> StoredBlock {
        let BlockView {
            height,
            hash,
            worker,
            found_at,
            status,
            payout,
        } = block;
        StoredBlock {
            height,
            hash,
            worker,
            found_at,
            status,
            payout,
        }
    }
}

impl From<StoredBlock> for BlockView {
    fn from(row: StoredBlock) -> BlockView {
        let StoredBlock {
            height,
            hash,
            worker,
            found_at,
            status,
            payout,
        } = row;
        BlockView {
            height,
            hash,
            worker,
            found_at,
            status,
            payout,
        }
    }
}

#[cfg(test)]
mod tests;
