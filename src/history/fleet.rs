//! The fleet history: every replica writes its minutes, blocks, sessions
//! and state changes to one PostgreSQL (`[history] database_url`), and any
//! replica reads the whole fleet back for its API and page.
//!
//! Off the share path: once a minute a task takes what the stats keep
//! anyway into a [`rows::Batch`], puts it in the queue in `data_dir`, and
//! sends the queue to the database oldest first, one transaction per batch.
//! A database that is away (restarting, cut off, refusing the credentials,
//! newer than this NDAS) only keeps batches queued, within a bound; mining
//! never waits for it.

pub mod collect;
pub mod db;
mod queue;
pub mod rows;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::stats::Stats;
use collect::Collector;
use db::{Applied, Db, DbError};
use ndas_core::sync::LockAnyway;
use queue::Queue;

/// How soon a failed write or connect is tried again.
const RETRY: Duration = Duration::from_secs(5);
/// How long the last batch at shutdown may wait for the database.
const SHUTDOWN_WRITE: Duration = Duration::from_secs(5);
/// How long shutdown waits for miners' connections to close, so their
/// last shares and session ends are in the last batch.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);
/// How often an idle writer checks that the database answers.
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Why the fleet history cannot start (the config's fault).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    UrlFile(#[from] crate::config::UrlFileError),
    #[error(transparent)]
    Url(DbError),
    #[error("history.database_url: the queue {path}: {source}")]
    Queue {
        path: String,
        source: queue::QueueError,
    },
}

/// The fleet history as the operator sees it (`/api/fleet`, the page).
#[derive(Clone, Debug, Serialize)]
pub struct FleetStatus {
    pub replica: String,
    /// `connecting` (before the first write), `up`, or `unavailable`.
    pub state: &'static str,
    /// Why it is unavailable (never the URL).
    pub error: Option<String>,
    pub queued_batches: usize,
    pub queued_bytes: u64,
    /// Rows dropped since start: the queue was full, a batch could not be
    /// read back, or the database refused a batch's data.
    pub dropped_rows: u64,
    /// Unix seconds of the last batch the database took.
    pub last_written: Option<u64>,
    /// Seconds the last batch took to write.
    pub last_write_seconds: Option<f64>,
}

/// The fleet history of this replica.
pub struct Fleet {
    pub collector: Arc<Collector>,
    db: Db,
    queue: Arc<Mutex<Queue>>,
    status: Mutex<FleetStatus>,
    /// The database's schema is this NDAS's (migrated this run): only then
    /// is it read.
    schema_ok: std::sync::atomic::AtomicBool,
}

impl Fleet {
    /// The fleet history `config` asks for, if any: the URL read, the
    /// queue opened; nothing is dialled yet.
    pub fn open(config: &Config) -> Result<Option<Arc<Fleet>>, FleetError> {
        let Some(url) = config.history.load_url()? else {
            return Ok(None);
        };
        let replica = config.history.replica_name(config.instance_id);
        let db = Db::new(&url, &replica).map_err(FleetError::Url)?;
        let path = config.data_dir.join("fleet-queue.redb");
        let queue = Queue::open(&path, config.history.queue_bound()).map_err(|source| {
            FleetError::Queue {
                path: path.display().to_string(),
                source,
            }
        })?;
        let (queued_batches, queued_bytes) = queue.len();
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Ok(Some(Arc::new(Fleet {
            collector: Arc::new(Collector::new(replica.clone(), started)),
            db,
            queue: Arc::new(Mutex::new(queue)),
            schema_ok: std::sync::atomic::AtomicBool::new(false),
            status: Mutex::new(FleetStatus {
                replica,
                state: "connecting",
                error: None,
                queued_batches,
                queued_bytes,
                dropped_rows: 0,
                last_written: None,
                last_write_seconds: None,
            }),
        })))
    }

    pub fn status(&self) -> FleetStatus {
        self.status.lock_anyway().clone()
    }

