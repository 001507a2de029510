//! The operator's HTTP surface: `/metrics`, `/healthz`, `/readyz`,
//! `/api/stats`, `/api/workers`, and a status page at `/`.
//!
//! Bounded like the stratum port: connections at once, a lifetime per
//! connection (a client that does not send or read is closed), header size,
//! and requests per second per address. With a token, `/api/*` and the
//! page need it (and `/metrics` when configured); `/healthz` and `/readyz`
//! stay open for probes, and a client without the token is never shown the
//! node's error text (it can name the node's address).

mod api;
mod fleet;
mod guard;
mod query;

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

/// Most workers one `/api/workers` page returns.
pub const MAX_WORKERS_PAGE: usize = 1000;

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
    /// The fleet history, for `/api/fleet` and the fleet's views (none
    /// unless `[history] database_url` is set).
    pub fleet: Option<Arc<crate::history::fleet::Fleet>>,
    /// The payout groups, for `/api/stats` `payouts` and `ndas_payout_groups`.
    pub payout_groups: Arc<crate::work::Groups>,
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
    let query = request.uri.query().unwrap_or("");
    match path {
        "/" => respond(StatusCode::OK, "text/html; charset=utf-8", STATUS_PAGE),
        "/healthz" => json_response(StatusCode::OK, &json!({"status": "alive"})),
        "/readyz" => api::readyz(context, details),
        "/metrics" => api::metrics(context),
        "/api/stats" => api::stats(context, details),
        "/api/workers" => match (&context.fleet, query::query_value(query, "fleet")) {
            (Some(fleet), Some(on)) if on == "1" => fleet::workers(fleet, query),
            (None, Some(on)) if on == "1" => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": "no fleet history: [history] database_url is not set"}),
            ),
            _ => api::workers(&context.stats, query),
        },
        "/api/fleet" => fleet::status(context),
        "/api/fleet/accounts" => fleet::accounts(context, query),
        "/api/history" | "/api/history/worker" | "/api/history/blocks" => {
            api::history(context, path, query)
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not found"})),
    }
}
