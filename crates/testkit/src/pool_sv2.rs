//! The Stratum Reference Implementation's pool (`pool_sv2` 0.7.0) as a
//! process on 127.0.0.1: a real Stratum V2 pool that is not NDAS, on a
//! Bitcoin Core node of its own, for the SV2 upstream tests (as
//! [`crate::para`] is for Stratum V1).
//!
//! The binary is built once per machine by `scripts/install-pool-sv2.sh`.
//! Each [`PoolSv2`] has a temporary folder for its TOML config and its log
//! (stdout and stderr together: a config error is printed before logging
//! starts), and stops the pool, then its node, by PID when dropped.
//!
//! What 0.7.0 does shapes this wrapper:
//! - It takes templates from `bitcoin-node` over Cap'n Proto IPC (the
//!   node's `<data dir>/signet/node.sock`), and the node hands out none
//!   while it is in initial block download, which a fresh chain is: the
//!   node is started with `-maxtipage` wide enough to count its genesis
//!   block as recent.
//! - It binds its port at once but serves nobody until it has a template:
//!   [`PoolSv2::start`] waits for its "ready" log line ([`READY_LINE`]),
//!   which comes after the bind, not for the port.
//! - A new extended channel's target is the harder of two: the target at
//!   which the client's `nominal_hash_rate` finds [`SHARES_PER_MINUTE`]
//!   shares (`2^256 / (rate * 60 / SHARES_PER_MINUTE)`), and the client's
//!   `max_target`. A client that opens with `nominal_hash_rate = 0` and
//!   `max_target = T` mines at exactly `T`; at this signet's block target
//!   (difficulty about 0.00113), a CPU-friendly `T` is difficulty 1e-6 or
//!   so. Its vardiff, once a minute, may make the target harder than
//!   `max_target` (when shares come faster than [`SHARES_PER_MINUTE`]),
//!   never easier.
//! - `share_batch_size = 1`: every valid share is answered with
//!   `SubmitShares.Success` (and logged), each refusal with
//!   `SubmitShares.Error`.
//! - It closes a channel that has 7,200 shares accepted on one tip
//!   (`shares_per_minute × 600 minutes × 2`, its duplicate-share memory):
//!   a test sending more mines a block ([`PoolSv2::mine_block`]) between.
//!
//! Its config: `src/lib/config.rs` of the crate, and
//! `config-examples/signet/pool-config-bitcoin-core-ipc-example.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tempfile::TempDir;

use super::node::{free_port, RegtestNode};

/// The pool's version, as `scripts/install-pool-sv2.sh` pins it.
pub const VERSION: &str = "0.7.0";

/// Where `scripts/install-pool-sv2.sh` caches it, under `$HOME` (keep in step).
const CACHE_DIR: &str = ".cache/ndas/pool_sv2-0.7.0";

/// How long the pool gets to be ready, or to log a line.
pub const WAIT: Duration = Duration::from_secs(30);

/// The Stratum Reference Implementation's example authority key pair (in
/// every example config of the crate): public, so fine in tests only. A
/// client checks the pool's Noise certificate against the public key.
pub const AUTHORITY_PUBLIC_KEY: &str = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";
const AUTHORITY_SECRET_KEY: &str = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n";

/// The share rate the pool sets a channel's first target for, and its
/// vardiff aims at.
pub const SHARES_PER_MINUTE: f32 = 6.0;

/// What the pool logs once it has a template and a previous block hash
/// (`channel_manager/mod.rs`); before it, connections wait in the backlog.
pub const READY_LINE: &str = "Required template data received, ready to accept connections";

/// What the pool logs for each template its node sends.
pub const TEMPLATE_LINE: &str = "Received: NewTemplate(";

/// What the pool logs for a valid share it answers with `SubmitShares.Success`
/// (`SubmitSharesExtended: SubmitSharesSuccess(channel_id=…, …) ✅`, or
/// `SubmitSharesStandard: …` on a standard channel).
const ACCEPTED_MARK: &str = "✅";

/// What the pool logs for a share that is a block, before submitting it to
/// its node (`SubmitSharesExtended: 💰 Block Found!!! 💰<hash>`); it answers
/// it with `SubmitShares.Success` too, without a ✅ line.
pub const BLOCK_LINE: &str = "Block Found!!!";

/// What the pool logs for each share it refuses (`SubmitSharesError:
/// downstream_id: …, channel_id: …, sequence_number: …, error_code: … ❌`).
pub const REJECTED_LINE: &str = "SubmitSharesError:";

