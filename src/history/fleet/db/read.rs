//! Reading the fleet back: the series, the workers, a worker's totals,
//! the blocks and the replicas, every replica's rows together, each row
//! marked with its replica where it has one.

use serde::Serialize;
use sqlx::Row;

use super::{Db, DbError};

/// One point of the fleet's series.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FleetPoint {
    pub t: i64,
    pub accepted: i64,
    pub rejected: i64,
    pub stale: i64,
    pub accepted_difficulty: f64,
    /// Workers with an accepted share in the bucket.
    pub workers: i64,
}

/// A worker on one replica over the recent minutes.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FleetWorker {
    pub name: String,
    pub replica: String,
    pub accepted: i64,
    pub rejected: i64,
    pub stale: i64,
    pub accepted_difficulty: f64,
    pub best_share: f64,
    /// Unix seconds of the last minute it shared in.
    pub last_minute: i64,
}

/// A worker's totals over the kept hours, every replica's together.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorkerTotals {
    pub accepted: i64,
    pub rejected: i64,
    pub stale: i64,
    pub accepted_difficulty: f64,
    pub best_share: f64,
    pub last_share: i64,
    pub replicas: Vec<String>,
}

/// A found block, with who its coinbase pays.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FleetBlock {
    pub height: i32,
    pub hash: String,
    pub replica: String,
    pub worker: String,
    pub found_at: i64,
    pub status: String,
    pub paid: serde_json::Value,
}

/// An account (a worker name's part before the first `.`: in `username`
/// mode, the address paid) across every replica.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FleetAccount {
    pub account: String,
    pub workers: i64,
    pub replicas: Vec<String>,
    pub accepted: i64,
    pub rejected: i64,
    pub stale: i64,
    pub accepted_difficulty: f64,
}

/// A replica and when it last wrote.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FleetReplica {
    pub replica: String,
    pub version: String,
    pub started_at: i64,
    pub last_report: i64,
    pub seconds_since_report: f64,
}

