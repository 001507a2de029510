//! Upstream pools that misbehave, with NDAS's node gone and its miners on
//! `mining.when_no_node = "upstream"`. A real pool cannot be made to
//! never answer, flood `set_difficulty` or reject every share, so these are
//! scripted listeners (para, a real pool, is in `upstream.rs` and
//! `upstream_failover.rs`): each is handled with a clear state and
//! reason, the next pool is tried, the shares a pool rejects are counted
//! against the miner who sent them, and when the last usable pool dies the
//! miners are closed once the bound passes, never left on its work longer.

use ndas_testkit as common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};
use common::sv2::{connected, share_answer, with_sv2, Received};
use common::upstream::{upstreams_when, worker as listed_worker};
use common::{metric, ready_miner, regtest_config, start_ndas, temp_dir};
use common::{wait_for_metric, RegtestPair};
use ndas::config::UpstreamConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const BOUND: Duration = Duration::from_secs(3);
/// Past the handshake bound (30 s) of a pool that never answers.
const WAIT: Duration = Duration::from_secs(45);
/// The scripted pool's difficulty, sent after its first job.
const POOL_DIFFICULTY: f64 = 0.000_01;
/// Its previous block: no chain's.
const POOL_PREV: [u8; 32] = [0x5a; 32];

#[derive(Clone, Copy)]
enum Script {
    /// Reads, never answers.
    Silent,
    /// Subscribes and authorizes, then sends `set_difficulty` 100 times.
    FloodsDifficulty,
    /// A pool in every way but one: every share is rejected.
    RejectsEveryShare,
    /// Takes every share, but raises its difficulty fourfold before each
    /// answer (as a pool's vardiff may, between a share and its answer).
    RetargetsBeforeAnswering,
}

struct Scripted {
    addr: std::net::SocketAddr,
    submits: Arc<AtomicUsize>,
    /// Lines the test has every connection send, when it says so.
    push: tokio::sync::broadcast::Sender<Value>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    async fn start(script: Script) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let submits = Arc::new(AtomicUsize::new(0));
        let counted = submits.clone();
        let (push, _) = tokio::sync::broadcast::channel(16);
        let pushed = push.clone();
        let task = tokio::spawn(async move {
            // Aborting this task drops every connection with it.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                connections.spawn(serve(stream, script, counted.clone(), pushed.subscribe()));
            }
        });
        Scripted {
            addr,
            submits,
            push,
            task,
        }
    }

    fn upstream(&self, name: &str) -> UpstreamConfig {
        common::upstream::pool(name, self.addr, "farm.ndas")
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    script: Script,
    submits: Arc<AtomicUsize>,
    mut pushed: tokio::sync::broadcast::Receiver<Value>,
) {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    let send = |value: Value| {
        let mut line = value.to_string().into_bytes();
        line.push(b'\n');
        line
    };
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            Ok(line) = pushed.recv() => {
                if writer.write_all(&send(line)).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let Ok(Some(line)) = line else { return };
        let message: Value = serde_json::from_str(&line).unwrap();
        let id = message["id"].clone();
        let mut out = Vec::new();
        match (script, message["method"].as_str()) {
            (Script::Silent, _) => continue,
            (_, Some("mining.configure")) => out.push(send(json!({"id": id, "result": {
                "version-rolling": true, "version-rolling.mask": "1fffe000"}, "error": null}))),
            (_, Some("mining.subscribe")) => out.push(send(json!({"id": id, "result": [
                [["mining.notify", "s1"]], "a1b2c3d4", 8], "error": null}))),
            (Script::FloodsDifficulty, Some("mining.authorize")) => {
                out.push(send(json!({"id": id, "result": true, "error": null})));
                for i in 0..100 {
                    out.push(send(json!({"id": null, "method": "mining.set_difficulty",
                        "params": [1 + i]})));
                }
            }
            (_, Some("mining.authorize")) => {
                out.push(send(json!({"id": id, "result": true, "error": null})));
                // The job before the difficulty, as some pools send them.
                out.push(send(common::upstream::notify("j1", POOL_PREV)));
                out.push(send(json!({"id": null, "method": "mining.set_difficulty",
                    "params": [POOL_DIFFICULTY]})));
            }
            (Script::RetargetsBeforeAnswering, Some("mining.submit")) => {
                submits.fetch_add(1, Ordering::Relaxed);
                out.push(send(json!({"id": null, "method": "mining.set_difficulty",
                    "params": [4.0 * POOL_DIFFICULTY]})));
                out.push(send(json!({"id": id, "result": true, "error": null})));
            }
            (_, Some("mining.submit")) => {
                submits.fetch_add(1, Ordering::Relaxed);
                out.push(send(json!({"id": id, "result": null,
                    "error": [23, "Low difficulty share", null]})));
            }
            _ => {}
        }
        for line in out {
            if writer.write_all(&line).await.is_err() {
                return;
            }
        }
    }
}

