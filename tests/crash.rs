//! A found block is on disk (fdatasync) before `submitblock` is sent: proved,
//! not assumed. `kill -9` alone proves nothing here, since the page cache
//! outlives the process and hands back writes never flushed. So NDAS runs
//! with an `LD_PRELOAD` shim (`tests/preload/synced_lengths.c`) recording the
//! size of each file at every successful fsync/fdatasync; a proxy in front of
//! the real node kills NDAS the instant it sends `submitblock`, before the
//! node sees it; and the journal is then cut back to what was synced, as a
//! power loss would leave it. A restart on that journal must still get the
//! block onto the node. Without the sync before `submitblock` the block's
//! record is cut away and the block is lost, and this test fails.

use ndas_testkit as common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use common::node::free_port;
use common::process::{config_text, config_text_via, exit_of, serve, serve_with_env, wait_for_log};
use common::{ready_miner, temp_dir, RegtestPair};
use ndas::blocks::Journal;
use ndas_tools::miner::grind;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_found_survives_a_power_loss_at_the_moment_it_is_submitted() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    // Transactions in the template: the block's journal record then refers
    // to the template's own record, which must be durable too.
    pair.wallet.send_every_kind(&pair.main).await;
    let dir = temp_dir();
    let shim = build_shim(dir.path());
    // The shim sees paths resolved (readlink), so the prefix is resolved too.
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let data = dir.path().join("data").canonicalize().unwrap();
    let synced = dir.path().join("synced_lengths.tsv");
    let proxy = CrashProxy::start(pair.main.rpc_port).await;

    // First run: through the proxy, with the shim recording every sync.
    let ports = (free_port(), free_port());
    let config = dir.path().join("ndas.toml");
    let text = config_text_via(dir.path(), &pair, proxy.port, &payout, ports);
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("first.log");
    let env = [
        ("LD_PRELOAD", shim.as_os_str()),
        ("SYNCED_LENGTHS_UNDER", data.as_os_str()),
        ("SYNCED_LENGTHS_LOG", synced.as_os_str()),
    ];
    let mut child = serve_with_env(&config, &log, &env);
    proxy.arm(child.0.id());
    wait_for_log(&log, "new job").await;
    let stratum = SocketAddr::from(([127, 0, 0, 1], ports.0));
    let (mut client, work) = ready_miner(stratum, "t/1", "acct.rig").await;
    assert!(!work.branch.is_empty(), "the job carries the transactions");
    let height = pair.main.height().await;
    let en2 = vec![1; client.extranonce2_size];
    let block = grind(&work, &client.extranonce1, &en2, (None, 0), 10_000, |s| {
        s.is_block
    })
    .expect("a block at regtest difficulty");
    let hash = block.hash.to_string();
    // NDAS may be killed before it answers the share: either is fine.
    let _ = client.submit("acct.rig", &block).await;
    let status = exit_of(&mut child).await;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    assert_eq!(proxy.kills(), 1, "the proxy killed NDAS at submitblock");
    let known = pair.main.rpc.call::<Value>("getblockheader", json!([hash]));
    assert!(known.await.is_err(), "the node never got the block");

    // The power loss: every byte not synced is gone.
    let lengths = synced_lengths(&synced);
    let blocks = data.join("blocks");
    // Journal::open fsyncs blocks/: no record of it means no shim.
    assert!(
        lengths.contains_key(&blocks),
        "the shim recorded nothing: was it preloaded? {lengths:?}"
    );
    forget_unsynced(&blocks, &lengths);
    let found_log = blocks.join("found.log");
    let kept = std::fs::metadata(&found_log).unwrap().len();
    assert!(kept > 0, "nothing of found.log was synced");
    let pending = Journal::open(&data).unwrap().pending().unwrap();
    assert!(
        pending.iter().any(|entry| entry.hash == hash),
        "block {hash} was not durable when submitblock went out: lost ({kept} bytes of found.log kept)"
    );

    // Second run, straight to the node, on what the power loss left.
    let ports = (free_port(), free_port());
    let text = config_text(dir.path(), &pair, &payout, ports, 2.5e-10, "/NDAS/", "");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("second.log");
    let _child = serve(&config, &log);
    let resubmitting = "resubmitting journaled block from an earlier run";
    let lines = wait_for_log(&log, resubmitting).await;
    let line = lines
        .iter()
        .find(|l| l["message"] == json!(resubmitting))
        .unwrap();
    assert_eq!(line["hash"], json!(hash), "{line}");
    pair.wait_height(height + 1).await;
    let best = pair.main.call("getbestblockhash", json!([])).await;
    assert_eq!(
        best,
        json!(hash),
        "the node has the block found before the crash"
    );
    wait_for_log(&log, "BLOCK ACCEPTED").await;
}

