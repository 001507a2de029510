//! The operator's HTTP surface: `/metrics`, `/healthz`, `/readyz`,
//! `/api/stats`, `/api/workers`, and a status page at `/`.
//!
//! Bounded like the stratum port: connections at once, a lifetime per
//! connection (a client that does not send or read is closed), header size,
//! and requests per second per address. With a token, `/api/*` and the
//! page need it (and `/metrics` when configured); `/healthz` and `/readyz`
//! stay open for probes, and a client without the token is never shown the
//! node's error text (it can name the node's address).

mod guard;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::stats::Stats;
pub use guard::Guard;
use ndas_core::clock::unix_now;

/// Most workers one `/api/workers` page returns.
pub const MAX_WORKERS_PAGE: usize = 1000;

/// Longest `/api/workers?q=` search: a worker name's longest.
const MAX_SEARCH_BYTES: usize = ndas_core::stratum::method::MAX_WORKER_NAME;

const STATUS_PAGE: &str = include_str!("status.html");

/// Largest request head read (hyper's own floor is 8 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// What the handlers need.
pub struct HttpContext {
    pub stats: Arc<Stats>,
    /// `/readyz` fails when the template is older than this.
    pub max_template_age: Duration,
    pub guard: Guard,
    /// Connections served at once.
    pub max_connections: usize,
    /// Longest one connection lives.
    pub timeout: Duration,
    /// Connections open now.
    pub open: AtomicUsize,
    /// Answers worked out at once (see [`answer_threads`]).
    pub working: tokio::sync::Semaphore,
    /// The pool's history, for `/api/history*` (none when it could not be opened).
    pub history: Option<Arc<crate::history::History>>,
}

/// Answers worked out at once: half the cores (at least one), so however
/// the operator port is flooded, the other half are the miners'.
pub fn answer_threads() -> tokio::sync::Semaphore {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::sync::Semaphore::new((cores / 2).max(1))
}

/// Counts a connection open until dropped.
struct Open(Arc<HttpContext>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves until shutdown.
pub async fn serve(
    listener: TcpListener,
    context: Arc<HttpContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "metrics listener accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if context.open.fetch_add(1, Ordering::Relaxed) >= context.max_connections {
            context.open.fetch_sub(1, Ordering::Relaxed);
            tracing::debug!(%peer, "operator port: connection refused (metrics.max_connections)");
            continue;
        }
        let open = Open(context.clone());
        let context = context.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let service = service_fn(move |request| {
                let context = context.clone();
                // Every answer is worked out on the blocking pool, never on
                // the runtime threads the miners' connections run on, and
                // on half the cores at most: a flood of requests cannot
                // delay a share or a job.
                let (head, _body) = request.into_parts();
                async move {
                    let _working = context
                        .working
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    let worked = context.clone();
                    let answer = tokio::task::spawn_blocking(move || route(&worked, &head, peer))
                        .await
                        .unwrap_or_else(|_| {
                            json_response(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                &json!({"error": "internal error"}),
                            )
                        });
                    Ok::<_, Infallible>(answer)
                }
            });
            let connection = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(open.0.timeout.min(Duration::from_secs(10)))
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            // The whole connection, however it is spent (a request never
            // finished, an answer never read), ends at the timeout.
            let lifetime = tokio::time::sleep(open.0.timeout);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = lifetime => {}
                _ = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            drop(open);
        });
    }
}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .header(CACHE_CONTROL, "no-store")
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    respond(status, "application/json", value.to_string())
}

