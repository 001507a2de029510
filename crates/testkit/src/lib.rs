//! The integration tests' kit: real regtest nodes (Bitcoin Core, the
//! Bitcoin SV node for ZMQ) started on free ports and stopped by PID, a
//! wallet that funds and signs on them, NDAS started in-process against
//! them in UTEK mode or as the `ndas` binary, the CPU miner, and the
//! Stratum Reference Implementation's SV1 -> SV2 translator and SV2 pool.

pub mod browser;
pub mod fleet;
pub mod node;
pub mod para;
pub mod pool_sv2;
pub mod postgres;
pub mod process;
pub mod sv2;
pub mod translator;
pub mod upstream;
pub mod wallet;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use ndas::config::Config;
use tempfile::TempDir;

pub use node::RegtestPair;

/// Writes `metadata.json` and `utek_v26.conf` for `node` into `dir`.
pub fn write_utek_files(
    dir: &Path,
    rpc_port: u16,
    user: &str,
    password: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let licence = "3f2c8a9e-1b7d-4c6e-9a51-0d2e7f4b8c13";
    let token = base64::engine::general_purpose::STANDARD
        .encode(serde_json::json!({"license": licence, "version": "26.0"}).to_string());
    let metadata = dir.join("metadata.json");
    std::fs::write(
        &metadata,
        serde_json::json!({"license_uuid": licence, "factory_token": token}).to_string(),
    )
    .unwrap();
    let conf = dir.join("utek_v26.conf");
    std::fs::write(&conf, format!("# test node\nrpcuser={user}\nrpcpassword={password}\nrpcport={rpc_port}\nrpcconnect=127.0.0.1\n")).unwrap();
    (metadata, conf)
}

/// A regtest config for NDAS against `pair`, paying `payout`.
pub fn regtest_config(pair: &RegtestPair, dir: &Path, payout: &str) -> Config {
    node_config(&pair.main, "regtest", dir, payout)
}

/// A config for NDAS against `node` on `network`, paying `payout`.
pub fn node_config(node: &node::RegtestNode, network: &str, dir: &Path, payout: &str) -> Config {
    endpoint_config(
        (node.rpc_port, &node.user, &node.password),
        network,
        dir,
        payout,
    )
}

/// A config for NDAS against the node on 127.0.0.1:`port` with `user` and `password`.
pub fn endpoint_config(
    (port, user, password): (u16, &str, &str),
    network: &str,
    dir: &Path,
    payout: &str,
) -> Config {
    let (metadata, conf) = write_utek_files(dir, port, user, password);
    let toml = format!(
        r#"
network = "{network}"
instance_id = 9
data_dir = "{data}"
[stratum]
listen = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
requests_per_second = 1000
[difficulty]
start = 2.5e-10
min = 2.5e-10
max = 2.5e-10
target_share_seconds = 5
[mining]
payout_address = "{payout}"
job_refresh_seconds = 1
[node]
backend = "utek"
utek_metadata = "{metadata}"
utek_conf = "{conf}"
poll_interval_ms = 100
timeout_seconds = 5
"#,
        data = dir.join("data").display(),
        metadata = metadata.display(),
        conf = conf.display(),
    );
    Config::from_toml(&toml).expect("test config")
}

/// NDAS on `pair.main` (UTEK) with `pair.peer` as its backup (plain RPC).
pub fn two_node_config(pair: &RegtestPair, dir: &std::path::Path, payout: &str) -> Config {
    let mut config = regtest_config(pair, dir, payout);
    config.node.backup.push(ndas::config::NodeConfig {
        name: "backup".into(),
        backend: ndas::config::Backend::Rpc,
        url: Some(format!("http://127.0.0.1:{}", pair.peer.rpc_port)),
        user: Some(pair.peer.user.clone()),
        password: Some(ndas_core::Secret::new(pair.peer.password.clone())),
        poll_interval_ms: 100,
        timeout_seconds: 5.0,
        ..ndas::config::NodeConfig::default()
    });
    config
}

/// Starts NDAS and waits until it serves a job.
pub async fn start_ndas(config: Config) -> ndas::Running {
    let running = ndas::start(config).await.expect("NDAS starts");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !running
        .stats()
        .node_up
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "NDAS never got a template"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running
}

