//! para 0.6.0's pool (`para pool`, the Parasite pool) as a process on
//! 127.0.0.1: a real Stratum V1 pool that is not NDAS, on a Bitcoin Core
//! node of its own, for the upstream tests.
//!
//! The binary is built once per machine by `scripts/install-para.sh`. Each
//! [`ParaPool`] has a temporary folder for its store and its log, and is
//! stopped by PID when dropped. What 0.6.0 asks of its node and its miners
//! shapes this wrapper: the node must publish `hashblock` over ZMQ at the
//! very address para is given ([`ParaNode`] starts one so), a miner's name
//! is `<address of the node's chain>.<worker>`, and the HTTP API tells a
//! test what each address's workers had accepted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::node::{free_port, RegtestNode};

/// para's version, as `scripts/install-para.sh` pins it.
pub const VERSION: &str = "0.6.0";

/// Where `scripts/install-para.sh` caches it, under `$HOME` (keep in step).
const CACHE_DIR: &str = ".cache/ndas/para-0.6.0";

/// How long para gets to listen, or to show a share.
pub const WAIT: Duration = Duration::from_secs(30);

/// The `para` binary: `$PARA`, else where `scripts/install-para.sh` puts it
/// (`$PARA_DIR/bin`, by default under `~/.cache/ndas`). A missing binary
/// fails the test: a test that needs the pool never skips.
pub fn para_bin() -> PathBuf {
    let path = match std::env::var_os("PARA") {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("PARA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(CACHE_DIR))
            .join("bin/para"),
    };
    assert!(
        path.is_file(),
        "para {VERSION} missing at {}: run scripts/install-para.sh",
        path.display()
    );
    path
}

/// Bitcoin Core on a private `OP_TRUE` signet publishing `hashblock` over
/// ZMQ, as para requires of its node.
pub struct ParaNode {
    pub node: RegtestNode,
    /// The ZMQ address, exactly as the node was given it.
    pub zmq: String,
}

impl ParaNode {
    pub async fn start() -> ParaNode {
        let zmq = format!("tcp://127.0.0.1:{}", free_port());
        let node = RegtestNode::start_signet_args("51", &[format!("-zmqpubhashblock={zmq}")]).await;
        ParaNode { node, zmq }
    }
}

/// One running `para pool`, killed by PID when dropped.
pub struct ParaPool {
    child: Child,
    stratum: SocketAddr,
    http: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
}

impl ParaPool {
    /// A pool on `node` whose miners start at `start_diff` (vardiff from
    /// there), once its stratum port accepts connections. Panics, quoting
    /// its log, when it exits first or [`WAIT`] runs out.
    pub async fn start(node: &ParaNode, start_diff: f64) -> ParaPool {
        ParaPool::start_with(node, start_diff, &[]).await
    }

    /// [`ParaPool::start`] with more of `para pool`'s flags (e.g.
    /// `--enonce2-size 4`).
    pub async fn start_with(node: &ParaNode, start_diff: f64, extra: &[&str]) -> ParaPool {
        let dir = super::temp_dir();
        let stratum = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = dir.path().join("para.log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(para_bin())
            .arg("pool")
            .args(["--chain", "signet", "--address", "127.0.0.1"])
            .args(["--port", &stratum.port().to_string()])
            .args(["--http-port", &http.port().to_string()])
            .args(["--bitcoin-rpc-port", &node.node.rpc_port.to_string()])
            .args(["--bitcoin-rpc-username", &node.node.user])
            .args(["--bitcoin-rpc-password", &node.node.password])
            .args(["--zmq-block-notifications", &node.zmq])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--start-diff", &start_diff.to_string()])
            // Its bouncer drops a miner without an accepted share for 10
            // minutes: a test's upstream connection may wait longer.
            .arg("--disable-bouncer")
            .args(extra)
            // Logs to stderr only with RUST_LOG; without, a progress
            // display goes to stdout.
            .env("RUST_LOG", "info")
            .env_remove("PARA_INTEGRATION_TEST")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start para");
        let mut pool = ParaPool {
            child,
            stratum,
            http,
            log,
            _dir: dir,
        };
        pool.ready().await;
        pool
    }

    async fn ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "para exited ({status}) before listening; its log:\n{}",
                    self.log()
                );
            }
            if tokio::net::TcpStream::connect(self.stratum).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "para not listening on {} after {WAIT:?}; its log:\n{}",
                self.stratum,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The Stratum V1 address miners (and NDAS's upstream) connect to.
    pub fn stratum(&self) -> SocketAddr {
        self.stratum
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/pool/user/<address>`: the address's workers, sessions and
    /// share counts as para keeps them (`Null` when para has none).
    pub async fn user(&self, address: &str) -> Value {
        // Not found is a plain-text 404.
        let (status, body) = super::http_get(self.http, &format!("/api/pool/user/{address}")).await;
        match status {
            200 => serde_json::from_str(&body).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// Waits until para counts at least `shares` accepted shares for
    /// `address`; its user record then. Panics with the log after [`WAIT`].
    pub async fn wait_for_accepted(&self, address: &str, shares: u64) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let user = self.user(address).await;
            if user["stats"]["accepted_shares"].as_u64().unwrap_or(0) >= shares {
                return user;
            }
            assert!(
                Instant::now() < deadline,
                "para counted fewer than {shares} accepted shares for {address} after {WAIT:?}: {user}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ParaPool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
