//! The operator port's answers, one function per endpoint: readiness,
//! the Prometheus text, `/api/stats`, `/api/workers` and the history.
//! [`super::route`] checks the method, the rate and the token first.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::query::{page, query_value};
use super::{json_response, respond, HttpContext};
use crate::stats::Stats;

/// Longest `/api/workers?q=` search: a worker name's longest.
const MAX_SEARCH_BYTES: usize = ndas_core::stratum::method::MAX_WORKER_NAME;

/// Payout addresses `/api/stats` lists, most hashrate first.
const PAYOUT_ROWS: usize = 100;

type Answer = Response<Full<Bytes>>;

/// `/readyz`: ready while any node serves templates; what is wrong with
/// the others (a backup down or behind) is listed. The node's error text
/// only with `details`.
pub(super) fn readyz(context: &HttpContext, details: bool) -> Answer {
    let shown = |reasons: Vec<String>| -> Vec<String> {
        if details {
            reasons
        } else {
            reasons.iter().map(|r| redacted(r)).collect()
        }
    };
    match context.stats.readiness(context.max_template_age) {
        Ok(notes) if notes.is_empty() => json_response(StatusCode::OK, &json!({"ready": true})),
        Ok(notes) => json_response(
            StatusCode::OK,
            &json!({"ready": true, "degraded": shown(notes)}),
        ),
        Err(reasons) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "reasons": shown(reasons)}),
        ),
    }
}

/// `/metrics`: the gauges read at scrape time, then the registry's text.
pub(super) fn metrics(context: &HttpContext) -> Answer {
    let stats = &context.stats;
    let scraped = &stats.metrics.scraped;
    let (known, connected) = stats.workers.counts();
    scraped.workers_connected.set(connected as i64);
    scraped.workers_registered.set(known as i64);
    let (online, offline) = stats.worker_states();
    let by_state = &scraped.workers;
    by_state.with_label_values(&["online"]).set(online as i64);
    by_state.with_label_values(&["offline"]).set(offline as i64);
    if let Some(age) = stats.template_age() {
        scraped.template_age_seconds.set(age.as_secs_f64());
    }
    if let Some(fleet) = &context.fleet {
        let status = fleet.status();
        scraped.fleet_up.set(i64::from(status.state == "up"));
        scraped
            .fleet_queued_batches
            .set(status.queued_batches as i64);
        scraped.fleet_queued_bytes.set(status.queued_bytes as i64);
        let counted = scraped.fleet_dropped_rows_total.get();
        scraped
            .fleet_dropped_rows_total
            .inc_by(status.dropped_rows.saturating_sub(counted));
    }
    scraped
        .payout_groups
        .set(context.payout_groups.group_count() as i64);
    for route in stats.routes() {
        let labels = [route.to.as_str()];
        scraped
            .route_miners
            .with_label_values(&labels)
            .set(route.miners as i64);
        scraped
            .route_weight
            .with_label_values(&labels)
            .set(route.weight);
        scraped
            .route_share
            .with_label_values(&labels)
            .set(route.share);
    }
    respond(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        stats.metrics.render(),
    )
}

/// `/api/stats`: the pool's figures and the payout groups.
pub(super) fn stats(context: &HttpContext, details: bool) -> Answer {
    let mut snapshot = context.stats.snapshot();
    let mut payouts = context.payout_groups.snapshot(PAYOUT_ROWS);
    payouts["fallback"] = context.stats.fallbacks();
    snapshot["payouts"] = payouts;
    if let Some(fleet) = &context.fleet {
        snapshot["fleet"] = serde_json::to_value(fleet.status()).unwrap_or_default();
    }
    if !details {
        redact_snapshot(&mut snapshot);
    }
    json_response(StatusCode::OK, &snapshot)
}

/// `/api/workers`: a page of the registry, or of a ranked, searched view.
pub(super) fn workers(stats: &Stats, query: &str) -> Answer {
    let (offset, limit) = page(query);
    let (sort, search, state) = (
        query_value(query, "sort"),
        query_value(query, "q"),
        query_value(query, "state"),
    );
    if sort.is_some() || search.is_some() || state.is_some() {
        return match worker_view(sort.as_deref(), search.as_deref(), state.as_deref()) {
            Ok(view) => json_response(StatusCode::OK, &stats.workers_ranked(&view, offset, limit)),
            Err(error) => json_response(StatusCode::BAD_REQUEST, &json!({"error": error})),
        };
    }
    let after = query_value(query, "after");
    let from = match &after {
        Some(name) => crate::stats::registry::From::After(name),
        None => crate::stats::registry::From::Offset(offset),
    };
    json_response(StatusCode::OK, &stats.workers_page(from, limit))
}

/// `/api/history`, `/api/history/worker` and `/api/history/blocks`: the
/// fleet's with a fleet database (unless `scope=replica`), else this
/// replica's, with `fleet_error` when the fleet's could not be read; 503
/// when neither can be.
pub(super) fn history(context: &HttpContext, path: &str, query: &str) -> Answer {
    let mut fleet_error = None;
    if let Some(fleet) = &context.fleet {
        if query_value(query, "scope").as_deref() != Some("replica") {
            match super::fleet::history(fleet, path, query) {
                Ok(answer) => return answer,
                Err(error) => fleet_error = Some(format!("fleet view unavailable: {error}")),
            }
        }
    }
    let Some(history) = context.history.as_deref() else {
        let error = fleet_error.unwrap_or_else(|| "history unavailable: the log says why".into());
        return json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({ "error": error }));
    };
    let (status, mut body) = local_history(history, path, query);
    if let Some(object) = body.as_object_mut() {
        object.insert("scope".into(), "replica".into());
        if let Some(error) = fleet_error {
            object.insert("fleet_error".into(), error.into());
        }
    }
    json_response(status, &body)
}