/// A temporary folder for one test.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("ndas-test-")
        .tempdir()
        .unwrap()
}

/// `GET path` on `addr`; the status code and body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http_request(addr, path, &[]).await;
    (status, body)
}

/// `GET path` with `headers`: the status, head and body. Panics when no
/// HTTP answer comes ([`try_http_request`] says none instead).
pub async fn http_request(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    try_http_request(addr, path, headers)
        .await
        .unwrap_or_else(|| panic!("no HTTP answer from {addr} to GET {path}"))
}

/// [`http_request`], or none while nothing answers there (a port not yet
/// listening, a forwarder that accepts and closes).
pub async fn try_http_request(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    let answer = String::from_utf8(answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_owned(), body.to_owned()))
}

/// `GET path` answered with JSON.
pub async fn http_json(addr: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_get(addr, path).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

/// A series as written, `name{a="1",b="2"}`: its name and labels.
fn parse_series(series: &str) -> (&str, Vec<(&str, &str)>) {
    let series = series.trim();
    let Some((name, labels)) = series.split_once('{') else {
        return (series, Vec::new());
    };
    let labels = labels.trim_end_matches('}');
    let pairs = labels
        .split("\",")
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once("=\"")?;
            Some((key, value.trim_end_matches('"')))
        })
        .collect();
    (name, pairs)
}

