//! What one replica sends the fleet database at a time: a [`Batch`], the
//! rows of one minute (or of the part of one before a shutdown). A batch
//! is made once, queued in `data_dir` before it is sent, and applied once:
//! its random `id` is its key in `applied_batches`.
//!
//! These types are the queue's format as well: a file outlives the NDAS
//! that wrote it. Add fields with `#[serde(default)]`; never rename one.

use serde::{Deserialize, Serialize};

/// One minute's rows.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Batch {
    /// Random: the batch's key, so a replay after a lost answer is skipped.
    pub id: i64,
    pub replica: String,
    /// The NDAS version that made it.
    pub version: String,
    /// Unix seconds this replica's run started.
    pub started_at: u64,
    /// Unix seconds it was made.
    pub made_at: u64,
    /// The replica's own figures for the minute.
    pub minute: Option<ReplicaMinute>,
    #[serde(default)]
    pub workers: Vec<WorkerMinute>,
    #[serde(default)]
    pub blocks: Vec<BlockRow>,
    #[serde(default)]
    pub sessions: Vec<SessionRow>,
    #[serde(default)]
    pub states: Vec<StateRow>,
    /// Rows this replica could not keep before this batch (sessions past
    /// their bound), told to the database's reader.
    #[serde(default)]
    pub dropped_before: u64,
}

impl Batch {
    /// Its rows, of every kind.
    pub fn rows(&self) -> usize {
        usize::from(self.minute.is_some())
            + self.workers.len()
            + self.blocks.len()
            + self.blocks.iter().map(|b| b.paid.len()).sum::<usize>()
            + self.sessions.len()
            + self.states.len()
    }
}

impl Batch {
    /// The batch in three parts with ids of their own (derived, so a part
    /// sent again is skipped too): the replica's minute, blocks and state
    /// changes; the worker minutes; the sessions.
    pub fn parts(&self) -> [Batch; 3] {
        let part = |n: i64| Batch {
            id: self.id ^ (n << 56),
            replica: self.replica.clone(),
            version: self.version.clone(),
            started_at: self.started_at,
            made_at: self.made_at,
            ..Batch::default()
        };
        let mut first = part(1);
        first.minute = self.minute;
        first.blocks = self.blocks.clone();
        first.states = self.states.clone();
        let mut workers = part(2);
        workers.workers = self.workers.clone();
        let mut sessions = part(3);
        sessions.sessions = self.sessions.clone();
        [first, workers, sessions]
    }
}

/// `replica_minutes`: the replica at the minute's end.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ReplicaMinute {
    /// Unix seconds of the minute's start.
    pub minute: u64,
    pub connections: u64,
    pub workers_connected: u64,
    pub workers_online: u64,
}

/// `worker_minutes` (and added to `worker_hours`): one worker's shares in
/// one minute on this replica.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WorkerMinute {
    pub worker: String,
    /// Unix seconds of the minute's start.
    pub minute: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub stale: u64,
    pub accepted_difficulty: f64,
    pub best_share: f64,
}

/// `blocks` and `block_outputs`: a found block, or its verdict.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BlockRow {
    pub hash: String,
    pub height: u32,
    pub worker: String,
    /// Unix seconds its share arrived.
    pub found_at: u64,
    pub status: String,
    /// Unix seconds of this row's news.
    pub at: u64,
    /// Who its coinbase pays (address, satoshis), in its order.
    pub paid: Vec<(String, u64)>,
}

/// `sessions`: a worker's session started, ended, or both in the minute.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SessionRow {
    /// Unix microseconds this replica's run started.
    pub run: u64,
    pub seq: u64,
    pub start: Option<SessionStart>,
    /// Unix seconds.
    pub ended_at: Option<u64>,
}

/// Who the session was.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SessionStart {
    pub worker: String,
    pub user_agent: Option<String>,
    pub protocol: String,
    /// Unix seconds.
    pub at: u64,
}

/// `state_changes`: a node's or an upstream pool's new state.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StateRow {
    /// Unix seconds of the change.
    pub at: u64,
    /// `node` or `upstream`.
    pub kind: String,
    pub name: String,
    pub state: String,
    pub detail: Option<String>,
}
