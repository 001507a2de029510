//! `docker-compose.yml` run for real: `scripts/compose-stack.sh` brings it
//! up on this machine's engine (podman's Docker API, Debian's
//! docker-compose; images made locally, Grafana left out), after
//! `deploy/compose-init.sh`, as the README says. Then, against the running
//! containers: a miner mines a block through the published stratum port
//! into the Core container; Prometheus's own API reports NDAS up and holds
//! its series; the status page and `/api/*` want `METRICS_TOKEN`; NDAS runs
//! as `NDAS_UID` and reads its `0600` files; a restart keeps the journal
//! and the history on the host; `stop` ends NDAS with its clean-shutdown
//! line; `down` leaves no container behind.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;
use ndas_testkit as common;
use serde_json::Value;

/// The stack's folder and engine; `down` when dropped, whatever happened.
struct Stack {
    dir: PathBuf,
    env: HashMap<String, String>,
    engine: Vec<(String, String)>,
}

impl Stack {
    fn up(dir: &Path) -> Stack {
        // The image around this test build's binary: no release build here.
        let out = Command::new("bash")
            .args(["scripts/compose-stack.sh", "up"])
            .arg(dir)
            .env("NDAS_BIN", env!("CARGO_BIN_EXE_ndas"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut stack = Stack {
            dir: dir.to_owned(),
            env: HashMap::new(),
            engine: stdout
                .lines()
                .filter_map(|l| l.split_once('='))
                .filter(|(k, _)| *k == "DOCKER_HOST" || *k == "CONTAINERS_CONF")
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        assert!(
            out.status.success(),
            "compose-stack.sh up: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stack.env = common::read_env(&dir.join(".env"));
        stack
    }

    /// `docker-compose args…` in the stack's folder.
    fn compose(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .args(args)
            .current_dir(&self.dir)
            .envs(self.engine.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    fn compose_ok(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "docker-compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `bitcoin-cli` in the Core container, with the credentials of `.env`.
    fn cli(&self, call: &[&str]) -> String {
        let user = format!("-rpcuser={}", self.env["BITCOIN_RPC_USER"]);
        let password = format!("-rpcpassword={}", self.env["BITCOIN_RPC_PASSWORD"]);
        let mut args = vec![
            "exec",
            "-T",
            "bitcoind",
            "bitcoin-cli",
            "-regtest",
            &user,
            &password,
        ];
        args.extend_from_slice(call);
        self.compose_ok(&args).trim().to_owned()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args(["scripts/compose-stack.sh", "down"])
            .arg(&self.dir)
            .status();
    }
}

const NDAS_HTTP: &str = "127.0.0.1:9100";
const PROMETHEUS: &str = "127.0.0.1:9090";

/// `GET path` at a published port: its status and body; 0 while nothing
/// answers there (a container starting).
async fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let addr: SocketAddr = addr.parse().unwrap();
    let answer = common::try_http_request(addr, path, headers);
    match tokio::time::timeout(Duration::from_secs(10), answer).await {
        Ok(Some((status, _, body))) => (status, body),
        _ => (0, String::new()),
    }
}

/// Waits until `check` holds, polling; panics with `what` after `within`.
async fn until<F: std::future::Future<Output = Option<T>>, T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_runs_mines_into_core_and_is_watched() {
    let dir = common::temp_dir();
    // A folder of its own: its name is the compose project's.
    let stack = Stack::up(dir.path());
    let token = stack.env["METRICS_TOKEN"].clone();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("operator:{token}"))
    );
    let auth = [("Authorization", basic.as_str())];

    // NDAS is ready once Core in its container gives it a template.
    until(
        "NDAS never became ready",
        Duration::from_secs(60),
        || async { (get(NDAS_HTTP, "/readyz", &[]).await.0 == 200).then_some(()) },
    )
    .await;
    // The status page and the API want the token; with it, they answer.
    assert_eq!(get(NDAS_HTTP, "/", &[]).await.0, 401);
    assert_eq!(get(NDAS_HTTP, "/api/stats", &[]).await.0, 401);
    assert_eq!(get(NDAS_HTTP, "/", &auth).await.0, 200);
    assert_eq!(get(NDAS_HTTP, "/api/stats", &auth).await.0, 200);

    // A miner through the published stratum port finds a block; the Core
    // container takes it.
    let stratum: SocketAddr = "127.0.0.1:3333".parse().unwrap();
    let (mut client, work) = common::ready_miner(stratum, "cpuminer/2.5.1", "acct.rig1").await;
    let block = common::submit_block(&mut client, &work, "acct.rig1", 100).await;
    drop(client);
    let hash = block.hash.to_string();
    until(
        "Core never took the block",
        Duration::from_secs(30),
        || async { (stack.cli(&["getbestblockhash"]) == hash).then_some(()) },
    )
    .await;
    let coinbase: Value = serde_json::from_str(&stack.cli(&["getblock", &hash, "2"])).unwrap();
    assert_eq!(
        coinbase["tx"][0]["vout"][0]["scriptPubKey"]["address"],
        stack.env["PAYOUT_ADDRESS"].as_str(),
        "the block pays .env's PAYOUT_ADDRESS"
    );

    // Prometheus, scraping ndas:9100 on the compose network without the
    // token, has NDAS up and its block.
    until(
        "Prometheus never saw the block",
        Duration::from_secs(60),
        || async {
            let (_, body) = get(
                PROMETHEUS,
                "/api/v1/query?query=ndas_blocks_found_total",
                &[],
            )
            .await;
            let answer: Value = serde_json::from_str(&body).ok()?;
            let value = answer["data"]["result"][0]["value"][1]
                .as_str()?
                .parse::<f64>()
                .ok()?;
            (value >= 1.0).then_some(())
        },
    )
    .await;
    let (_, targets) = get(PROMETHEUS, "/api/v1/targets", &[]).await;
    let targets: Value = serde_json::from_str(&targets).unwrap();
    let ndas = &targets["data"]["activeTargets"][0];
    assert_eq!(
        (ndas["labels"]["instance"].as_str(), ndas["health"].as_str()),
        (Some("ndas:9100"), Some("up")),
        "{targets}"
    );

    // NDAS runs as NDAS_UID and its UTEK files are 0600 on the host.
    let uid = stack.compose_ok(&["exec", "-T", "ndas", "id", "-u"]);
    assert_eq!(uid.trim(), stack.env["NDAS_UID"]);
    use std::os::unix::fs::PermissionsExt;
    for file in ["deploy/utek/utek_v26.conf", "deploy/secrets/database_url"] {
        let mode = std::fs::metadata(stack.dir.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    // ZMQ across the compose network announced the block to NDAS.
    let (_, metrics) = get(NDAS_HTTP, "/metrics", &[]).await;
    let hashblocks = common::sum_series(&metrics, "ndas_zmq_hashblocks_total").unwrap_or(0.0);
    assert!(
        hashblocks >= 1.0,
        "no ZMQ hashblock reached NDAS:\n{metrics}"
    );

    // A restart keeps the journal and the history, on the host.
    let journal = stack.dir.join("data/ndas/blocks/found.log");
    let journaled = std::fs::read(&journal).unwrap();
    assert!(
        journaled.windows(hash.len()).any(|w| w == hash.as_bytes()),
        "the block is in the host's journal"
    );
    stack.compose_ok(&["restart", "ndas"]);
    until("NDAS never came back", Duration::from_secs(60), || async {
        (get(NDAS_HTTP, "/readyz", &[]).await.0 == 200).then_some(())
    })
    .await;
    let (_, blocks) = get(NDAS_HTTP, "/api/history/blocks?scope=replica", &auth).await;
    assert!(
        blocks.contains(&hash),
        "the history after a restart: {blocks}"
    );

    // stop: SIGTERM, and NDAS's clean-shutdown line, once for the restart
    // and once now.
    stack.compose_ok(&["stop", "ndas"]);
    let logs = stack.compose_ok(&["logs", "--no-color", "ndas"]);
    assert_eq!(
        logs.matches("\"message\":\"stopped\"").count(),
        2,
        "a clean shutdown at the restart and at the stop:\n{logs}"
    );
    // Its start (Core not answering yet) was no ZMQ silence.
    assert!(!logs.contains("subscription silent"), "{logs}");
    // down: no container left.
    let project = stack.dir.file_name().unwrap().to_str().unwrap().to_owned();
    stack.compose_ok(&["down", "-v", "--timeout", "30"]);
    let left = Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=com.docker.compose.project={project}"))
        .envs(stack.engine.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "containers left behind"
    );
}