/// The sum of every series in the exposition `text` named as `series` is
/// and carrying at least its labels: `ndas_shares_total{result="accepted"}`
/// adds up every port's. None when no series matches.
pub fn sum_series(text: &str, series: &str) -> Option<f64> {
    let (name, wanted) = parse_series(series);
    let mut found = None;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((exposed, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (exposed_name, labels) = parse_series(exposed);
        if exposed_name != name || !wanted.iter().all(|pair| labels.contains(pair)) {
            continue;
        }
        let value: f64 = value.parse().unwrap();
        found = Some(found.unwrap_or(0.0) + value);
    }
    found
}

/// The value of the series `series` on `/metrics`, summed over the labels
/// it does not name (e.g. every `port`).
pub async fn metric(addr: std::net::SocketAddr, series: &str) -> f64 {
    let (_, text) = http_get(addr, "/metrics").await;
    sum_series(&text, series).unwrap_or_else(|| panic!("no series {series} on /metrics"))
}

/// Polls `/metrics` until `series` satisfies `check`; its value.
pub async fn wait_for_metric(
    addr: std::net::SocketAddr,
    series: &str,
    check: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let value = metric(addr, series).await;
        if check(value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} stayed at {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `/readyz` on `addr` until it answers `status`; its body.
pub async fn wait_for_readyz(addr: std::net::SocketAddr, status: u16) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (now, body) = http_json(addr, "/readyz").await;
        if now == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never answered {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TCP connection to `addr` from the local address `source` (127.0.0.N:
/// another address to the server's per-address bounds).
pub async fn connect_from(source: [u8; 4], addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    let local = std::net::SocketAddr::new(std::net::IpAddr::from(source), 0);
    socket.bind(local).unwrap();
    socket.connect(addr).await.unwrap()
}

/// A miner subscribed as `agent`, authorized as `worker`, with its first job.
pub async fn ready_miner(
    addr: std::net::SocketAddr,
    agent: &str,
    worker: &str,
) -> (ndas_tools::miner::Client, ndas_tools::miner::Work) {
    let mut client = ndas_tools::miner::Client::connect(addr).await.unwrap();
    client.subscribe(agent).await.unwrap();
    let authorized = client.authorize(worker).await.unwrap();
    assert_eq!(
        authorized["result"],
        serde_json::json!(true),
        "{authorized}"
    );
    let work = client
        .next_job(Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a job after authorize");
    (client, work)
}

/// Reads until the server closes the connection; the params of the last
/// `client.reconnect` it sent first, if any. Panics when it is still open
/// after `wait` of silence.
pub async fn told_then_closed(
    client: &mut ndas_tools::miner::Client,
    wait: Duration,
) -> Option<serde_json::Value> {
    let mut told = None;
    loop {
        match tokio::time::timeout(wait, client.read_message()).await {
            Ok(Ok(Some(message))) if message["method"] == "client.reconnect" => {
                told = Some(message["params"].clone());
            }
            Ok(Ok(Some(_))) => {}
            Ok(_) => return told,
            Err(_) => panic!("still open after {wait:?} of silence"),
        }
    }
}

/// Reads until the server sends `client.reconnect`; panics if it closes first.
pub async fn expect_reconnect(client: &mut ndas_tools::miner::Client) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), client.read_message())
            .await
            .expect("an answer within 30 s")
            .expect("a readable line");
        match message {
            Some(message) if message["method"] == serde_json::json!("client.reconnect") => return,
            Some(_) => continue,
            None => panic!("the connection closed without client.reconnect"),
        }
    }
}

/// Grinds a block on `work` (extranonce2 filled with `fill`), submits it as
/// `worker` and asserts the server took it; the block's share.
pub async fn submit_block(
    client: &mut ndas_tools::miner::Client,
    work: &ndas_tools::miner::Work,
    worker: &str,
    fill: u8,
) -> ndas_tools::miner::Share {
    let en2 = vec![fill; client.extranonce2_size];
    let block = ndas_tools::miner::grind(work, &client.extranonce1, &en2, (None, 0), 10_000, |s| {
        s.is_block
    })
    .expect("a block at regtest difficulty");
    let answer = client.submit(worker, &block).await.unwrap();
    assert_eq!(answer["result"], serde_json::json!(true), "{answer}");
    block
}

/// Accepted shares that are not blocks, one per extranonce2 fill in
/// `fills`, as `worker`; panics on any refusal.
pub async fn accepted_shares(
    client: &mut ndas_tools::miner::Client,
    work: &ndas_tools::miner::Work,
    worker: &str,
    fills: std::ops::Range<u8>,
) {
    for fill in fills {
        let en2 = vec![fill; client.extranonce2_size];
        let wanted = client.difficulty;
        let share =
            ndas_tools::miner::grind(work, &client.extranonce1, &en2, (None, 0), 1000, |s| {
                s.difficulty >= wanted && !s.is_block
            })
            .expect("a share at regtest difficulty");
        let answer = client.submit(worker, &share).await.unwrap();
        assert_eq!(answer["result"], serde_json::json!(true), "{answer}");
    }
}

/// Reads until a job on a new previous block arrives; that job.
pub async fn next_tip(
    client: &mut ndas_tools::miner::Client,
    after: &ndas_tools::miner::Work,
) -> ndas_tools::miner::Work {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let work = client
            .next_job(left)
            .await
            .expect("the connection stays open")
            .expect("a job on the new tip within 30 s");
        if work.prev_hash != after.prev_hash {
            return work;
        }
    }
}

/// `first` if it carries the mempool's transactions (a merkle branch of
/// `want` steps or more), else the first job after it that does.
pub async fn job_with_transactions(
    client: &mut ndas_tools::miner::Client,
    first: Option<ndas_tools::miner::Work>,
    want: usize,
) -> ndas_tools::miner::Work {
    if let Some(work) = first.filter(|work| work.branch.len() >= want) {
        return work;
    }
    let wait = Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let job = client.next_job(wait).await.unwrap().expect("a job");
        if job.branch.len() >= want {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no job with transactions"
        );
    }
}

/// Runs the script in a fresh copy of `deploy/`; the `.env` it wrote.
pub fn compose_init() -> (TempDir, std::collections::HashMap<String, String>) {
    let dir = temp_dir();
    std::fs::create_dir_all(dir.path().join("deploy")).unwrap();
    std::fs::copy(
        "deploy/compose-init.sh",
        dir.path().join("deploy/compose-init.sh"),
    )
    .unwrap();
    let status = std::process::Command::new("bash")
        .arg("deploy/compose-init.sh")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let env = read_env(&dir.path().join(".env"));
    (dir, env)
}

/// The variables of a Compose `.env` file (quotes around a value dropped).
pub fn read_env(path: &Path) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}