impl Db {
    /// The fleet's buckets from `since` (Unix seconds): by the minute, or
    /// by the hour from `worker_hours`.
    pub async fn series(&self, since: u64, hourly: bool) -> Result<Vec<FleetPoint>, DbError> {
        let (table, column) = match hourly {
            true => ("worker_hours", "hour"),
            false => ("worker_minutes", "minute"),
        };
        let sql = format!(
            "SELECT extract(epoch FROM {column})::int8 AS t, sum(accepted)::int8 AS a, \
             sum(rejected)::int8 AS r, sum(stale)::int8 AS s, sum(accepted_difficulty) AS d, \
             count(DISTINCT worker) FILTER (WHERE accepted > 0) AS w \
             FROM {table} WHERE {column} >= to_timestamp($1) GROUP BY {column} ORDER BY {column}"
        );
        let rows = sqlx::query(&sql)
            .bind(since as f64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(FleetPoint {
                    t: row.try_get("t")?,
                    accepted: row.try_get("a")?,
                    rejected: row.try_get("r")?,
                    stale: row.try_get("s")?,
                    accepted_difficulty: row.try_get("d")?,
                    workers: row.try_get("w")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Each worker on each replica that shared since `since`, by name from
    /// `offset`, at most `limit`; and how many there are.
    pub async fn workers(
        &self,
        since: u64,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<FleetWorker>, i64), DbError> {
        let rows = sqlx::query(
            "SELECT worker, replica, sum(accepted)::int8 AS a, sum(rejected)::int8 AS r, \
             sum(stale)::int8 AS s, sum(accepted_difficulty) AS d, max(best_share) AS b, \
             extract(epoch FROM max(minute))::int8 AS m, count(*) OVER () AS total \
             FROM worker_minutes WHERE minute >= to_timestamp($1) \
             GROUP BY worker, replica ORDER BY worker, replica OFFSET $2 LIMIT $3",
        )
        .bind(since as f64)
        .bind(offset.min(i32::MAX as usize) as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut total = 0;
        let mut workers = Vec::with_capacity(rows.len());
        for row in &rows {
            total = row.try_get("total")?;
            workers.push(FleetWorker {
                name: row.try_get("worker")?,
                replica: row.try_get("replica")?,
                accepted: row.try_get("a")?,
                rejected: row.try_get("r")?,
                stale: row.try_get("s")?,
                accepted_difficulty: row.try_get("d")?,
                best_share: row.try_get("b")?,
                last_minute: row.try_get("m")?,
            });
        }
        if rows.is_empty() && offset > 0 {
            total = sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT 1 FROM worker_minutes \
                 WHERE minute >= to_timestamp($1) GROUP BY worker, replica) AS w",
            )
            .bind(since as f64)
            .fetch_one(&self.pool)
            .await?;
        }
        Ok((workers, total))
    }

    /// Each account's figures since `since`, every replica's workers
    /// summed, the most accepted difficulty first, at most `limit`; and how
    /// many accounts there are.
    pub async fn accounts(
        &self,
        since: u64,
        limit: usize,
    ) -> Result<(Vec<FleetAccount>, i64), DbError> {
        let rows = sqlx::query(
            "SELECT split_part(worker, '.', 1) AS account, count(DISTINCT worker) AS w, \
             array_agg(DISTINCT replica) AS replicas, sum(accepted)::int8 AS a, \
             sum(rejected)::int8 AS r, sum(stale)::int8 AS s, sum(accepted_difficulty) AS d, \
             count(*) OVER () AS total \
             FROM worker_minutes WHERE minute >= to_timestamp($1) \
             GROUP BY 1 ORDER BY d DESC, account LIMIT $2",
        )
        .bind(since as f64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut total = 0;
        let mut accounts = Vec::with_capacity(rows.len());
        for row in &rows {
            total = row.try_get("total")?;
            accounts.push(FleetAccount {
                account: row.try_get("account")?,
                workers: row.try_get("w")?,
                replicas: row.try_get("replicas")?,
                accepted: row.try_get("a")?,
                rejected: row.try_get("r")?,
                stale: row.try_get("s")?,
                accepted_difficulty: row.try_get("d")?,
            });
        }
        Ok((accounts, total))
    }

    /// `name`'s totals over every kept hour, every replica's.
    pub async fn worker(&self, name: &str) -> Result<Option<WorkerTotals>, DbError> {
        let row = sqlx::query(
            "SELECT sum(accepted)::int8 AS a, sum(rejected)::int8 AS r, sum(stale)::int8 AS s, \
             sum(accepted_difficulty) AS d, max(best_share) AS b, \
             (SELECT extract(epoch FROM max(minute))::int8 FROM worker_minutes \
              WHERE worker = $1 AND accepted > 0) AS last_minute, \
             extract(epoch FROM max(hour) FILTER (WHERE accepted > 0))::int8 AS last_hour, \
             array_agg(DISTINCT replica) AS replicas \
             FROM worker_hours WHERE worker = $1",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await?;
        let accepted: Option<i64> = row.try_get("a")?;
        let Some(accepted) = accepted else {
            return Ok(None);
        };
        let last_minute: Option<i64> = row.try_get("last_minute")?;
        let last_hour: Option<i64> = row.try_get("last_hour")?;
        Ok(Some(WorkerTotals {
            accepted,
            rejected: row.try_get("r")?,
            stale: row.try_get("s")?,
            accepted_difficulty: row.try_get("d")?,
            best_share: row.try_get("b")?,
            last_share: last_minute.or(last_hour).unwrap_or(0),
            replicas: row
                .try_get::<Option<Vec<String>>, _>("replicas")?
                .unwrap_or_default(),
        }))
    }

    /// The newest `limit` blocks, newest first.
    pub async fn blocks(&self, limit: usize) -> Result<Vec<FleetBlock>, DbError> {
        let rows = sqlx::query(
            "SELECT b.height, b.hash, b.replica, b.worker, extract(epoch FROM b.found_at)::int8 AS f, \
             b.status, COALESCE((SELECT json_agg(json_build_object('address', o.address, \
             'value', o.value_sats) ORDER BY o.position) FROM block_outputs o \
             WHERE o.hash = b.hash), '[]'::json)::text AS paid \
             FROM blocks b ORDER BY b.found_at DESC, b.height DESC LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut blocks = Vec::with_capacity(rows.len());
        for row in &rows {
            let paid: String = row.try_get("paid")?;
            blocks.push(FleetBlock {
                height: row.try_get("height")?,
                hash: row.try_get("hash")?,
                replica: row.try_get("replica")?,
                worker: row.try_get("worker")?,
                found_at: row.try_get("f")?,
                status: row.try_get("status")?,
                paid: serde_json::from_str(&paid).unwrap_or_default(),
            });
        }
        Ok(blocks)
    }

    /// Every replica that ever wrote, the latest report first.
    pub async fn replicas(&self) -> Result<Vec<FleetReplica>, DbError> {
        let rows = sqlx::query(
            "SELECT replica, version, extract(epoch FROM started_at)::int8 AS s, \
             extract(epoch FROM last_report)::int8 AS l, \
             extract(epoch FROM now() - last_report)::float8 AS ago \
             FROM replicas ORDER BY last_report DESC, replica",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(FleetReplica {
                    replica: row.try_get("replica")?,
                    version: row.try_get("version")?,
                    started_at: row.try_get("s")?,
                    last_report: row.try_get("l")?,
                    seconds_since_report: row.try_get("ago")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Drops what is past its keeping: minutes after 48 hours, hours and
    /// sessions after 400 days, batch keys after 30 days.
    pub async fn prune(&self) -> Result<(), DbError> {
        super::bounded(self.prune_unbounded()).await
    }

    async fn prune_unbounded(&self) -> Result<(), DbError> {
        for sql in [
            "DELETE FROM worker_minutes WHERE minute < now() - interval '48 hours'",
            "DELETE FROM replica_minutes WHERE minute < now() - interval '48 hours'",
            "DELETE FROM worker_hours WHERE hour < now() - interval '400 days'",
            "DELETE FROM sessions WHERE COALESCE(disconnected_at, connected_at) < now() - interval '400 days'",
            "DELETE FROM applied_batches WHERE applied_at < now() - interval '30 days'",
        ] {
            sqlx::query(sql).execute(&self.pool).await?;
        }
        Ok(())
    }
}
