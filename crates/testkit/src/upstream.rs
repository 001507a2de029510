//! What the upstream pool tests read of NDAS: each pool's status as
//! `/api/stats` shows it, and a worker's entry in `/api/workers`.

use std::time::{Duration, Instant};

use serde_json::Value;

/// Past an upstream's handshake bound (30 s) and a retry after it.
pub const UPSTREAM_WAIT: Duration = Duration::from_secs(45);

/// `/api/stats` `upstreams`, once `done` holds for them; panics after
/// [`UPSTREAM_WAIT`].
pub async fn upstreams_when(
    http: std::net::SocketAddr,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + UPSTREAM_WAIT;
    loop {
        let (_, stats) = super::http_json(http, "/api/stats").await;
        let list = stats["upstreams"].as_array().cloned().unwrap_or_default();
        if done(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "upstreams after {UPSTREAM_WAIT:?}: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Worker `name`'s entry in `/api/workers`; panics when it is not listed.
pub async fn worker(http: std::net::SocketAddr, name: &str) -> Value {
    let (_, workers) = super::http_json(http, "/api/workers").await;
    workers["workers"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["name"] == *name).cloned())
        .unwrap_or_else(|| panic!("{name} in {workers}"))
}