fn local_history(
    history: &crate::history::History,
    path: &str,
    query: &str,
) -> (StatusCode, Value) {
    let failed = |status, error: String| (status, json!({ "error": error }));
    match path {
        "/api/history/worker" => {
            let name = query_value(query, "name").unwrap_or_default();
            match history.worker(&name) {
                Ok(Some(totals)) => (StatusCode::OK, json!({"name": name, "totals": totals})),
                Ok(None) => failed(
                    StatusCode::NOT_FOUND,
                    "no such worker in the history".into(),
                ),
                Err(error) => failed(StatusCode::INTERNAL_SERVER_ERROR, error),
            }
        }
        "/api/history/blocks" => match history.blocks() {
            Ok(blocks) => (StatusCode::OK, json!({ "blocks": blocks })),
            Err(error) => failed(StatusCode::INTERNAL_SERVER_ERROR, error),
        },
        _ => {
            let range = query_value(query, "range");
            match history.series(
                range.as_deref().unwrap_or("24h"),
                ndas_core::clock::unix_now(),
            ) {
                Ok(series) => (StatusCode::OK, series),
                Err(error) => failed(StatusCode::BAD_REQUEST, error),
            }
        }
    }
}

/// `/api/stats` for a client without the token: the node's error text can
/// name its address anywhere in it, so none of it is shown.
pub(super) fn redact_snapshot(snapshot: &mut Value) {
    let hidden = json!("hidden: send metrics.token to see it");
    if !snapshot["node"]["last_error"].is_null() {
        snapshot["node"]["last_error"] = hidden.clone();
    }
    if let Some(nodes) = snapshot["nodes"].as_array_mut() {
        for node in nodes.iter_mut().filter(|n| !n["last_error"].is_null()) {
            node["last_error"] = hidden.clone();
        }
    }
}

/// A reason without its detail: "node unreachable: <error>" is "node unreachable".
pub(super) fn redacted(reason: &str) -> String {
    reason
        .split_once(": ")
        .map_or(reason, |(what, _)| what)
        .to_owned()
}

/// A ranked `/api/workers` view from its query values, or what is wrong.
fn worker_view<'a>(
    sort: Option<&str>,
    search: Option<&'a str>,
    state: Option<&str>,
) -> Result<crate::stats::WorkerView<'a>, String> {
    use crate::stats::{Presence, WorkerSort};
    let search = search.unwrap_or("");
    if search.len() > MAX_SEARCH_BYTES {
        return Err(format!("q is longer than {MAX_SEARCH_BYTES} bytes"));
    }
    Ok(crate::stats::WorkerView {
        sort: match sort {
            None | Some("hashrate") => WorkerSort::Hashrate,
            Some("last_share") => WorkerSort::LastShare,
            Some(other) => {
                return Err(format!(
                    "sort={other:.40}: hashrate or last_share (by name: no sort, paged with after=)"
                ))
            }
        },
        query: search,
        state: match state {
            None => None,
            Some("online") => Some(Presence::Online),
            Some("offline") => Some(Presence::Offline),
            Some(other) => return Err(format!("state={other:.40}: online or offline")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nodes_error_text_is_never_shown_without_the_token() {
        let mut snapshot = json!({"node": {"up": false, "last_error":
            "node at 10.0.0.5:8332 unreachable for getblocktemplate: connection refused"},
            "nodes": [{"name": "primary", "last_error": null},
                      {"name": "dc2", "last_error": "node at 10.0.0.6:8332 unreachable"}]});
        redact_snapshot(&mut snapshot);
        assert!(!snapshot.to_string().contains("10.0.0.5"), "{snapshot}");
        assert!(!snapshot.to_string().contains("10.0.0.6"), "{snapshot}");
        assert_eq!(snapshot["nodes"][0]["last_error"], Value::Null);
        assert_eq!(
            redacted("node dc2 down: node at 10.0.0.6:8332 unreachable"),
            "node dc2 down"
        );
        assert_eq!(
            redacted("node unreachable: node at 10.0.0.5:8332 unreachable for x: refused"),
            "node unreachable"
        );
        let mut fine = json!({"node": {"up": true, "last_error": null}});
        redact_snapshot(&mut fine);
        assert_eq!(fine["node"]["last_error"], Value::Null);
    }

    #[test]
    fn a_cursor_is_percent_decoded() {
        assert_eq!(
            query_value("limit=5&after=acct.%E5%90%8D%2Brig", "after").as_deref(),
            Some("acct.名+rig")
        );
        assert_eq!(query_value("after=a%2", "after").as_deref(), Some("a%2"));
        assert_eq!(query_value("after=a+b", "after").as_deref(), Some("a b"));
        assert_eq!(query_value("limit=5", "after"), None);
    }
}