    /// The database, for the fleet's reads; why not while its schema has
    /// not been checked (or is not this NDAS's).
    pub fn db(&self) -> Result<&Db, String> {
        if self.schema_ok.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(&self.db);
        }
        let status = self.status.lock_anyway();
        Err(status
            .error
            .clone()
            .unwrap_or_else(|| "not connected to the database yet".into()))
    }

    fn unavailable(&self, error: &DbError) {
        let mut status = self.status.lock_anyway();
        if status.error.as_deref() != Some(&error.to_string()) {
            tracing::error!(%error, "fleet history unavailable; batches wait in data_dir and mining goes on");
        }
        status.state = "unavailable";
        status.error = Some(error.to_string());
    }

    fn up(&self) {
        let mut status = self.status.lock_anyway();
        if status.state != "up" {
            tracing::info!(replica = %status.replica, "fleet history database up");
        }
        status.state = "up";
        status.error = None;
    }

    fn dropped(&self, rows: u64, why: &str) {
        if rows == 0 {
            return;
        }
        tracing::error!(rows, why, "fleet history rows dropped");
        self.status.lock_anyway().dropped_rows += rows;
    }

    /// Makes this minute's batch and queues it.
    async fn queue_batch(&self, stats: &Stats, minute: u64) {
        let mut id = [0u8; 8];
        getrandom::getrandom(&mut id).expect("the system's random source");
        let batch = self.collector.batch(
            stats,
            minute,
            ndas_core::clock::unix_now(),
            i64::from_le_bytes(id),
        );
        self.dropped(batch.dropped_before, "the sessions log was full");
        let queue = self.queue.clone();
        let pushed = tokio::task::spawn_blocking(move || queue.lock_anyway().push(&batch)).await;
        match pushed {
            Ok(Ok(dropped)) => self.dropped(dropped, "the queue is full (history.queue_max_bytes)"),
            Ok(Err(error)) => tracing::error!(%error, "cannot queue the fleet history's batch"),
            Err(_) => tracing::error!("the fleet history's queue panicked"),
        }
        self.count_queue();
    }

    fn count_queue(&self) {
        let (batches, bytes) = self.queue.lock_anyway().len();
        let mut status = self.status.lock_anyway();
        status.queued_batches = batches;
        status.queued_bytes = bytes;
    }

    /// Sends the queue, oldest first, until it is empty or the database
    /// fails; whether it emptied.
    async fn drain(&self) -> bool {
        loop {
            let queue = self.queue.clone();
            let first = tokio::task::spawn_blocking(move || queue.lock_anyway().first()).await;
            let (key, batch) = match first {
                Ok(Ok((first, unreadable))) => {
                    self.dropped(unreadable, "a queued batch could not be read");
                    match first {
                        Some(first) => first,
                        None => return true,
                    }
                }
                Ok(Err(error)) => {
                    tracing::error!(%error, "cannot read the fleet history's queue");
                    return false;
                }
                Err(_) => return false,
            };
            let started = Instant::now();
            match self.db.apply(&batch).await {
                Ok(applied) => {
                    if applied == Applied::AlreadyThere {
                        tracing::debug!(batch = batch.id, "batch was written before");
                    }
                    self.up();
                    let mut status = self.status.lock_anyway();
                    status.last_written = Some(ndas_core::clock::unix_now());
                    status.last_write_seconds = Some(started.elapsed().as_secs_f64());
                }
                Err(error) if error.is_rejected() => {
                    self.dropped(batch.rows() as u64, "the database refused the batch's data");
                    tracing::error!(%error, batch = batch.id, "batch skipped");
                }
                Err(error) => {
                    self.unavailable(&error);
                    return false;
                }
            }
            let queue = self.queue.clone();
            let removed =
                tokio::task::spawn_blocking(move || queue.lock_anyway().remove(key)).await;
            self.count_queue();
            if !matches!(removed, Ok(Ok(()))) {
                tracing::error!("cannot remove a written batch from the fleet history's queue");
                return false;
            }
        }
    }
}

/// Unix seconds now, with the fraction.
fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Writes a batch at each minute's end, sends the queue whenever the
/// database takes it, and a last partial batch at shutdown.
pub async fn run(fleet: Arc<Fleet>, stats: Arc<Stats>, shutdown: CancellationToken) {
    let mut migrated = false;
    let mut pending = true;
    let mut retry_at = Instant::now();
    let mut checked_at = Instant::now();
    let mut pruned_at: Option<Instant> = None;
    loop {
        let now = now_seconds();
        // A little after the minute's end, so its last shares are in.
        let to_minute = Duration::from_secs_f64(60.0 - now % 60.0 + 0.05);
        let to_retry = retry_at.saturating_duration_since(Instant::now());
        let to_check = CHECK_EVERY.saturating_sub(checked_at.elapsed());
        let wait = match pending {
            true => to_minute.min(to_retry),
            false => to_minute.min(to_check),
        };
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(wait) => false,
        };
        if stopping {
            return last_batch(&fleet, &stats, migrated).await;
        }
        let now = now_seconds();
        if wait == to_minute {
            // The minute that just ended.
            let minute = (now as u64 / 60 * 60).saturating_sub(60);
            fleet.queue_batch(&stats, minute).await;
        }
        if migrated && !pending && wait == to_check && wait != to_minute {
            // Idle: is the database still there? (The page says so soon.)
            checked_at = Instant::now();
            match fleet.db.check().await {
                Ok(()) => fleet.up(),
                Err(error) => {
                    fleet.unavailable(&error);
                    pending = true;
                    retry_at = Instant::now() + RETRY;
                }
            }
            continue;
        }
        checked_at = Instant::now();
        if !migrated {
            if let Err(error) = fleet.db.migrate().await {
                fleet.unavailable(&error);
                retry_at = Instant::now() + RETRY;
                pending = true;
                continue;
            }
            migrated = true;
            fleet
                .schema_ok
                .store(true, std::sync::atomic::Ordering::Relaxed);
            fleet.up();
        }
        pending = !fleet.drain().await;
        if pending {
            retry_at = Instant::now() + RETRY;
        }
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) && !pending {
            pruned_at = Some(Instant::now());
            if let Err(error) = fleet.db.prune().await {
                tracing::warn!(%error, "cannot prune the fleet history");
            }
        }
    }
}

/// At shutdown: once the miners' connections closed, the minute so far
/// is queued and, if the database takes it in time, written; what it does
/// not take waits in the queue for the next start.
async fn last_batch(fleet: &Fleet, stats: &Stats, migrated: bool) {
    let waited = Instant::now();
    while stats.metrics.connections_open() > 0 && waited.elapsed() < SHUTDOWN_DRAIN {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let minute = ndas_core::clock::unix_now() / 60 * 60;
    fleet.queue_batch(stats, minute).await;
    let write = async {
        if !migrated {
            fleet.db.migrate().await?;
        }
        fleet.drain().await;
        Ok::<(), DbError>(())
    };
    match tokio::time::timeout(SHUTDOWN_WRITE, write).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => fleet.unavailable(&error),
        Err(_) => tracing::warn!(
            "the fleet database did not take the last batch in time; it waits in data_dir"
        ),
    }
    let (batches, _) = fleet.queue.lock_anyway().len();
    if batches > 0 {
        tracing::warn!(
            batches,
            "fleet history batches wait in data_dir for the next start"
        );
    }
    fleet.db.close().await;
}