/// A share of at least `wanted` on `work` with extranonce2 `en2`.
fn share_of(
    miner: &ndas_tools::miner::Client,
    work: &ndas_tools::miner::Work,
    en2: &[u8],
    wanted: f64,
) -> ndas_tools::miner::Share {
    ndas_tools::miner::grind(work, &miner.extranonce1, en2, (None, 0), u32::MAX, |s| {
        s.difficulty >= wanted
    })
    .unwrap()
}

/// Waits for the pool's job on the channel, finds a share meeting the
/// pool's difficulty and submits it; NDAS accepts it.
async fn v2_share_to_the_pool(v2: &mut common::sv2::Client) {
    let mut root = None;
    let (channel_id, job_id, version, prev, time, bits) = loop {
        match v2.next(WAIT).await.unwrap() {
            Received::StandardJob {
                job_id,
                merkle_root,
                version,
                ..
            } => root = Some((job_id, merkle_root, version)),
            Received::PrevHash {
                channel_id,
                job_id,
                prev_hash,
                min_ntime,
                nbits,
            } if prev_hash == POOL_PREV => {
                let (named, _, version) = root.expect("the job before its SetNewPrevHash");
                assert_eq!(named, job_id);
                break (channel_id, job_id, version, prev_hash, min_ntime, nbits);
            }
            _ => {}
        }
    };
    let target = ndas_core::chain::Target::from_difficulty(POOL_DIFFICULTY);
    let mut header = Header {
        version: Version::from_consensus(version as i32),
        prev_blockhash: BlockHash::from_byte_array(prev),
        merkle_root: TxMerkleNode::from_byte_array(root.unwrap().1),
        time,
        bits: CompactTarget::from_consensus(bits),
        nonce: 0,
    };
    while !target.is_met_by(&ndas_core::chain::Hash256(
        header.block_hash().to_byte_array(),
    )) {
        header.nonce += 1;
    }
    v2.submit_standard(channel_id, 1, job_id, header.nonce, header.time, version)
        .await
        .unwrap();
    let answer = share_answer(v2, WAIT).await;
    assert!(
        matches!(answer, Received::SubmitSuccess { .. }),
        "{answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_pools_are_refused_with_reasons_rejections_counted_and_a_dead_pool_closes_miners() {
    let silent = Scripted::start(Script::Silent).await;
    let flooder = Scripted::start(Script::FloodsDifficulty).await;
    let rejecter = Scripted::start(Script::RejectsEveryShare).await;
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = with_sv2(regtest_config(&pair, dir.path(), &payout), 8);
    common::upstream::for_failover(&mut config, BOUND);
    config.mining.reconnect_to = Some("backup.example:3334".into());
    config.upstream = vec![
        silent.upstream("silent"),
        flooder.upstream("flooder"),
        rejecter.upstream("rejecter"),
    ];
    let data_dir = config.data_dir.clone();
    let started = Instant::now();
    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    let list = upstreams_when(http, |list| {
        list[1]["state"] == json!("refused") && list[2]["state"] == json!("ready")
    })
    .await;
    assert!(
        list[1]["reason"]
            .as_str()
            .unwrap()
            .contains("floods set_difficulty"),
        "{list:?}"
    );

    let worker = format!("{payout}.rig");
    let (mut miner, _) = ready_miner(running.stratum_addr(), "cgminer/4.12.1", &worker).await;
    // A Stratum V2 firmware's standard channel: NDAS builds its merkle root.
    let mut v2 = connected(running.port_addr("sv2").unwrap(), &data_dir).await;
    v2.open(1, &format!("{worker}.bitaxe"), None).await.unwrap();
    pair.main.signal("TERM");
    // The first pool that has a job: neither the silent one nor the flooder.
    let pooled = loop {
        let work = miner
            .next_job(WAIT)
            .await
            .unwrap()
            .expect("the rejecting pool's job");
        if work.prev_hash == POOL_PREV {
            break work;
        }
    };
    assert!(pooled.clean);
    // Shares meeting the pool's difficulty are sent on; the miner's own
    // answer is NDAS's; the pool's rejections are counted against the
    // miner and the pool.
    let wanted = miner.difficulty.max(POOL_DIFFICULTY);
    assert!(wanted < 1.0);
    for fill in 0..3u8 {
        let en2 = vec![fill; miner.extranonce2_size];
        let share = share_of(&miner, &pooled, &en2, wanted);
        let answer = miner.submit(&worker, &share).await.unwrap();
        assert_eq!(answer["result"], json!(true), "{answer}");
    }
    let rejected = "ndas_upstream_shares_total{upstream=\"rejecter\",verdict=\"rejected\"}";
    wait_for_metric(http, rejected, |n| n == 3.0).await;
    assert_eq!(rejecter.submits.load(Ordering::Relaxed), 3);
    // The SV2 channel mines the pool's job too, and its share goes on.
    v2_share_to_the_pool(&mut v2).await;
    wait_for_metric(http, rejected, |n| n == 4.0).await;

    // The pool's new extranonce1, then its next job: miners get that job
    // as clean, with the new extranonce1 in their coinbase; a share on the
    // job before is stale, and one on the new job goes to the pool.
    rejecter
        .push
        .send(json!({"id": null, "method": "mining.set_extranonce", "params": ["e1e2e3e4", 8]}))
        .unwrap();
    rejecter
        .push
        .send(common::upstream::notify("j2", POOL_PREV))
        .unwrap();
    let renewed = loop {
        let work = miner
            .next_job(WAIT)
            .await
            .unwrap()
            .expect("the pool's next job");
        if work.coinb1.ends_with(&[0xe1, 0xe2, 0xe3, 0xe4]) {
            break work;
        }
    };
    assert!(renewed.clean, "a new extranonce1's job is clean_jobs");
    let en2 = vec![7; miner.extranonce2_size];
    let on_old = share_of(&miner, &pooled, &en2, wanted);
    let answer = miner.submit(&worker, &on_old).await.unwrap();
    assert_eq!(answer["error"][1], json!("Stale share"), "{answer}");
    let on_new = share_of(&miner, &renewed, &en2, wanted);
    let answer = miner.submit(&worker, &on_new).await.unwrap();
    assert_eq!(answer["result"], json!(true), "{answer}");
    wait_for_metric(http, rejected, |n| n == 5.0).await;
    let listed = listed_worker(http, &worker).await;
    assert_eq!(
        listed["upstream"],
        json!({"accepted": 0, "rejected": 4}),
        "{listed}"
    );

    // The silent pool: refused once its handshake bound passes.
    let list = upstreams_when(http, |list| list[0]["state"] == json!("refused")).await;
    assert!(started.elapsed() >= Duration::from_secs(30));
    assert!(
        list[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not ready within"),
        "{list:?}"
    );

    // The last usable pool dies: its miners stay on its last job for the
    // bound (a pool's reconnect must not scatter the farm), then are told
    // where to go and closed, never left on it longer.
    rejecter.task.abort();
    let died = Instant::now();
    let told = common::told_then_closed(&mut miner, WAIT).await;
    assert_eq!(told, Some(json!(["backup.example", "3334", 0])));
    let closed_after = died.elapsed();
    assert!(closed_after >= BOUND, "{closed_after:?}");
    assert!(
        closed_after < BOUND + Duration::from_secs(5),
        "{closed_after:?}"
    );
    assert_eq!(metric(http, "ndas_work_withdrawn").await, 1.0);
    running.shutdown().await;
    drop((silent, flooder));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_is_credited_at_its_job_s_difficulty_not_at_the_pool_s_next() {
    let pool = Scripted::start(Script::RetargetsBeforeAnswering).await;
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    common::upstream::for_failover(&mut config, BOUND);
    config.upstream = vec![pool.upstream("retargets")];
    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    wait_for_metric(http, "ndas_upstream_up{upstream=\"retargets\"}", |n| {
        n == 1.0
    })
    .await;
    let worker = format!("{payout}.rig");
    let (mut miner, _) = ready_miner(running.stratum_addr(), "cgminer/4.12.1", &worker).await;
    pair.main.signal("TERM");
    let pooled = loop {
        let work = miner.next_job(WAIT).await.unwrap().expect("the pool's job");
        if work.prev_hash == POOL_PREV {
            break work;
        }
    };
    // Found at the pool's difficulty, taken once the pool had moved on.
    let share = share_of(
        &miner,
        &pooled,
        &[1; 4],
        miner.difficulty.max(POOL_DIFFICULTY),
    );
    let answer = miner.submit(&worker, &share).await.unwrap();
    assert_eq!(answer["result"], json!(true), "{answer}");
    let accepted = "ndas_upstream_shares_total{upstream=\"retargets\",verdict=\"accepted\"}";
    wait_for_metric(http, accepted, |n| n == 1.0).await;
    let credited = metric(
        http,
        "ndas_upstream_accepted_difficulty_total{upstream=\"retargets\"}",
    )
    .await;
    assert!(
        (credited / POOL_DIFFICULTY - 1.0).abs() < 1e-6,
        "credited {credited}, the job's difficulty was {POOL_DIFFICULTY}"
    );
    assert_eq!(pool.submits.load(Ordering::Relaxed), 1);
    running.shutdown().await;
}
