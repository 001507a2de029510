//! Bitcoin Core JSON-RPC over HTTP/1.1 with connection reuse, a timeout per
//! call, and retries with exponential backoff for transient failures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::utek::NodeEndpoint;
use crate::config::MAX_RESPONSE_BYTES;

/// Told of every call, so the client can be counted without knowing what
/// counts it (the metrics implement it; the node layer stays below them).
pub trait ObserveRpc: Send + Sync {
    /// `method` was called; it failed with `error` (an [`RpcError::kind`])
    /// or succeeded, after `seconds`.
    fn observe_rpc(&self, method: &str, error: Option<&'static str>, seconds: f64);
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("node at {endpoint} unreachable for {method}: {reason}")]
    Transport {
        endpoint: String,
        method: String,
        reason: String,
    },
    #[error("node did not answer {method} within {timeout:?}")]
    Timeout { method: String, timeout: Duration },
    #[error("node refused the RPC credentials (HTTP 401); check rpcuser/rpcpassword")]
    Unauthorized,
    #[error("node answered {method} with HTTP {status}{detail}")]
    Http {
        method: String,
        status: u16,
        /// `: ` and the start of a body that is not JSON-RPC (`Work queue depth exceeded`).
        detail: String,
    },
    #[error("node rejected {method}: {message} (code {code})")]
    Rpc {
        method: String,
        code: i64,
        message: String,
    },
    #[error("node sent an unreadable answer to {method}: {reason}")]
    Decode { method: String, reason: String },
}

impl RpcError {
    ndas_core::labels! {
        /// Every [`RpcError::kind`], for metrics labels.
        KINDS;
        /// What went wrong, in one word, as metrics label it.
        fn kind;
        RpcError::Transport { .. } => "unreachable",
        RpcError::Timeout { .. } => "timeout",
        RpcError::Unauthorized => "unauthorized",
        RpcError::Http { .. } => "http",
        RpcError::Rpc { .. } => "rpc",
        RpcError::Decode { .. } => "unreadable",
    }

    /// Worth retrying: the node may answer differently in a moment.
    pub fn is_transient(&self) -> bool {
        match self {
            RpcError::Transport { .. } | RpcError::Timeout { .. } => true,
            RpcError::Http { status, .. } => *status >= 500,
            // -28 warming up, -9 not connected, -10 initial block download.
            RpcError::Rpc { code, .. } => matches!(code, -28 | -9 | -10),
            RpcError::Unauthorized | RpcError::Decode { .. } => false,
        }
    }
}

/// Exponential backoff between attempts.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    /// Attempts in all, including the first.
    pub attempts: u32,
}

impl Backoff {
    /// The wait before attempt `n` (1-based, after the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.first.saturating_mul(factor).min(self.max)
    }
}

#[derive(Deserialize)]
struct RpcResponse<T> {
    #[serde(default = "none")]
    result: Option<T>,
    #[serde(default)]
    error: Option<RpcErrorBody>,
}

fn none<T>() -> Option<T> {
    None
}

#[derive(Deserialize)]
struct RpcErrorBody {
    code: i64,
    message: String,
}

/// One pooled client for one node.
pub struct RpcClient {
    client: Client<HttpConnector, Chunks>,
    uri: Uri,
    endpoint: String,
    /// `Basic …`, marked sensitive so hyper never logs it.
    authorization: hyper::header::HeaderValue,
    timeout: Duration,
    next_id: AtomicU64,
    observer: Option<Arc<dyn ObserveRpc>>,
    /// Longest answer read.
    max_response: usize,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// A client for `endpoint`; no connection is made until the first call.
    pub fn new(endpoint: &NodeEndpoint, timeout: Duration) -> Result<RpcClient, RpcError> {
        let host = if endpoint.host.contains(':') {
            format!("[{}]", endpoint.host)
        } else {
            endpoint.host.clone()
        };
        let address = format!("{host}:{}", endpoint.port);
        let uri: Uri = format!("http://{address}/")
            .parse()
            .map_err(|_| RpcError::Transport {
                endpoint: address.clone(),
                method: String::new(),
                reason: "not a valid host and port".into(),
            })?;
        let credentials = format!("{}:{}", endpoint.user, endpoint.password.expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        let mut authorization = hyper::header::HeaderValue::from_str(&format!("Basic {encoded}"))
            .expect("base64 is a valid header value");
        authorization.set_sensitive(true);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(8)
            .build(connector);
        Ok(RpcClient {
            client,
            uri,
            endpoint: address,
            authorization,
            timeout,
            next_id: AtomicU64::new(1),
            observer: None,
            max_response: MAX_RESPONSE_BYTES,
        })
    }

    /// Reads answers of at most `bytes`; a longer one is an error, not memory.
    pub fn with_max_response(mut self, bytes: usize) -> RpcClient {
        self.max_response = bytes;
        self
    }

    /// Tells `observer` of every call (the metrics count them in
    /// `ndas_rpc_calls_total` and `ndas_rpc_seconds`).
    pub fn with_observer(mut self, observer: Arc<dyn ObserveRpc>) -> RpcClient {
        self.observer = Some(observer);
        self
    }

    /// `host:port` of the node, for logs.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// How long one call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One attempt with the client's timeout.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, RpcError> {
        self.call_with_timeout(method, params, self.timeout).await
    }

