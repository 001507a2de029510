//! The fleet history's two tasks. The ticker makes a batch at each
//! minute's end, whatever the database is doing, and queues it; the sender
//! checks the schema, sends the queue oldest first, checks an idle
//! database every [`CHECK_EVERY`], and prunes old rows. At shutdown the
//! ticker queues the minute so far once miners' connections have closed,
//! and the sender gets [`SHUTDOWN_WRITE`] to send what it can; the rest
//! waits in `data_dir` for the next start.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::db::{Applied, DbError};
use super::rows::Batch;
use super::Fleet;
use crate::stats::Stats;
use ndas_core::sync::LockAnyway;

/// How soon a failed write or connect is tried again.
const RETRY: Duration = Duration::from_secs(5);
/// How often an idle sender checks that the database answers, so the page
/// shows an outage within seconds.
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// How long the last batches at shutdown may wait for the database.
const SHUTDOWN_WRITE: Duration = Duration::from_secs(5);
/// How long shutdown waits for miners' connections to close, so their
/// last shares and session ends are in the last batch.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);
/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// After the minute's end, so its last shares are in.
const AFTER_MINUTE: f64 = 0.05;

/// Unix seconds now, with the fraction.
fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs both tasks until shutdown, then the last send.
pub async fn run(fleet: Arc<Fleet>, stats: Arc<Stats>, shutdown: CancellationToken) {
    let queued = Arc::new(Notify::new());
    let ticker = tokio::spawn(tick(fleet.clone(), stats, queued.clone(), shutdown.clone()));
    let mut sender = Sender::default();
    loop {
        let wait = sender.wait();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = queued.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        // A step cut short by shutdown is safe: a write dropped mid-way is
        // rolled back, or committed and skipped when its batch is sent again.
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = sender.step(&fleet, &shutdown) => {}
        }
    }
    let _ = ticker.await;
    let last = async {
        let never = CancellationToken::new();
        sender.step(&fleet, &never).await;
    };
    if tokio::time::timeout(SHUTDOWN_WRITE, last).await.is_err() {
        tracing::warn!("the fleet database did not take the last batches in time");
    }
    let (batches, _) = queue_len(&fleet).await;
    if batches > 0 {
        tracing::warn!(
            batches,
            "fleet history batches wait in data_dir for the next start"
        );
    }
    fleet.db.close().await;
    fleet.reads.close().await;
}

/// A batch at every minute's end, labelled with the minute that ended
/// (however late the task wakes, each minute gets its own); the minute so
/// far at shutdown.
async fn tick(
    fleet: Arc<Fleet>,
    stats: Arc<Stats>,
    queued: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut next = (now_seconds() / 60.0).floor() as u64 * 60 + 60;
    loop {
        let wait = (next as f64 + AFTER_MINUTE - now_seconds()).max(0.0);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
        }
        queue_batch(&fleet, &stats, next - 60).await;
        queued.notify_one();
        next += 60;
    }
    // The minute shutdown began in: the wait for miners must not move the
    // last shares into the next minute, which the next run writes too.
    let minute = next - 60;
    let waited = Instant::now();
    while stats.metrics.connections_open() > 0 && waited.elapsed() < SHUTDOWN_DRAIN {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    queue_batch(&fleet, &stats, minute).await;
}

/// Makes the batch of `minute` and queues it; what cannot be queued is
/// counted lost.
async fn queue_batch(fleet: &Arc<Fleet>, stats: &Stats, minute: u64) {
    let mut id = [0u8; 8];
    getrandom::getrandom(&mut id)
        .expect("the system's random source (getrandom(2)) answers once the system has booted");
    let batch = fleet.collector.batch(
        stats,
        minute,
        ndas_core::clock::unix_now(),
        i64::from_le_bytes(id),
    );
    fleet.dropped(
        batch.dropped_before,
        "the sessions log or the registry's leftovers were full",
    );
    let rows = batch.rows() as u64;
    let queue = fleet.queue.clone();
    let pushed = tokio::task::spawn_blocking(move || {
        let mut queue = queue.lock_anyway();
        queue.push(&batch).map(|shed| (shed, queue.len()))
    })
    .await;
    match pushed {
        Ok(Ok((shed, len))) => {
            fleet.dropped(shed, "the queue is full (history.queue_max_bytes)");
            fleet.count_queue(len);
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot queue the fleet history's batch");
            fleet.dropped(rows, "the queue could not be written");
        }
        Err(_) => fleet.dropped(rows, "the queue panicked"),
    }
}

async fn queue_len(fleet: &Arc<Fleet>) -> (usize, u64) {
    let queue = fleet.queue.clone();
    tokio::task::spawn_blocking(move || queue.lock_anyway().len())
        .await
        .unwrap_or_default()
}

