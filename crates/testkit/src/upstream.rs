//! What the upstream pool tests read of NDAS: each pool's status as
//! `/api/stats` shows it, and a worker's entry in `/api/workers`; and the
//! job their scripted pools send.

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

/// A scripted pool's `mining.notify` of job `id` on `prev` (in the
/// header's byte order) at the current time, with regtest's bits and a
/// coinbase cut for an 8-byte extranonce2.
pub fn notify(id: &str, prev: [u8; 32]) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    // Stratum's previous-block hash: each 4-byte word reversed.
    let mut words = prev;
    for word in words.chunks_exact_mut(4) {
        word.reverse();
    }
    serde_json::json!({"id": null, "method": "mining.notify", "params": [
        id,
        hex::encode(words),
        "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff1c03",
        "ffffffff0100f2052a010000001976a914000000000000000000000000000000000000000088ac00000000",
        [],
        "20000000",
        "207fffff",
        format!("{now:08x}"),
        true
    ]})
}

/// An `[[upstream]]` entry for the Stratum V1 pool at `addr`, as NDAS's
/// account `user`, with the config's defaults for the rest.
pub fn pool(name: &str, addr: impl std::fmt::Display, user: &str) -> ndas::config::UpstreamConfig {
    ndas::config::UpstreamConfig {
        name: name.into(),
        url: format!("stratum+tcp://{addr}"),
        user: user.into(),
        password: None,
        miners_per_connection: 50,
        max_connections: 2000,
    }
}

/// A `[[route]]` of `weight` to `to` (`node` or an upstream's name).
pub fn route(to: &str, weight: f64) -> ndas::config::RouteConfig {
    ndas::config::RouteConfig {
        to: to.into(),
        weight,
    }
}

/// A node's best block hash as a job's previous-block field holds it.
pub async fn tip(node: &crate::node::RegtestNode) -> [u8; 32] {
    let hash = node.call("getbestblockhash", serde_json::json!([])).await;
    let mut bytes: [u8; 32] = hex::decode(hash.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    bytes.reverse();
    bytes
}

/// The first job `client` is sent on `prev_hash`; panics after `wait`,
/// with `context()` (a pool's log, say).
pub async fn job_on(
    client: &mut ndas_tools::miner::Client,
    prev_hash: [u8; 32],
    wait: Duration,
    context: impl Fn() -> String,
) -> ndas_tools::miner::Work {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let work = client
            .next_job(left)
            .await
            .expect("the connection stays open");
        let Some(work) = work else {
            panic!(
                "no job on {} within {wait:?}; {}",
                hex::encode(prev_hash),
                context()
            )
        };
        if work.prev_hash == prev_hash {
            return work;
        }
    }
}

/// A share of at least the miner's difficulty and `least` on `work`, a
/// block of its chain or not, found off the runtime.
pub async fn share(
    client: &ndas_tools::miner::Client,
    work: &ndas_tools::miner::Work,
    fill: u8,
    least: f64,
    block: bool,
) -> ndas_tools::miner::Share {
    let (work, en1, en2, wanted) = (
        work.clone(),
        client.extranonce1.clone(),
        vec![fill; client.extranonce2_size],
        client.difficulty.max(least),
    );
    tokio::task::spawn_blocking(move || {
        ndas_tools::miner::grind(&work, &en1, &en2, (None, 0), u32::MAX, |s| {
            s.is_block == block && s.difficulty >= wanted
        })
        .expect("a share within 2^32 nonces")
    })
    .await
    .unwrap()
}

/// Waits until `node`'s best block is `hash` (a block a pool submitted);
/// panics after `wait`, with `context()`.
pub async fn wait_for_best(
    node: &crate::node::RegtestNode,
    hash: &str,
    wait: Duration,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + wait;
    loop {
        let best = node.call("getbestblockhash", serde_json::json!([])).await;
        if best.as_str() == Some(hash) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the pool's node's best block is {best}, not {hash}; {}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `config` as the failover tests run it: room in extranonce2 for each
/// miner's slice of a pool's (4 bytes), a hung node known gone in 2 s,
/// and miners moved once no node has served for `bound`.
pub fn for_failover(config: &mut ndas::config::Config, bound: std::time::Duration) {
    config.stratum.extranonce2_size = 4;
    config.node.timeout_seconds = 2.0;
    config.mining.failover_after_seconds = bound.as_secs();
}
