//! The fleet's answers, read from the fleet database when `[history]
//! database_url` is set: `/api/fleet`, `/api/workers?fleet=1`, and the
//! history endpoints for the whole fleet. Each read waits at most
//! [`READ_TIMEOUT`]; a database that cannot answer gives the replica's
//! own history with `fleet_error` saying why (the page shows it), or a 503
//! where there is nothing local to show.

use std::future::Future;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{json, Value};

use super::query::{page, query_value};
use super::{json_response, HttpContext};
use crate::history::fleet::db::DbError;
use crate::history::fleet::Fleet;

type Answer = hyper::Response<http_body_util::Full<bytes::Bytes>>;

/// Longest a fleet read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Workers that shared within this are the fleet's workers now.
const RECENT_SECONDS: u64 = 600;
/// A replica that wrote within this is reporting.
const REPORTING_SECONDS: f64 = 180.0;
/// Blocks listed.
const BLOCKS: usize = 200;

/// Runs a read on the runtime from the answer thread (a blocking-pool
/// thread, which may wait on it).
fn read<T>(future: impl Future<Output = Result<T, DbError>>) -> Result<T, String> {
    let handle = tokio::runtime::Handle::current();
    match handle.block_on(tokio::time::timeout(READ_TIMEOUT, future)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("the fleet database did not answer in time".into()),
    }
}

fn unavailable(error: &str) -> Answer {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"error": format!("fleet view unavailable: {error}")}),
    )
}

/// `/api/fleet`: this replica's writer, and every replica with whether it
/// reported lately.
pub(super) fn status(context: &HttpContext) -> Answer {
    let Some(fleet) = &context.fleet else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "no fleet history: [history] database_url is not set"}),
        );
    };
    let mut answer = json!({"writer": fleet.status()});
    match fleet.db().and_then(|db| read(db.replicas())) {
        Ok(replicas) => {
            let replicas: Vec<Value> = replicas
                .into_iter()
                .map(|r| {
                    let reporting = r.seconds_since_report <= REPORTING_SECONDS;
                    let mut row = serde_json::to_value(r).unwrap_or_default();
                    row["reporting"] = reporting.into();
                    row
                })
                .collect();
            answer["available"] = true.into();
            answer["replicas"] = replicas.into();
        }
        Err(error) => {
            answer["available"] = false.into();
            answer["error"] = format!("fleet view unavailable: {error}").into();
        }
    }
    json_response(StatusCode::OK, &answer)
}

/// `/api/workers?fleet=1`: each worker on each replica that shared in the
/// last ten minutes, by name, a page at a time.
pub(super) fn workers(fleet: &Fleet, query: &str) -> Answer {
    let (offset, limit) = page(query);
    // The last ten whole minutes (the one under way is not written yet).
    let since = (ndas_core::clock::unix_now() / 60 * 60).saturating_sub(RECENT_SECONDS);
    match fleet
        .db()
        .and_then(|db| read(db.workers(since, offset, limit)))
    {
        Ok((workers, total)) => {
            let rows: Vec<Value> = workers
                .into_iter()
                .map(|w| {
                    let minutes = RECENT_SECONDS as f64;
                    json!({
                        "name": w.name,
                        "replica": w.replica,
                        "accepted": w.accepted,
                        "rejected": w.rejected,
                        "stale": w.stale,
                        "accepted_difficulty": w.accepted_difficulty,
                        "hashrate_10m": w.accepted_difficulty * 4_294_967_296.0 / minutes,
                        "best_share": w.best_share,
                        "last_minute": w.last_minute,
                    })
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"scope": "fleet", "window_seconds": RECENT_SECONDS, "total": total, "offset": offset, "workers": rows}),
            )
        }
        Err(error) => unavailable(&error),
    }
}

/// `/api/fleet/accounts`: each account across every replica over the last
/// ten whole minutes, the most hashrate first (at most `limit`).
pub(super) fn accounts(context: &HttpContext, query: &str) -> Answer {
    let Some(fleet) = &context.fleet else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "no fleet history: [history] database_url is not set"}),
        );
    };
    let (_, limit) = page(query);
    let since = (ndas_core::clock::unix_now() / 60 * 60).saturating_sub(RECENT_SECONDS);
    match fleet.db().and_then(|db| read(db.accounts(since, limit))) {
        Ok((accounts, total)) => {
            let rows: Vec<Value> = accounts
                .into_iter()
                .map(|a| {
                    let hashrate = a.accepted_difficulty * 4_294_967_296.0 / RECENT_SECONDS as f64;
                    let mut row = serde_json::to_value(a).unwrap_or_default();
                    row["hashrate_10m"] = hashrate.into();
                    row
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"scope": "fleet", "window_seconds": RECENT_SECONDS, "total": total, "accounts": rows}),
            )
        }
        Err(error) => unavailable(&error),
    }
}

/// The history endpoints for the whole fleet; `Err` with why when the
/// database cannot answer (the caller answers from the replica's own).
pub(super) fn history(fleet: &Fleet, path: &str, query: &str) -> Result<Answer, String> {
    match path {
        "/api/history/worker" => {
            let name = query_value(query, "name").unwrap_or_default();
            let totals = read(fleet.db()?.worker(&name))?;
            Ok(match totals {
                Some(totals) => json_response(
                    StatusCode::OK,
                    &json!({"scope": "fleet", "name": name, "totals": totals}),
                ),
                None => json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"error": "no such worker in the fleet history"}),
                ),
            })
        }
        "/api/history/blocks" => {
            let blocks = read(fleet.db()?.blocks(BLOCKS))?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"scope": "fleet", "blocks": blocks}),
            ))
        }
        _ => {
            let range = query_value(query, "range").unwrap_or_else(|| "24h".into());
            let (seconds, hourly) = match range.as_str() {
                "1h" => (3600, false),
                "24h" => (86_400, false),
                "7d" => (7 * 86_400, true),
                "90d" => (90 * 86_400, true),
                other => {
                    return Ok(json_response(
                        StatusCode::BAD_REQUEST,
                        &json!({"error": format!("range={other:.20}: 1h, 24h, 7d or 90d")}),
                    ))
                }
            };
            let since = ndas_core::clock::unix_now().saturating_sub(seconds);
            let points = read(fleet.db()?.series(since, hourly))?;
            let bucket = if hourly { 3600.0 } else { 60.0 };
            let points: Vec<Value> = points
                .into_iter()
                .map(|p| {
                    json!({
                        "t": p.t,
                        "hashrate": p.accepted_difficulty * 4_294_967_296.0 / bucket,
                        "accepted": p.accepted,
                        "rejected": p.rejected,
                        "stale": p.stale,
                        "workers_online": p.workers,
                    })
                })
                .collect();
            Ok(json_response(
                StatusCode::OK,
                &json!({"scope": "fleet", "range": range, "bucket_seconds": bucket as u64, "points": points}),
            ))
        }
    }
}