    /// One attempt with a given timeout (longpoll waits far longer than a call).
    pub async fn call_with_timeout<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<T, RpcError> {
        let params = vec![Bytes::from(params.to_string())];
        self.call_serialized(method, params, timeout).await
    }

    /// One attempt with `params` already serialized as a JSON array, in
    /// parts sent one after the other, so a megabyte block goes out without
    /// being escaped or copied again.
    pub async fn call_serialized<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Vec<Bytes>,
        timeout: Duration,
    ) -> Result<T, RpcError> {
        let started = std::time::Instant::now();
        let answer = match tokio::time::timeout(timeout, self.send::<T>(method, params)).await {
            Ok(answer) => answer,
            Err(_) => Err(RpcError::Timeout {
                method: method.to_owned(),
                timeout,
            }),
        };
        if let Some(observer) = &self.observer {
            let error = answer.as_ref().err().map(RpcError::kind);
            observer.observe_rpc(method, error, started.elapsed().as_secs_f64());
        }
        answer
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Vec<Bytes>,
    ) -> Result<T, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let head = format!(
            r#"{{"jsonrpc":"1.0","id":{id},"method":{},"params":"#,
            Value::from(method)
        );
        let mut parts = Vec::with_capacity(params.len() + 2);
        parts.push(Bytes::from(head));
        parts.extend(params);
        parts.push(Bytes::from_static(b"}"));
        let body = Chunks(parts);
        let request = Request::post(self.uri.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .expect("static request parts are valid");
        let transport = |reason: String| RpcError::Transport {
            endpoint: self.endpoint.clone(),
            method: method.to_owned(),
            reason,
        };
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| transport(error_chain(&e)))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(RpcError::Unauthorized);
        }
        let limit = self.max_response;
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(
                |e| match e.downcast_ref::<http_body_util::LengthLimitError>() {
                    Some(_) => RpcError::Decode {
                        method: method.to_owned(),
                        reason: format!(
                            "the answer is over node.max_response_bytes ({limit} bytes)"
                        ),
                    },
                    None => transport(e.to_string()),
                },
            )?
            .to_bytes();
        // Bitcoin Core answers RPC errors with HTTP 500 and a JSON body.
        // The answer is read straight into `T`: no intermediate tree for big templates.
        match serde_json::from_slice::<RpcResponse<T>>(&body) {
            Ok(RpcResponse {
                error: Some(error), ..
            }) => Err(RpcError::Rpc {
                method: method.to_owned(),
                code: error.code,
                message: ndas_core::stratum::method::sanitize(&error.message, 200),
            }),
            Ok(RpcResponse {
                result: Some(result),
                ..
            }) if status.is_success() => Ok(result),
            Ok(RpcResponse { result: None, .. }) if status.is_success() => {
                serde_json::from_value(Value::Null).map_err(|e| RpcError::Decode {
                    method: method.to_owned(),
                    reason: e.to_string(),
                })
            }
            Err(e) if status.is_success() => Err(RpcError::Decode {
                method: method.to_owned(),
                reason: e.to_string(),
            }),
            _ => Err(RpcError::Http {
                method: method.to_owned(),
                status: status.as_u16(),
                detail: http_detail(&body),
            }),
        }
    }
}

/// A request body sent as its parts (with their total as `Content-Length`),
/// so a megabyte of `submitblock` params is never copied into a second buffer.
pub struct Chunks(Vec<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = (!self.0.is_empty()).then(|| Ok(Frame::data(self.0.remove(0))));
        std::task::Poll::Ready(next)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.iter().map(|chunk| chunk.len() as u64).sum())
    }
}

/// The start of a body that is not a JSON-RPC answer, printable, for the error text.
fn http_detail(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let text = ndas_core::stratum::method::sanitize(text.trim(), 120);
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
