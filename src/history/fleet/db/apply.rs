//! Writing one batch: one transaction, its key first, so a batch the
//! database already took (its answer lost in a cut) is skipped whole.
//! Worker rows go in as arrays (`UNNEST`), one statement per table however
//! many workers; minute and hour rows are added to, never replaced.

use std::collections::BTreeMap;

use sqlx::{Postgres, Transaction};

use super::{text, Db, DbError};
use crate::history::fleet::rows::{Batch, WorkerMinute};

/// What became of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// Its key was there: written before.
    AlreadyThere,
}

/// Worker figures summed by (worker, bucket start): one row each, as one
/// `INSERT … ON CONFLICT` may touch a row once.
fn by_bucket(rows: &[WorkerMinute], seconds: u64) -> BTreeMap<(&str, u64), WorkerMinute> {
    let mut sums: BTreeMap<(&str, u64), WorkerMinute> = BTreeMap::new();
    for row in rows {
        let start = row.minute / seconds * seconds;
        let sum = sums.entry((row.worker.as_str(), start)).or_default();
        sum.accepted += row.accepted;
        sum.rejected += row.rejected;
        sum.stale += row.stale;
        sum.accepted_difficulty += row.accepted_difficulty;
        sum.best_share = sum.best_share.max(row.best_share);
    }
    sums
}