/// The `pool_sv2` binary: `$POOL_SV2`, else where
/// `scripts/install-pool-sv2.sh` puts it (`$POOL_SV2_DIR/bin`, by default
/// under `~/.cache/ndas`). A missing binary fails the test: a test that
/// needs the pool never skips.
pub fn pool_sv2_bin() -> PathBuf {
    let path = match std::env::var_os("POOL_SV2") {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("POOL_SV2_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(CACHE_DIR))
            .join("bin/pool_sv2"),
    };
    assert!(
        path.is_file(),
        "pool_sv2 {VERSION} missing at {}: run scripts/install-pool-sv2.sh",
        path.display()
    );
    path
}

/// The pool's TOML config: listening on `listen`, templates from the
/// signet node whose data directory is `node_dir`, every coinbase paying
/// `OP_TRUE` (a channel whose user identity is not an address; one that is
/// `<address>[.worker]` is paid to that address instead).
pub fn config_text(listen: SocketAddr, node_dir: &std::path::Path) -> String {
    format!(
        r#"authority_public_key = "{AUTHORITY_PUBLIC_KEY}"
authority_secret_key = "{AUTHORITY_SECRET_KEY}"
cert_validity_sec = 3600
listen_address = "{listen}"
coinbase_reward_script = "raw(51)"
server_id = 1
pool_signature = "NDAS test pool"
shares_per_minute = {SHARES_PER_MINUTE:.1}
share_batch_size = 1

[template_provider_type.BitcoinCoreIpc]
version = 31
network = "signet"
data_dir = "{node_dir}"
fee_threshold = 100
min_interval = 5
"#,
        node_dir = node_dir.display(),
    )
}

/// One running `pool_sv2` on its own `OP_TRUE` signet node; the pool, then
/// the node, killed by PID when dropped.
pub struct PoolSv2 {
    child: Child,
    node: RegtestNode,
    address: SocketAddr,
    log: PathBuf,
    _dir: TempDir,
}

impl PoolSv2 {
    /// A signet `bitcoin-node` and the pool on it, once the pool has its
    /// first template. Panics, quoting its log, when it exits first or
    /// [`WAIT`] runs out.
    pub async fn start() -> PoolSv2 {
        // Genesis (2020) within the tip age: the node is out of initial
        // block download at once, and hands the pool templates.
        let node = RegtestNode::start_signet_ipc("51", &["-maxtipage=2000000000".to_owned()]).await;
        let dir = super::temp_dir();
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = dir.path().join("pool.toml");
        std::fs::write(&config, config_text(address, node.data_dir())).unwrap();
        let log = dir.path().join("pool.log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut command = Command::new(pool_sv2_bin());
        command.arg("--config").arg(&config);
        // `POOL__*` variables override the file's keys.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().to_uppercase().starts_with("POOL__") {
                command.env_remove(key);
            }
        }
        let child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start pool_sv2");
        let mut pool = PoolSv2 {
            child,
            node,
            address,
            log,
            _dir: dir,
        };
        // It binds before it logs this (and exits if it cannot). No test
        // connection: one that closes unshaken logs an ERROR line.
        pool.wait_for_log(READY_LINE, 1).await;
        pool
    }

    fn check_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("pool_sv2 exited ({status}); its log:\n{}", self.log());
        }
    }

    /// Where miners (and NDAS's SV2 upstream) connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The pool as an upstream URL: `stratum2+tcp://<address>/<authority key>`.
    pub fn url(&self) -> String {
        format!("stratum2+tcp://{}/{AUTHORITY_PUBLIC_KEY}", self.address)
    }

    /// The pool's node (its height, its blocks, over RPC).
    pub fn node(&self) -> &RegtestNode {
        &self.node
    }

    /// Mines one block on the pool's node (to `OP_TRUE`), a new tip for the
    /// pool to send work on; the node's height then.
    pub async fn mine_block(&self) -> u64 {
        // Core tries a million hashes by default, about one block in five
        // at signet's difficulty: no limit.
        let hashes = self
            .node
            .call("generatetodescriptor", json!([1, "raw(51)", u32::MAX]))
            .await;
        assert_eq!(hashes.as_array().map(Vec::len), Some(1), "{hashes}");
        self.node.height().await
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log lines so far containing `what`.
    pub fn count(&self, what: &str) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains(what))
            .count()
    }

    /// Shares the pool accepted: answered with `SubmitShares.Success`, blocks
    /// included.
    pub fn accepted_shares(&self) -> usize {
        let log = self.log();
        log.lines()
            .filter(|line| line.contains("SubmitShares") && line.contains(ACCEPTED_MARK))
            .count()
            + log.lines().filter(|line| line.contains(BLOCK_LINE)).count()
    }

    /// Shares the pool found to be blocks (and submitted to its node).
    pub fn blocks_found(&self) -> usize {
        self.count(BLOCK_LINE)
    }

    /// Shares the pool refused with `SubmitShares.Error`.
    pub fn rejected_shares(&self) -> usize {
        self.count(REJECTED_LINE)
    }

    /// Waits until `count` log lines contain `what`; the log then. Panics
    /// with the log when the pool exits or after [`WAIT`].
    pub async fn wait_for_log(&mut self, what: &str, count: usize) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.count(what) >= count {
                return self.log();
            }
            self.check_running();
            assert!(
                Instant::now() < deadline,
                "pool_sv2 logged {what:?} fewer than {count} times after {WAIT:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the pool has accepted at least `shares` shares. Panics
    /// with the log after [`WAIT`].
    pub async fn wait_for_accepted(&mut self, shares: usize) {
        let deadline = Instant::now() + WAIT;
        while self.accepted_shares() < shares {
            self.check_running();
            assert!(
                Instant::now() < deadline,
                "pool_sv2 accepted {} shares, not {shares}, after {WAIT:?}; its log:\n{}",
                self.accepted_shares(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PoolSv2 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