/// What the sender remembers between steps.
struct Sender {
    migrated: bool,
    /// Batches wait (a failed send); tried again at `retry_at`.
    pending: bool,
    retry_at: Instant,
    checked_at: Instant,
    pruned_at: Option<Instant>,
}

impl Default for Sender {
    fn default() -> Sender {
        Sender {
            migrated: false,
            pending: true,
            retry_at: Instant::now(),
            checked_at: Instant::now(),
            pruned_at: None,
        }
    }
}

impl Sender {
    fn wait(&self) -> Duration {
        match self.pending {
            true => self.retry_at.saturating_duration_since(Instant::now()),
            false => CHECK_EVERY.saturating_sub(self.checked_at.elapsed()),
        }
    }

    fn failed(&mut self, fleet: &Fleet, error: &DbError) {
        fleet.unavailable(error);
        // Anything but a database out of reach may be a schema changed
        // under this NDAS (dropped, recreated, migrated further): check it
        // again before the next write (migrating twice does nothing).
        if !matches!(error, DbError::Unreachable(_)) {
            self.migrated = false;
        }
        self.pending = true;
        self.retry_at = Instant::now() + RETRY;
    }

    /// Checks the schema if not yet, sends what is queued, or checks an
    /// idle database; prunes hourly.
    async fn step(&mut self, fleet: &Arc<Fleet>, shutdown: &CancellationToken) {
        self.checked_at = Instant::now();
        if !self.migrated {
            if let Err(error) = fleet.db.migrate().await {
                return self.failed(fleet, &error);
            }
            self.migrated = true;
            fleet.schema_ok.store(true, Ordering::Relaxed);
            fleet.up();
        }
        let (batches, _) = queue_len(fleet).await;
        let result = match batches {
            0 => fleet.db.check().await,
            _ => drain(fleet, shutdown).await,
        };
        match result {
            Ok(()) => {
                self.pending = false;
                fleet.up();
            }
            Err(error) => return self.failed(fleet, &error),
        }
        if !shutdown.is_cancelled() && self.pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            self.pruned_at = Some(Instant::now());
            if let Err(error) = fleet.db.prune().await {
                tracing::warn!(%error, "cannot prune the fleet history");
            }
        }
    }
}

/// Sends the queue, oldest first, until it is empty, the database fails,
/// or shutdown.
async fn drain(fleet: &Arc<Fleet>, shutdown: &CancellationToken) -> Result<(), DbError> {
    while !shutdown.is_cancelled() {
        let queue = fleet.queue.clone();
        let first = tokio::task::spawn_blocking(move || queue.lock_anyway().first()).await;
        let (key, batch) = match first {
            Ok(Ok((first, unreadable))) => {
                fleet.dropped(unreadable, "a queued batch could not be read");
                match first {
                    Some(first) => first,
                    None => return Ok(()),
                }
            }
            Ok(Err(error)) => return Err(DbError::Other(error.to_string())),
            Err(_) => return Err(DbError::Other("the queue panicked".into())),
        };
        let started = Instant::now();
        match fleet.db.apply(&batch).await {
            Ok(applied) => {
                if applied == Applied::AlreadyThere {
                    tracing::info!(
                        batch = batch.id,
                        "a batch written before was sent again; skipped"
                    );
                }
                fleet.written(started.elapsed().as_secs_f64());
            }
            Err(error) if error.is_rejected() => apply_parts(fleet, &batch, &error).await?,
            Err(error) => return Err(error),
        }
        let queue = fleet.queue.clone();
        let removed = tokio::task::spawn_blocking(move || {
            let mut queue = queue.lock_anyway();
            queue.remove(key).map(|()| queue.len())
        })
        .await;
        match removed {
            Ok(Ok(len)) => fleet.count_queue(len),
            _ => {
                return Err(DbError::Other(
                    "cannot remove a written batch from the queue".into(),
                ))
            }
        }
    }
    Ok(())
}

/// A batch the database refused for its data: its parts apart (blocks and
/// state changes; worker minutes; sessions), so only the part at fault is
/// lost, and counted.
async fn apply_parts(fleet: &Fleet, batch: &Batch, refused: &DbError) -> Result<(), DbError> {
    tracing::error!(error = %refused, batch = batch.id, "the database refused a batch; writing its parts apart");
    for (part, what) in
        batch
            .parts()
            .into_iter()
            .zip(["blocks and states", "worker minutes", "sessions"])
    {
        match fleet.db.apply(&part).await {
            Ok(_) => {}
            Err(error) if error.is_rejected() => {
                tracing::error!(%error, part = what, "fleet history part refused");
                fleet.dropped(part.rows() as u64, "the database refused the batch's data");
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