fn seconds(unix: u64) -> f64 {
    unix as f64
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Db {
    /// Writes `batch` once.
    pub async fn apply(&self, batch: &Batch) -> Result<Applied, DbError> {
        super::bounded(self.apply_unbounded(batch)).await
    }

    async fn apply_unbounded(&self, batch: &Batch) -> Result<Applied, DbError> {
        let mut tx = self.pool.begin().await?;
        // A newer NDAS may have migrated the database since this one checked
        // it (a rolling upgrade): its tables are not this NDAS's to write.
        let found = super::newest_version(&mut *tx).await?;
        if found > Db::known_version() {
            tx.rollback().await?;
            return Err(DbError::Newer {
                found,
                known: Db::known_version(),
            });
        }
        let fresh = sqlx::query(
            "INSERT INTO applied_batches (replica, batch) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(text(&batch.replica))
        .bind(batch.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if fresh == 0 {
            tx.rollback().await?;
            return Ok(Applied::AlreadyThere);
        }
        sqlx::query(
            "INSERT INTO replicas (replica, version, started_at, last_report) \
             VALUES ($1, $2, to_timestamp($3), now()) \
             ON CONFLICT (replica) DO UPDATE SET version = excluded.version, \
             started_at = GREATEST(replicas.started_at, excluded.started_at), last_report = now()",
        )
        .bind(text(&batch.replica))
        .bind(text(&batch.version))
        .bind(seconds(batch.started_at))
        .execute(&mut *tx)
        .await?;
        if let Some(minute) = &batch.minute {
            sqlx::query(
                "INSERT INTO replica_minutes (replica, minute, connections, workers_connected, workers_online) \
                 VALUES ($1, to_timestamp($2), $3, $4, $5) \
                 ON CONFLICT (replica, minute) DO UPDATE SET connections = excluded.connections, \
                 workers_connected = excluded.workers_connected, workers_online = excluded.workers_online",
            )
            .bind(text(&batch.replica))
            .bind(seconds(minute.minute))
            .bind(int(minute.connections))
            .bind(int(minute.workers_connected))
            .bind(int(minute.workers_online))
            .execute(&mut *tx)
            .await?;
        }
        for (table, column, bucket) in [
            ("worker_minutes", "minute", 60),
            ("worker_hours", "hour", 3600),
        ] {
            add_workers(
                &mut tx,
                &batch.replica,
                table,
                column,
                &by_bucket(&batch.workers, bucket),
            )
            .await?;
        }
        write_blocks(&mut tx, batch).await?;
        write_sessions(&mut tx, batch).await?;
        write_states(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(Applied::Written)
    }
}

async fn add_workers(
    tx: &mut Transaction<'_, Postgres>,
    replica: &str,
    table: &str,
    column: &str,
    sums: &BTreeMap<(&str, u64), WorkerMinute>,
) -> Result<(), DbError> {
    if sums.is_empty() {
        return Ok(());
    }
    let mut names = Vec::with_capacity(sums.len());
    let (mut starts, mut accepted, mut rejected, mut stale, mut difficulty, mut best) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for ((name, start), sum) in sums {
        names.push(text(name));
        starts.push(seconds(*start));
        accepted.push(int(sum.accepted));
        rejected.push(int(sum.rejected));
        stale.push(int(sum.stale));
        difficulty.push(sum.accepted_difficulty);
        best.push(sum.best_share);
    }
    // The table and column names are this file's constants, never input.
    let sql = format!(
        "INSERT INTO {table} (replica, worker, {column}, accepted, rejected, stale, accepted_difficulty, best_share) \
         SELECT $1, w, to_timestamp(t), a, r, s, d, b \
         FROM UNNEST($2::text[], $3::float8[], $4::int8[], $5::int8[], $6::int8[], $7::float8[], $8::float8[]) \
         AS u(w, t, a, r, s, d, b) \
         ON CONFLICT (replica, worker, {column}) DO UPDATE SET \
         accepted = {table}.accepted + excluded.accepted, \
         rejected = {table}.rejected + excluded.rejected, \
         stale = {table}.stale + excluded.stale, \
         accepted_difficulty = {table}.accepted_difficulty + excluded.accepted_difficulty, \
         best_share = GREATEST({table}.best_share, excluded.best_share)"
    );
    sqlx::query(&sql)
        .bind(text(replica))
        .bind(names)
        .bind(starts)
        .bind(accepted)
        .bind(rejected)
        .bind(stale)
        .bind(difficulty)
        .bind(best)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn write_blocks(tx: &mut Transaction<'_, Postgres>, batch: &Batch) -> Result<(), DbError> {
    for block in &batch.blocks {
        // A later verdict replaces an earlier one, never the other way.
        sqlx::query(
            "INSERT INTO blocks (hash, height, replica, worker, found_at, status, updated_at) \
             VALUES ($1, $2, $3, $4, to_timestamp($5), $6, to_timestamp($7)) \
             ON CONFLICT (hash) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at \
             WHERE blocks.updated_at <= excluded.updated_at",
        )
        .bind(text(&block.hash))
        .bind(i32::try_from(block.height).unwrap_or(i32::MAX))
        .bind(text(&batch.replica))
        .bind(text(&block.worker))
        .bind(seconds(block.found_at))
        .bind(text(&block.status))
        .bind(seconds(block.at))
        .execute(&mut **tx)
        .await?;
        for (position, (address, value)) in block.paid.iter().enumerate() {
            sqlx::query(
                "INSERT INTO block_outputs (hash, position, address, value_sats) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(text(&block.hash))
            .bind(position as i32)
            .bind(text(address))
            .bind(int(*value))
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

async fn write_sessions(tx: &mut Transaction<'_, Postgres>, batch: &Batch) -> Result<(), DbError> {
    if batch.sessions.is_empty() {
        return Ok(());
    }
    let n = batch.sessions.len();
    let (mut runs, mut seqs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut workers, mut agents, mut protocols) = (Vec::new(), Vec::new(), Vec::new());
    let (mut starts, mut ends) = (Vec::new(), Vec::new());
    for session in &batch.sessions {
        runs.push(int(session.run));
        seqs.push(int(session.seq));
        let start = session.start.as_ref();
        workers.push(start.map(|s| text(&s.worker)));
        agents.push(start.and_then(|s| s.user_agent.as_deref().map(text)));
        protocols.push(start.map(|s| text(&s.protocol)));
        starts.push(start.map(|s| seconds(s.at)));
        ends.push(session.ended_at.map(seconds));
    }
    sqlx::query(
        "INSERT INTO sessions (replica, run, seq, worker, user_agent, protocol, connected_at, disconnected_at) \
         SELECT $1, r, q, w, a, p, to_timestamp(c), to_timestamp(d) \
         FROM UNNEST($2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::float8[]) \
         AS u(r, q, w, a, p, c, d) \
         ON CONFLICT (replica, run, seq) DO UPDATE SET \
         worker = COALESCE(excluded.worker, sessions.worker), \
         user_agent = COALESCE(excluded.user_agent, sessions.user_agent), \
         protocol = COALESCE(excluded.protocol, sessions.protocol), \
         connected_at = COALESCE(excluded.connected_at, sessions.connected_at), \
         disconnected_at = COALESCE(excluded.disconnected_at, sessions.disconnected_at)",
    )
    .bind(text(&batch.replica))
    .bind(runs)
    .bind(seqs)
    .bind(workers)
    .bind(agents)
    .bind(protocols)
    .bind(starts)
    .bind(ends)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn write_states(tx: &mut Transaction<'_, Postgres>, batch: &Batch) -> Result<(), DbError> {
    for state in &batch.states {
        sqlx::query(
            "INSERT INTO state_changes (replica, at, kind, name, state, detail) \
             VALUES ($1, to_timestamp($2), $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(text(&batch.replica))
        .bind(seconds(state.at))
        .bind(text(&state.kind))
        .bind(text(&state.name))
        .bind(text(&state.state))
        .bind(state.detail.as_deref().map(text))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