/// Builds the shim into `dir` with the system's C compiler.
fn build_shim(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/preload/synced_lengths.c");
    let shim = dir.join("synced_lengths.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(&source)
        .arg("-ldl")
        .status()
        .expect("cc (Debian: build-essential) to build the LD_PRELOAD shim");
    assert!(status.success(), "cc could not build {}", source.display());
    shim
}

/// The shim's records: each path's size at its last successful sync.
fn synced_lengths(side_file: &Path) -> HashMap<PathBuf, u64> {
    let text = std::fs::read_to_string(side_file).unwrap_or_default();
    // Later lines replace earlier ones: the last sync is what the disk has.
    text.lines()
        .map(|line| {
            let (path, size) = line.rsplit_once('\t').expect("path\\tsize");
            (PathBuf::from(path), size.parse().expect("a size"))
        })
        .collect()
}

/// A power loss on append-only files: every regular file under `dir`
/// (recursively) is cut back to its size at its last sync, and a file never
/// synced to nothing.
fn forget_unsynced(dir: &Path, synced: &HashMap<PathBuf, u64>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            forget_unsynced(&path, synced);
        } else if meta.is_file() {
            let durable = synced.get(&path).copied().unwrap_or(0).min(meta.len());
            eprintln!(
                "{}: {durable} of {} bytes synced",
                path.display(),
                meta.len()
            );
            let file = std::fs::OpenOptions::new().write(true).open(&path);
            file.unwrap().set_len(durable).unwrap();
        }
    }
}

/// What a request for `submitblock` contains (the method, as JSON).
const SUBMITBLOCK: &[u8] = b"\"submitblock\"";

/// Between NDAS and the node: forwards both ways, and at the first request
/// for `submitblock` kills NDAS instead of forwarding it.
struct CrashProxy {
    port: u16,
    state: Arc<ProxyState>,
}

struct ProxyState {
    /// The PID to kill; 0 (before arming, once killed) forwards everything,
    /// so a PID reused after the kill is never signalled.
    victim: AtomicU32,
    kills: AtomicUsize,
}

impl ProxyState {
    /// Kills the armed process; whether there was one.
    fn kill(&self) -> bool {
        let pid = self.victim.swap(0, Ordering::SeqCst);
        if pid == 0 {
            return false;
        }
        // SAFETY: kill(2) reads no memory; the PID is our own child's, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
        self.kills.fetch_add(1, Ordering::SeqCst);
        true
    }
}

impl CrashProxy {
    async fn start(node_port: u16) -> CrashProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ProxyState {
            victim: AtomicU32::new(0),
            kills: AtomicUsize::new(0),
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, node_port, shared.clone()));
            }
        });
        CrashProxy { port, state }
    }

    fn arm(&self, pid: u32) {
        self.state.victim.store(pid, Ordering::SeqCst);
    }

    fn kills(&self) -> usize {
        self.state.kills.load(Ordering::SeqCst)
    }
}

/// One connection of NDAS's (kept alive, several requests on it): answers
/// copied back as they come, requests scanned as a byte stream.
async fn relay(client: TcpStream, node_port: u16, state: Arc<ProxyState>) {
    let Ok(node) = TcpStream::connect(("127.0.0.1", node_port)).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_node, mut to_node) = node.into_split();
    let answers =
        tokio::spawn(async move { tokio::io::copy(&mut from_node, &mut to_client).await });
    // The last bytes read stay in `seen`, so a name split across two reads is found.
    let (mut buf, mut seen) = (vec![0; 64 << 10], Vec::new());
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        seen.extend_from_slice(&buf[..n]);
        let asked = seen.windows(SUBMITBLOCK.len()).any(|w| w == SUBMITBLOCK);
        // Killed: the request (already incomplete at the node) goes no further.
        if asked && state.kill() {
            break;
        }
        if to_node.write_all(&buf[..n]).await.is_err() {
            break;
        }
        seen.drain(..seen.len().saturating_sub(SUBMITBLOCK.len() - 1));
    }
    answers.abort();
}
