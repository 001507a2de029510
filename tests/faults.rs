//! The node fails; NDAS and its miners ride it out. Each test asserts what
//! was kept: the connections, the last job, the blocks.

use ndas_testkit as common;

use std::net::SocketAddr;
use std::time::Duration;

use common::node::{free_port, Kind};
use common::process::{
    exit_of, log_lines, served, served_on, served_with, signal, wait_for_log, wait_for_logs, Served,
};
use common::{
    metric, next_tip, ready_miner, regtest_config, start_ndas, submit_block, temp_dir,
    wait_for_metric, wait_for_readyz, RegtestPair,
};
use ndas::blocks::Journal;
use ndas_core::chain::Hash256;
use ndas_tools::miner::{grind, submit_params, Share};
use serde_json::{json, Value};

/// The message of the first log line whose message contains `what`.
fn logged<'a>(lines: &'a [Value], what: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["message"].as_str().is_some_and(|m| m.contains(what)))
        .unwrap_or_else(|| panic!("no log line with {what:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_wait_mode_a_node_gone_past_the_bound_keeps_miners_connected_and_work_resumes() {
    let mut pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    // `wait`: the bound is not used (`disconnect` would close at 2 s).
    config.mining.when_no_node = Some(ndas::config::WhenNoNode::Wait);
    config.mining.failover_after_seconds = 2;
    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    let worker = format!("{payout}.rig");
    let (mut client, work) = ready_miner(running.stratum_addr(), "t/1", &worker).await;

    let height = pair.main.height().await;
    pair.main.stop();
    let body = wait_for_readyz(http, 503).await;
    let reason = body["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("node unreachable"), "{reason}");

    // 20 s without a node (past the retries' longest wait, 10 s): the
    // miner keeps its connection and answers.
    let outage_ends = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < outage_ends {
        let answer = client
            .request("mining.suggest_difficulty", json!([1]))
            .await
            .expect("the connection stays open while the node is away");
        assert_eq!(answer["result"], json!(true), "{answer}");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    assert_eq!(running.stats().metrics.connections_open(), 1);

    // The node returns: readiness recovers and the same connection, never
    // restarted, mines a block the node takes.
    pair.main.restart().await;
    wait_for_readyz(http, 200).await;
    // The job from before the outage is still on the node's tip.
    let block = submit_block(&mut client, &work, &worker, 5).await;
    pair.wait_height(height + 1).await;
    assert_eq!(
        pair.main.call("getbestblockhash", json!([])).await,
        json!(block.hash.to_string())
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_is_followed_again() {
    restarted_node_is_followed(Kind::Core).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_is_followed_again_and_its_zmq_announces_tips_again() {
    // The Bitcoin SV node: the Core built here has no ZMQ.
    restarted_node_is_followed(Kind::Sv).await;
}

/// The node stops and starts again under NDAS: readiness and the node state
/// follow, the same miner connection follows the restarted node's tips and
/// mines a block on it, and (on a node with ZMQ) its hashblock announcements
/// reach NDAS again without a restart of NDAS.
async fn restarted_node_is_followed(kind: Kind) {
    let zmq = format!("tcp://127.0.0.1:{}", free_port());
    let with_zmq = kind == Kind::Sv;
    let (node_args, node_extra) = match with_zmq {
        true => (
            vec![format!("-zmqpubhashblock={zmq}")],
            format!("zmq_hashblock = \"{zmq}\""),
        ),
        false => (Vec::new(), String::new()),
    };
    let mut served = served_on(kind, &node_args, &node_extra).await;
    let (stratum, http) = (served.stratum(), served.http());
    let (mut client, work) = ready_miner(stratum, "t/1", "acct.rig").await;
    served.pair.main.mine(1).await;
    let work = next_tip(&mut client, &work).await;
    let announced = match with_zmq {
        true => wait_for_metric(http, "ndas_zmq_hashblocks_total", |v| v >= 1.0).await,
        false => 0.0,
    };
    if with_zmq {
        assert_eq!(metric(http, "ndas_zmq_up").await, 1.0);
    }

    served.pair.main.stop();
    wait_for_log(&served.log, "node state: down").await;
    wait_for_readyz(http, 503).await;
    served.pair.main.restart().await;
    wait_for_logs(&served.log, "node state: up", 2).await;
    wait_for_readyz(http, 200).await;

    // The same connection follows the restarted node's next tip.
    served.pair.main.mine(1).await;
    let work = next_tip(&mut client, &work).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (mut blocks, mut last_block) = (1, tokio::time::Instant::now());
    while with_zmq && metric(http, "ndas_zmq_hashblocks_total").await <= announced {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no hashblock after the node restarted, {blocks} blocks later"
        );
        // A subscription found silent is made again, after a backoff; a
        // block mined before it is made is not its to announce, so blocks
        // keep coming until one is heard.
        if last_block.elapsed() > Duration::from_secs(2) {
            served.pair.main.mine(1).await;
            (blocks, last_block) = (blocks + 1, tokio::time::Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Up again. A block mined before the new subscription was made can
    // still be found silent meanwhile, and subscribed once more: up only
    // with the next announcement, so blocks keep coming until one is heard.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while with_zmq && metric(http, "ndas_zmq_up").await != 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ZMQ never came back up, {blocks} blocks later"
        );
        if last_block.elapsed() > Duration::from_secs(2) {
            served.pair.main.mine(1).await;
            (blocks, last_block) = (blocks + 1, tokio::time::Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A job on the node's tip now (blocks may have been mined since).
    let mut work = work;
    loop {
        let best = served.pair.main.call("getbestblockhash", json!([])).await;
        if json!(Hash256(work.prev_hash).to_string()) == best {
            break;
        }
        work = next_tip(&mut client, &work).await;
    }
    submit_block(&mut client, &work, "acct.rig", 4).await;
    wait_for_log(&served.log, "BLOCK ACCEPTED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_zmq_publisher_is_noticed_logged_and_subscribed_again() {
    use zeromq::{Socket, SocketSend};
    // A publisher that accepts the subscription and never announces a block:
    // what a real node cannot be made to do on purpose.
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let mut publisher = zeromq::PubSocket::new();
    publisher.bind(&endpoint).await.unwrap();
    let served = served_with(&[], &format!("zmq_hashblock = \"{endpoint}\"")).await;
    let (stratum, http) = (served.stratum(), served.http());
    let (mut client, work) = ready_miner(stratum, "t/1", "acct.rig").await;

    // The tip moves; polling finds it, ZMQ says nothing.
    served.pair.main.mine(1).await;
    let work = next_tip(&mut client, &work).await;
    wait_for_metric(http, "ndas_zmq_silent_total", |v| v >= 1.0).await;
    assert_eq!(metric(http, "ndas_zmq_up").await, 0.0);
    let lines = wait_for_log(&served.log, "ZMQ hashblock subscription silent").await;
    let warning = logged(&lines, "ZMQ hashblock subscription silent");
    assert_eq!(warning["level"], json!("WARN"));
    assert_eq!(warning["tip"], json!(Hash256(work.prev_hash).to_string()));
    // Miners were moved by polling all the same.
    assert_eq!(readyz_status(http).await, 200);

    // The publisher speaks again: NDAS, subscribed anew, hears it.
    served.pair.main.mine(1).await;
    let work = next_tip(&mut client, &work).await;
    // Announced as the node does: the hash in display order, then a sequence number.
    let shown = hex::decode(Hash256(work.prev_hash).to_string()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric(http, "ndas_zmq_up").await != 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never subscribed again"
        );
        let mut message = zeromq::ZmqMessage::from("hashblock");
        message.push_back(shown.clone().into());
        message.push_back(vec![0, 0, 0, 0].into());
        publisher.send(message).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_log(&served.log, "ZMQ hashblock subscription restored").await;
}

async fn readyz_status(http: SocketAddr) -> u16 {
    common::http_get(http, "/readyz").await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_hanging_past_the_timeout_is_reported_and_followed_again() {
    let served = served_with(&[], "timeout_seconds = 2").await;
    let (stratum, http) = (served.stratum(), served.http());
    let (mut client, work) = ready_miner(stratum, "t/1", "acct.rig").await;

    // Stopped, not gone: the node's sockets accept and never answer.
    served.pair.main.signal("STOP");
    let body = wait_for_readyz(http, 503).await;
    let reason = body["reasons"][0].as_str().unwrap();
    assert!(reason.contains("did not answer"), "{reason}");
    assert!(metric(http, "ndas_rpc_errors_total{kind=\"timeout\"}").await >= 1.0);
    let lines = wait_for_log(&served.log, "node state: down").await;
    let down = logged(&lines, "node state: down");
    assert!(
        down["error"].as_str().unwrap().contains("within 2s"),
        "{down}"
    );
    // The miner is still answered while the node hangs.
    let answer = client
        .request("mining.suggest_difficulty", json!([1]))
        .await
        .unwrap();
    assert_eq!(answer["result"], json!(true), "{answer}");

    served.pair.main.signal("CONT");
    wait_for_readyz(http, 200).await;
    wait_for_logs(&served.log, "node state: up", 2).await;
    served.pair.main.mine(1).await;
    next_tip(&mut client, &work).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_rpc_work_queue_is_reported_and_followed_again() {
    // Four RPC threads and a queue of two: six requests at once fill the node.
    let served = served_with(&["-rpcthreads=4".into(), "-rpcworkqueue=2".into()], "").await;
    let (stratum, http) = (served.stratum(), served.http());
    let (mut client, work) = ready_miner(stratum, "t/1", "acct.rig").await;

    // Longpolls hold the node's threads and queue until its tip moves. Six
    // are kept outstanding: any the node refused (NDAS's own calls took the
    // room at that moment) come back at once and are sent again.
    let rules = json!(["segwit"]);
    let template = served
        .pair
        .main
        .call("getblocktemplate", json!([{"rules": rules}]))
        .await;
    let mut longpoll = json!([{"rules": rules, "longpollid": template["longpollid"]}]);
    let mut held: Vec<tokio::task::JoinHandle<Result<Value, String>>> = Vec::new();
    let mut returned = 0;
    // (A fetch that got into the queue before it filled times out instead.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (done, waiting): (Vec<_>, Vec<_>) = held.into_iter().partition(|h| h.is_finished());
        held = waiting;
        for early in done {
            returned += 1;
            // An answer means the template moved on: wait on the new one.
            if let Ok(Ok(template)) = early.await {
                longpoll = json!([{"rules": rules, "longpollid": template["longpollid"]}]);
            }
        }
        while held.len() < 6 {
            let rpc = served.pair.main.rpc.clone();
            let request = longpoll.clone();
            held.push(tokio::spawn(async move {
                rpc.call_with_timeout::<Value>(
                    "getblocktemplate",
                    request,
                    Duration::from_secs(120),
                )
                .await
                .map_err(|e| e.to_string())
            }));
        }
        let (status, body) = common::http_json(http, "/readyz").await;
        let reason = body["reasons"][0].as_str().unwrap_or_default().to_owned();
        // Core answers a full queue with HTTP 503 and a plain-text body.
        if status == 503 && reason.contains("HTTP 503: Work queue depth exceeded") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{status} {body}; {returned} longpolls came back early"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(metric(http, "ndas_rpc_errors_total{kind=\"http\"}").await >= 1.0);
    let lines = wait_for_log(&served.log, "node state: down").await;
    assert_eq!(logged(&lines, "node state: down")["level"], json!("WARN"));

    // A block from the peer moves the tip: the longpolls return, the queue
    // drains, and NDAS follows without a restart.
    served.pair.peer.mine(1).await;
    for longpoll in held {
        let _ = longpoll.await;
    }
    wait_for_readyz(http, 200).await;
    next_tip(&mut client, &work).await;
}

/// One miner with four shares in flight until the server closes the
/// connection: the shares it was told were accepted, and which were blocks.
/// Mines until NDAS closes the connection: the shares accepted, and the
/// blocks the miner was told of, each with its parent (internal order).
async fn mine_until_closed(addr: SocketAddr, worker: String) -> (u64, Vec<(String, [u8; 32])>) {
    let (mut client, mut work) = ready_miner(addr, "t/1", &worker).await;
    let (mut accepted, mut blocks) = (0, Vec::new());
    let mut in_flight: std::collections::HashMap<u64, (Share, [u8; 32])> = Default::default();
    let (mut next_id, mut counter) = (100u64, 0u64);
    loop {
        if let Some(latest) = client.latest_job() {
            work = latest;
        }
        while in_flight.len() < 4 {
            counter += 1;
            let en2 = &counter.to_be_bytes()[8 - client.extranonce2_size..];
            let wanted = client.difficulty;
            let share = grind(&work, &client.extranonce1, en2, (None, 0), 100_000, |s| {
                s.difficulty >= wanted
            })
            .expect("a share at regtest difficulty");
            let line = json!({"id": next_id, "method": "mining.submit", "params": submit_params(&worker, &share)});
            if client
                .send_raw(format!("{line}\n").as_bytes())
                .await
                .is_err()
            {
                return (accepted, blocks);
            }
            in_flight.insert(next_id, (share, work.prev_hash));
            next_id += 1;
        }
        let Ok(Some(message)) = client.read_message().await else {
            return (accepted, blocks);
        };
        let answered = message["id"].as_u64().and_then(|id| in_flight.remove(&id));
        if let Some((share, parent)) = answered {
            let accepted_now = message["result"] == json!(true);
            accepted += u64::from(accepted_now);
            // A block on a job just made stale is still submitted.
            let stale = message["error"][1] == json!("Stale share");
            if share.is_block && (accepted_now || stale) {
                blocks.push((share.hash.to_string(), parent));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_under_load_loses_no_share_accounting_and_no_block() {
    let served = served().await;
    let stratum = served.stratum();
    let Served {
        pair,
        log,
        dir,
        mut child,
        ..
    } = served;
    let miners: Vec<_> = (0..4)
        .map(|n| tokio::spawn(mine_until_closed(stratum, format!("acct.rig{n}"))))
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(child.0.id(), "TERM");
    let (mut accepted, mut blocks) = (0, Vec::new());
    for miner in miners {
        let (shares, found) = miner.await.unwrap();
        accepted += shares;
        blocks.extend(found);
    }
    assert!(exit_of(&mut child).await.success());
    assert!(accepted > 0 && !blocks.is_empty(), "the miners worked");

    // The last log line counts exactly what the miners were told.
    let lines = log_lines(&log);
    let stopped = lines
        .iter()
        .find(|l| l["message"] == json!("stopped"))
        .expect("a stopped line");
    assert_eq!(stopped["shares_accepted"], json!(accepted), "{stopped}");
    assert_eq!(stopped["blocks_found"], json!(blocks.len()), "{stopped}");

    // Every block a miner was told of is on the node or still journaled,
    // or is a later block on a parent that has one there (only the first
    // block of a parent matters: the others are kept, bounded, in case it
    // is rejected, and dropped once a block on the parent is taken).
    let journal = Journal::open(&dir.path().join("data")).unwrap();
    let pending = journal.pending().unwrap();
    assert_eq!(stopped["blocks_unsettled"], json!(pending.len()));
    let pending_parents: Vec<&[u8]> = pending.iter().map(|e| &e.block.head[4..36]).collect();
    for (hash, parent) in &blocks {
        let known = pair
            .main
            .rpc
            .call::<Value>("getblockheader", json!([hash]))
            .await
            .is_ok();
        if known || pending.iter().any(|e| &e.hash == hash) {
            continue;
        }
        let mut shown = *parent;
        shown.reverse();
        let parent_header = pair
            .main
            .rpc
            .call::<Value>("getblockheader", json!([hex::encode(shown)]))
            .await
            .unwrap();
        let followed = parent_header.get("nextblockhash").is_some();
        assert!(
            followed || pending_parents.contains(&&parent[..]),
            "block {hash} was lost: neither it nor a block on its parent is on the node or journaled"
        );
    }
}
