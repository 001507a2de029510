//! History that survives a restart: the pool's accepted, rejected and stale
//! shares, hashrate and workers per minute (kept 48 hours) and per hour
//! (kept 90 days), each worker's totals across runs, and found blocks with
//! their verdicts, in `data_dir/history.redb`. For display: the block
//! journal stays the record of blocks.
//!
//! Written once a minute (and at shutdown) by a task of its own, on the
//! blocking pool, from counters the share path keeps anyway: nothing is
//! added to a share's work, and a slow disk delays only the next write.

pub mod fleet;
mod schema;
mod store;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::stats::{BlockView, Stats, Totals};
use ndas_core::clock::unix_now;
use ndas_core::sync::LockAnyway;
pub use schema::{Bucket, StoredBlock, StoredTotals};
pub use store::{HistoryError, Store, SCHEMA_VERSION};

/// How often the history is written.
pub const WRITE_EVERY: Duration = Duration::from_secs(60);
const KEEP_MINUTES: u64 = 48 * 3600;
const KEEP_HOURS: u64 = 90 * 86_400;

/// The store and what the writer remembers between writes.
pub struct History {
    store: Store,
    last: std::sync::Mutex<Counters>,
    max_workers: usize,
}

/// The pool's counters at the last write.
#[derive(Clone, Copy, Default)]
struct Counters {
    accepted: u64,
    rejected: u64,
    stale: u64,
    difficulty: f64,
}

impl History {
    /// Opens `data_dir/history.redb`; at most `max_workers` workers' totals
    /// are kept (the longest silent go first).
    pub fn open(data_dir: &std::path::Path, max_workers: usize) -> Result<History, HistoryError> {
        Ok(History {
            store: Store::open(&data_dir.join("history.redb"))?,
            last: std::sync::Mutex::new(Counters::default()),
            max_workers,
        })
    }

    /// Writes what happened since the last write (blocks the thread).
    pub fn write(&self, stats: &Stats, now: u64) -> Result<(), HistoryError> {
        let m = &stats.metrics;
        let counters = Counters {
            accepted: m.shares_accepted(),
            rejected: m.shares_rejected_total(),
            stale: m.shares_rejected("stale"),
            difficulty: m.accepted_difficulty(),
        };
        let mut last = self.last.lock_anyway();
        let (online, _) = stats.worker_states();
        let (_, connected) = stats.workers.counts();
        let bucket = Bucket {
            accepted: counters.accepted.saturating_sub(last.accepted),
            rejected: counters.rejected.saturating_sub(last.rejected),
            stale: counters.stale.saturating_sub(last.stale),
            difficulty: (counters.difficulty - last.difficulty).max(0.0),
            workers_online: online as u64,
            workers_connected: connected as u64,
        };
        // Each worker that shared lately: its totals from earlier runs (read
        // the first time this run's entry is written) plus this run's.
        let workers = stats
            .recently_shared(WRITE_EVERY * 2)
            .into_iter()
            .map(|worker| {
                let base = worker.history_base(|| {
                    self.store
                        .worker(&worker.name)
                        .ok()
                        .flatten()
                        .map(Totals::from)
                        .unwrap_or_default()
                });
                (worker.name.to_string(), worker.totals_over(&base).into())
            })
            .collect();
        let write = store::Write {
            minute: now / 60 * 60,
            hour: now / 3600 * 3600,
            bucket,
            workers,
            blocks: stats.recent_blocks().into_iter().map(From::from).collect(),
            keep_minutes: KEEP_MINUTES,
            keep_hours: KEEP_HOURS,
            max_workers: self.max_workers,
        };
        self.store.write(&write)?;
        *last = counters;
        Ok(())
    }

    /// `/api/history?range=`: `1h` and `24h` by the minute, `7d` and `90d`
    /// by the hour.
    pub fn series(&self, range: &str, now: u64) -> Result<Value, String> {
        let (seconds, table, bucket) = match range {
            "1h" => (3600, store::MINUTES, 60),
            "24h" => (86_400, store::MINUTES, 60),
            "7d" => (7 * 86_400, store::HOURS, 3600),
            "90d" => (90 * 86_400, store::HOURS, 3600),
            other => return Err(format!("range={other:.20}: 1h, 24h, 7d or 90d")),
        };
        let rows = self
            .store
            .buckets(table, now.saturating_sub(seconds))
            .map_err(|e| e.to_string())?;
        let points: Vec<Value> = rows
            .iter()
            .map(|(t, b)| {
                json!({
                    "t": t,
                    "hashrate": b.difficulty * 4_294_967_296.0 / bucket as f64,
                    "accepted": b.accepted,
                    "rejected": b.rejected,
                    "stale": b.stale,
                    "workers_online": b.workers_online,
                    "workers_connected": b.workers_connected,
                })
            })
            .collect();
        Ok(json!({"range": range, "bucket_seconds": bucket, "points": points}))
    }

    /// `/api/history/worker?name=`: totals across runs.
    pub fn worker(&self, name: &str) -> Result<Option<Totals>, String> {
        let row = self.store.worker(name).map_err(|e| e.to_string())?;
        Ok(row.map(Totals::from))
    }

    /// `/api/history/blocks`: newest first.
    pub fn blocks(&self) -> Result<Vec<BlockView>, String> {
        let rows = self.store.blocks().map_err(|e| e.to_string())?;
        Ok(rows.into_iter().map(BlockView::from).collect())
    }
}

/// Writes every [`WRITE_EVERY`] until shutdown, and once more then.
pub async fn run(history: Arc<History>, stats: Arc<Stats>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(WRITE_EVERY);
    ticks.tick().await;
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = ticks.tick() => false,
        };
        let (history, stats) = (history.clone(), stats.clone());
        let written = tokio::task::spawn_blocking(move || history.write(&stats, unix_now())).await;
        if let Ok(Err(error)) = written {
            tracing::warn!(%error, "cannot write the history; the next write tries again");
        }
        if stopping {
            return;
        }
    }
}
