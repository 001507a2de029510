//! The operator's HTTP surface: `/metrics`, `/healthz`, `/readyz`,
//! `/api/stats`, `/api/workers`, and a status page at `/`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::stats::Stats;

/// Most workers one `/api/workers` page returns.
pub const MAX_WORKERS_PAGE: usize = 1000;

const STATUS_PAGE: &str = include_str!("status.html");

/// What the handlers need.
pub struct HttpContext {
    pub stats: Arc<Stats>,
    /// `/readyz` fails when the template is older than this.
    pub max_template_age: Duration,
}

/// Serves until shutdown.
pub async fn serve(
    listener: TcpListener,
    context: Arc<HttpContext>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (stream, _) = tokio::select! {
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
        let context = context.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let service = service_fn(move |request| {
                let context = context.clone();
                async move { Ok::<_, Infallible>(route(&context, &request)) }
            });
            let connection = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
            }
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

/// Answers one request.
pub fn route(context: &HttpContext, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "only GET"}),
        );
    }
    let stats = &context.stats;
    match request.uri().path() {
        "/" => respond(StatusCode::OK, "text/html; charset=utf-8", STATUS_PAGE),
        "/healthz" => json_response(StatusCode::OK, &json!({"status": "alive"})),
        "/readyz" => match stats.readiness(context.max_template_age) {
            Ok(()) => json_response(StatusCode::OK, &json!({"ready": true})),
            Err(reasons) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"ready": false, "reasons": reasons}),
            ),
        },
        "/metrics" => {
            stats.metrics.workers.set(stats.connected_workers() as i64);
            if let Some(age) = stats.template_age() {
                stats.metrics.template_age_seconds.set(age.as_secs_f64());
            }
            respond(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                stats.metrics.render(),
            )
        }
        "/api/stats" => json_response(StatusCode::OK, &stats.snapshot()),
        "/api/workers" => {
            let (offset, limit) = page(request.uri().query().unwrap_or(""));
            json_response(StatusCode::OK, &stats.workers_page(offset, limit))
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not found"})),
    }
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
}
