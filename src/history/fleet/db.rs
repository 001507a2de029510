//! The fleet database, PostgreSQL through sqlx: the one module that names
//! the driver. The schema is `migrations/fleet/`, applied at connect by
//! sqlx's migrator (versioned, checksummed, under an advisory lock so
//! replicas starting together take turns); a database that has a
//! migration this NDAS does not know was made by a newer NDAS, and is
//! refused rather than written in a format it does not know.
//!
//! Every value a miner chose (a worker name, a user agent) is a bound
//! parameter; no SQL is built from text.

mod apply;
mod read;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use ndas_core::Secret;

pub use apply::Applied;
pub use read::{FleetAccount, FleetBlock, FleetPoint, FleetReplica, FleetWorker, WorkerTotals};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/fleet");

/// How long connecting, or waiting for a pooled connection, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest any statement may run, on the server (a 100,000-worker
/// batch takes seconds; a prune of a day's minutes, longer).
const STATEMENT_TIMEOUT: &str = "120s";
/// The longest a call may take here, whatever the server does (a host
/// that stops answering on an open connection never says so).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(150);

/// `call`, bounded by [`CALL_TIMEOUT`].
async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(DbError::Unreachable(format!(
                "no answer within {} s",
                CALL_TIMEOUT.as_secs()
            )))
        })
}

/// What went wrong, worded for the operator; never holds the URL.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum DbError {
    #[error("history.database_url: {0}")]
    Url(String),
    #[error("history.database_url: cannot reach the database: {0}")]
    Unreachable(String),
    #[error("history.database_url: the database refused NDAS: {0}")]
    Refused(String),
    #[error("history.database_url: the database's schema is version {found}, newer than this NDAS's {known}: run the newer NDAS, or give this one a database of its own")]
    Newer { found: i64, known: i64 },
    #[error("history.database_url: the database's migration {0} differs from this NDAS's (edited by hand?): restore it, or give NDAS a database of its own")]
    Changed(i64),
    /// The database refused a batch's data: that batch is skipped.
    #[error("history database refused a batch: {0}")]
    Rejected(String),
    #[error("history database: {0}")]
    Other(String),
}

impl DbError {
    /// Whether the batch itself is at fault (skipping it lets the next go).
    pub fn is_rejected(&self) -> bool {
        matches!(self, DbError::Rejected(_))
    }
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> DbError {
        match &error {
            sqlx::Error::Configuration(e) => DbError::Url(e.to_string()),
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_) => DbError::Unreachable(error.to_string()),
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                let text = format!("{} (SQLSTATE {code})", db.message());
                match &code[..code.len().min(2)] {
                    // Authorization (28), no such database (3D).
                    "28" | "3D" => DbError::Refused(text),
                    // Data (22), integrity (23), program limits (54).
                    "22" | "23" | "54" => DbError::Rejected(text),
                    // Connection (08), shutdown (57), resources (53).
                    "08" | "57" | "53" => DbError::Unreachable(text),
                    _ => DbError::Other(text),
                }
            }
            _ => DbError::Other(error.to_string()),
        }
    }
}

/// A pool of connections to the database.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    /// At most `connections` connections, made lazily: nothing is dialled
    /// until the first use, so a database that is away never holds the
    /// start up.
    pub fn new(url: &Secret, replica: &str, connections: u32) -> Result<Db, DbError> {
        let options = PgConnectOptions::from_str(url.expose())
            .map_err(|e| DbError::Url(e.to_string()))?
            .application_name(&format!("ndas {replica}"))
            .options([("statement_timeout", STATEMENT_TIMEOUT)]);
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(options);
        Ok(Db { pool })
    }

    /// The newest schema version this NDAS knows.
    pub fn known_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Creates or migrates the schema; refuses a newer one, and a database
    /// that cannot hold every miner's text (not UTF-8).
    pub async fn migrate(&self) -> Result<(), DbError> {
        bounded(self.migrate_unbounded()).await
    }

    async fn migrate_unbounded(&self) -> Result<(), DbError> {
        let encoding: String = sqlx::query_scalar("SHOW server_encoding")
            .fetch_one(&self.pool)
            .await?;
        if encoding != "UTF8" {
            return Err(DbError::Url(format!(
                "the database's encoding is {encoding}: miners' names and user agents need UTF8 (CREATE DATABASE … ENCODING 'UTF8')"
            )));
        }
        match MIGRATOR.run(&self.pool).await {
            Ok(()) => Ok(()),
            Err(MigrateError::VersionMissing(_)) => {
                let found = newest_version(&self.pool).await?;
                Err(DbError::Newer {
                    found,
                    known: Db::known_version(),
                })
            }
            Err(MigrateError::VersionMismatch(version)) => Err(DbError::Changed(version)),
            Err(MigrateError::Execute(e)) => Err(e.into()),
            Err(other) => Err(DbError::Other(other.to_string())),
        }
    }

    /// Whether the database answers, and its schema is still not newer
    /// than this NDAS's.
    pub async fn check(&self) -> Result<(), DbError> {
        let found = bounded(newest_version(&self.pool)).await?;
        if found > Db::known_version() {
            return Err(DbError::Newer {
                found,
                known: Db::known_version(),
            });
        }
        Ok(())
    }

    /// Closes the connections (waiting at most 2 s for those in use).
    pub async fn close(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.pool.close()).await;
    }
}

/// The newest migration the database has.
async fn newest_version<'e>(executor: impl sqlx::PgExecutor<'e>) -> Result<i64, DbError> {
    let found: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(executor)
            .await?;
    Ok(found)
}

/// PostgreSQL text cannot hold NUL; NDAS refuses control characters in
/// worker names and strips them from user agents, so this never changes
/// what a miner sent, but one such value must not stop the queue.
fn text(value: &str) -> String {
    if value.contains('\0') {
        value.replace('\0', "\u{FFFD}")
    } else {
        value.to_owned()
    }
}
