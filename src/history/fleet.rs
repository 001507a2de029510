//! The fleet history: every replica writes its minutes, blocks, sessions
//! and state changes to one PostgreSQL (`[history] database_url`), and any
//! replica reads the whole fleet back for its API and page.
//!
//! Off the share path: at each minute's end a task takes what the stats
//! keep anyway into a [`rows::Batch`] and puts it in the queue in
//! `data_dir`; another sends the queue to the database oldest first, one
//! transaction per batch (`writer.rs`). A database that is away
//! (restarting, cut off, refusing the credentials, newer than this NDAS)
//! only keeps batches queued, within a bound; mining never waits for it.

pub mod collect;
pub mod db;
pub mod queue;
pub mod rows;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::config::Config;
use collect::Collector;
use db::{Db, DbError};
use ndas_core::sync::LockAnyway;
use queue::Queue;

pub use writer::run;

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
    /// Rows dropped since start: the queue was full or could not be
    /// written, a batch could not be read back, or the database refused
    /// a batch's data.
    pub dropped_rows: u64,
    /// Unix seconds of the last batch the database took.
    pub last_written: Option<u64>,
    /// Seconds the last batch took to write.
    pub last_write_seconds: Option<f64>,
}

/// The fleet history of this replica.
pub struct Fleet {
    pub collector: Arc<Collector>,
    /// The writer's connection, and the readers' (apart, so a slow read
    /// never holds a write up).
    db: Db,
    reads: Db,
    queue: Arc<Mutex<Queue>>,
    status: Mutex<FleetStatus>,
    /// The database's schema is this NDAS's (checked this run, and not
    /// found newer since): only then is it read or written.
    schema_ok: AtomicBool,
}

impl Fleet {
    /// The fleet history `config` asks for, if any: the URL read, the
    /// queue opened; nothing is dialled yet.
    pub fn open(config: &Config) -> Result<Option<Arc<Fleet>>, FleetError> {
        let Some(url) = config.history.load_url()? else {
            return Ok(None);
        };
        let replica = config.history.replica_name(config.instance_id);
        let db = Db::new(&url, &replica, 1).map_err(FleetError::Url)?;
        let reads = Db::new(&url, &replica, 2).map_err(FleetError::Url)?;
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
            reads,
            queue: Arc::new(Mutex::new(queue)),
            schema_ok: AtomicBool::new(false),
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

    /// The database for the fleet's reads; why not while the writer does
    /// not reach it (a read would only wait out its timeout) or its schema
    /// is not this NDAS's.
    pub fn db(&self) -> Result<&Db, String> {
        let status = self.status.lock_anyway();
        if self.schema_ok.load(Ordering::Relaxed) && status.state == "up" {
            return Ok(&self.reads);
        }
        Err(status
            .error
            .clone()
            .unwrap_or_else(|| "not connected to the database yet".into()))
    }

    fn up(&self) {
        let mut status = self.status.lock_anyway();
        if status.state != "up" {
            tracing::info!(replica = %status.replica, "fleet history database up");
        }
        status.state = "up";
        status.error = None;
    }

    fn unavailable(&self, error: &DbError) {
        if matches!(error, DbError::Newer { .. } | DbError::Changed(_)) {
            self.schema_ok.store(false, Ordering::Relaxed);
        }
        let mut status = self.status.lock_anyway();
        if status.error.as_deref() != Some(&error.to_string()) {
            tracing::error!(%error, "fleet history unavailable; batches wait in data_dir and mining goes on");
        }
        status.state = "unavailable";
        status.error = Some(error.to_string());
    }

    fn dropped(&self, rows: u64, why: &str) {
        if rows == 0 {
            return;
        }
        tracing::error!(rows, why, "fleet history rows dropped");
        self.status.lock_anyway().dropped_rows += rows;
    }

    fn written(&self, seconds: f64) {
        self.up();
        let mut status = self.status.lock_anyway();
        status.last_written = Some(ndas_core::clock::unix_now());
        status.last_write_seconds = Some(seconds);
    }

    fn count_queue(&self, (batches, bytes): (usize, u64)) {
        let mut status = self.status.lock_anyway();
        status.queued_batches = batches;
        status.queued_bytes = bytes;
    }
}