/// Answers one request from `peer`.
pub fn route(
    context: &HttpContext,
    request: &hyper::http::request::Parts,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    if request.method != Method::GET && request.method != Method::HEAD {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "only GET"}),
        );
    }
    let guard = &context.guard;
    if !guard.allow(peer.ip(), Instant::now()) {
        let mut answer = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &json!({"error": "too many requests (metrics.requests_per_second)"}),
        );
        answer
            .headers_mut()
            .insert(RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
        return answer;
    }
    let path = request.uri.path();
    let authenticated = guard.authenticated(&request.headers);
    let needs_token = match path {
        "/healthz" | "/readyz" => false,
        "/metrics" => guard.protects_metrics,
        _ => true,
    };
    if needs_token && guard.has_token() && !authenticated {
        let mut answer = json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "this needs metrics.token (Authorization: Bearer <token>)"}),
        );
        answer.headers_mut().insert(
            WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Basic realm=\"NDAS\", charset=\"UTF-8\""),
        );
        return answer;
    }
    // The node's error text may name its address: only for a client with
    // the token, or on loopback when there is none.
    let details = authenticated || (!guard.has_token() && peer.ip().to_canonical().is_loopback());
    let stats = &context.stats;
    match path {
        "/" => respond(StatusCode::OK, "text/html; charset=utf-8", STATUS_PAGE),
        "/healthz" => json_response(StatusCode::OK, &json!({"status": "alive"})),
        "/readyz" => match stats.readiness(context.max_template_age) {
            // Ready while any node serves templates; what is wrong with
            // the others (a backup down or behind) is listed.
            Ok(notes) if notes.is_empty() => json_response(StatusCode::OK, &json!({"ready": true})),
            Ok(notes) => {
                let notes: Vec<String> = if details {
                    notes
                } else {
                    notes.iter().map(|r| redacted(r)).collect()
                };
                json_response(StatusCode::OK, &json!({"ready": true, "degraded": notes}))
            }
            Err(reasons) => {
                let reasons: Vec<String> = if details {
                    reasons
                } else {
                    reasons.iter().map(|r| redacted(r)).collect()
                };
                json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"ready": false, "reasons": reasons}),
                )
            }
        },
        "/metrics" => {
            let (known, connected) = stats.workers.counts();
            stats.metrics.workers_connected.set(connected as i64);
            stats.metrics.workers_registered.set(known as i64);
            let (online, offline) = stats.worker_states();
            let by_state = &stats.metrics.workers;
            by_state.with_label_values(&["online"]).set(online as i64);
            by_state.with_label_values(&["offline"]).set(offline as i64);
            if let Some(age) = stats.template_age() {
                stats.metrics.template_age_seconds.set(age.as_secs_f64());
            }
            stats
                .metrics
                .payout_groups
                .set(stats.payout_groups() as i64);
            respond(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                stats.metrics.render(),
            )
        }
        "/api/stats" => {
            let mut snapshot = stats.snapshot();
            if !details {
                redact_snapshot(&mut snapshot);
            }
            json_response(StatusCode::OK, &snapshot)
        }
        "/api/workers" => {
            let query = request.uri.query().unwrap_or("");
            let (offset, limit) = page(query);
            let (sort, search, state) = (
                query_value(query, "sort"),
                query_value(query, "q"),
                query_value(query, "state"),
            );
            if sort.is_some() || search.is_some() || state.is_some() {
                return match worker_view(sort.as_deref(), search.as_deref(), state.as_deref()) {
                    Ok(view) => {
                        json_response(StatusCode::OK, &stats.workers_ranked(&view, offset, limit))
                    }
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
        "/api/history" | "/api/history/worker" | "/api/history/blocks"
            if context.history.is_none() =>
        {
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "history unavailable: the log says why"}),
            )
        }
        "/api/history" => {
            let range = query_value(request.uri.query().unwrap_or(""), "range");
            match history_of(context).series(range.as_deref().unwrap_or("24h"), unix_now()) {
                Ok(series) => json_response(StatusCode::OK, &series),
                Err(error) => json_response(StatusCode::BAD_REQUEST, &json!({"error": error})),
            }
        }
        "/api/history/worker" => {
            let name = query_value(request.uri.query().unwrap_or(""), "name").unwrap_or_default();
            match history_of(context).worker(&name) {
                Ok(Some(totals)) => {
                    json_response(StatusCode::OK, &json!({"name": name, "totals": totals}))
                }
                Ok(None) => json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"error": "no such worker in the history"}),
                ),
                Err(error) => {
                    json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": error}))
                }
            }
        }
        "/api/history/blocks" => match history_of(context).blocks() {
            Ok(blocks) => json_response(StatusCode::OK, &json!({"blocks": blocks})),
            Err(error) => {
                json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": error}))
            }
        },
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not found"})),
    }
}

/// The history, once `route` has answered 503 without one.
fn history_of(context: &HttpContext) -> &crate::history::History {
    context.history.as_deref().expect("checked by route")
}

/// `/api/stats` for a client without the token: the node's error text can
/// name its address anywhere in it, so none of it is shown.
fn redact_snapshot(snapshot: &mut Value) {
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
fn redacted(reason: &str) -> String {
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

/// The decoded value of `key` in a query string (`+` and `%xx` decoded).
fn query_value(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, value)| value.into_owned())
}

/// `offset` and `limit` from a query string; bad values fall back to defaults.
fn page(query: &str) -> (usize, usize) {
    let mut offset = 0;
    let mut limit = 100;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("offset", value)) => offset = value.parse().unwrap_or(0),
            Some(("limit", value)) => limit = value.parse().unwrap_or(100),
            _ => {}
        }
    }
    (offset, limit.clamp(1, MAX_WORKERS_PAGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_capped_and_bad_values_default() {
        assert_eq!(page(""), (0, 100));
        assert_eq!(page("offset=20&limit=5"), (20, 5));
        assert_eq!(page("limit=1000000"), (0, MAX_WORKERS_PAGE));
        assert_eq!(page("offset=-1&limit=abc"), (0, 100));
    }

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
