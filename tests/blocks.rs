//! A found block is never lost: journaled before submission, submitted when
//! the node comes back, resubmitted after a restart, settled exactly once.

use ndas_testkit as common;

use std::sync::Arc;
use std::time::Duration;

use common::{regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas::blocks::{Journal, JournalEntry, Outcome};
use ndas_core::share::{validate, ShareContext};
use ndas_core::stratum::method::{Extranonce2, JobId, Submit};
use ndas_core::template::Template;
use ndas_core::work::{Extranonce1, Job, JobConfig};
use ndas_core::FoundBlock;
use ndas_tools::miner::hash_share;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

async fn wait_for(mut check: impl FnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_found_while_the_node_is_down_is_submitted_when_it_returns() {
    let mut pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    config.node.timeout_seconds = 1.0;
    let running = start_ndas(config).await;
    let (mut client, work) = common::ready_miner(running.stratum_addr(), "t/1", "w").await;
    let height = pair.main.height().await;

    pair.main.stop();
    let share = common::submit_block(&mut client, &work, "w", 1).await;

    let journal = Journal::open(&dir.path().join("data")).unwrap();
    wait_for(
        || journal.pending().unwrap().len() == 1,
        "the block in the journal",
    )
    .await;
    assert_eq!(journal.pending().unwrap()[0].hash, share.hash.to_string());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        journal.pending().unwrap().len(),
        1,
        "still pending while the node is down"
    );

    pair.main.restart().await;
    pair.wait_height(height + 1).await;
    let best = pair.main.call("getbestblockhash", json!([])).await;
    assert_eq!(best.as_str().unwrap(), share.hash.to_string());
    wait_for(
        // Read while NDAS appends: a read that sees the file grow is retried.
        || journal.pending().is_ok_and(|pending| pending.is_empty()),
        "the block to settle",
    )
    .await;
    assert_eq!(
        journal.settled().unwrap()[0].outcome,
        Some(Outcome::Accepted)
    );
    running.shutdown().await;
}

/// Builds a block on the node's current template without NDAS, as a run that
/// was killed between journaling and submitting would have left it.
async fn journaled_block(pair: &RegtestPair, payout: &str) -> JournalEntry {
    let raw = pair
        .main
        .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .await;
    let template = Template::from_json(raw).unwrap();
    let config = JobConfig {
        payout_script: ndas_core::chain::address::payout_script(
            payout,
            ndas_core::chain::Network::Regtest,
        )
        .unwrap(),
        coinbase_tag: b"/NDAS/".to_vec(),
        extranonce2_size: 8,
        splits: Vec::new(),
    };
    let job = Arc::new(Job::build(JobId(1), Arc::new(template), &config).unwrap());
    let notify: serde_json::Value = serde_json::from_slice(&job.notify(true)).unwrap();
    let work = ndas_tools::miner::parse_notify(&notify["params"]).unwrap();
    let extranonce1 = Extranonce1([1, 2, 3, 4]);
    let share = (0..10_000)
        .map(|n| hash_share(&work, &extranonce1.0, &[0; 8], n, None, 0))
        .find(|s| s.is_block)
        .unwrap();
    let submit = Submit {
        worker: "w".into(),
        job_id: Some(JobId(1)),
        extranonce2: Extranonce2::from_bytes(&[0; 8]).unwrap(),
        ntime: share.ntime,
        nonce: share.nonce,
        version_bits: None,
    };
    let target = ndas_core::chain::Target::MAX;
    let context = ShareContext {
        extranonce1: &extranonce1,
        extranonce2_size: 8,
        version_mask: 0,
        target: &target,
        now_unix: share.ntime,
    };
    let accepted = validate(&job, &submit, &context).unwrap();
    JournalEntry::from_block(&FoundBlock {
        job,
        header: accepted.header,
        hash: accepted.hash,
        extranonce1,
        extranonce2: submit.extranonce2,
        worker: "w".into(),
        received: std::time::Instant::now(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journaled_blocks_are_submitted_at_start_and_settled_once() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let journal = Journal::open(&dir.path().join("data")).unwrap();
    let entry = journaled_block(&pair, &payout).await;
    journal.record(&entry).unwrap();
    let height = pair.main.height().await;

    let running = start_ndas(regtest_config(&pair, dir.path(), &payout)).await;
    pair.wait_height(height + 1).await;
    assert_eq!(
        pair.main
            .call("getbestblockhash", json!([]))
            .await
            .as_str()
            .unwrap(),
        entry.hash
    );
    wait_for(
        // Read while NDAS appends: a read that sees the file grow is retried.
        || journal.pending().is_ok_and(|pending| pending.is_empty()),
        "the block to settle",
    )
    .await;
    running.shutdown().await;
    let settled = journal.settled().unwrap();
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].outcome, Some(Outcome::Accepted));

    // The same block journaled again (a crash after submit, before settle):
    // the node already has it, so it settles as a duplicate, once.
    journal.record(&entry).unwrap();
    let running = start_ndas(regtest_config(&pair, dir.path(), &payout)).await;
    wait_for(
        // Read while NDAS appends: a read that sees the file grow is retried.
        || journal.pending().is_ok_and(|pending| pending.is_empty()),
        "the duplicate to settle",
    )
    .await;
    running.shutdown().await;
    let settled = journal.settled().unwrap();
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].outcome, Some(Outcome::Duplicate));
    assert_eq!(pair.main.height().await, height + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_block_is_settled_as_the_node_judged_it_and_never_retried() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let journal = Journal::open(&dir.path().join("data")).unwrap();
    // Found on a tip the chain has since left two blocks behind.
    let entry = journaled_block(&pair, &payout).await;
    pair.main.mine(2).await;
    let best = pair.main.call("getbestblockhash", json!([])).await;
    journal.record(&entry).unwrap();

    let running = start_ndas(regtest_config(&pair, dir.path(), &payout)).await;
    wait_for(
        // Read while NDAS appends: a read that sees the file grow is retried.
        || journal.pending().is_ok_and(|pending| pending.is_empty()),
        "the stale block to settle",
    )
    .await;
    let metrics = running.stats().metrics.clone();
    // Settled: a second look a while later finds no further attempt.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(metrics.blocks.submitted_total.get(), 1);
    running.shutdown().await;
    let settled = journal.settled().unwrap();
    assert_eq!(settled.len(), 1);
    // The node keeps a block off its best chain as `inconclusive`.
    let outcome = settled[0].outcome.clone().expect("an outcome is recorded");
    assert_eq!(outcome, Outcome::Inconclusive);
    assert_eq!(
        metrics
            .blocks
            .settled_total
            .with_label_values(&[outcome.label()])
            .get(),
        1
    );
    assert_eq!(pair.main.call("getbestblockhash", json!([])).await, best);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_whose_submission_timed_out_but_reached_the_node_is_settled_accepted() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    config.node.timeout_seconds = 1.0;
    let running = start_ndas(config).await;
    let metrics = running.stats().metrics.clone();
    let (mut client, work) = common::ready_miner(running.stratum_addr(), "t/1", "w").await;

    // The node hangs: submitblock reaches its socket and times out, once
    // or more; when it wakes it takes the block from the first request, so
    // the retry hears "duplicate" for a block that is ours.
    pair.main.signal("STOP");
    let share = common::submit_block(&mut client, &work, "w", 1).await;
    wait_for(
        || metrics.blocks.submitted_total.get() >= 2,
        "a submission timed out and was retried",
    )
    .await;
    pair.main.signal("CONT");
    let journal = Journal::open(&dir.path().join("data")).unwrap();
    wait_for(
        // Read while NDAS appends: a read that sees the file grow is retried.
        || journal.pending().is_ok_and(|pending| pending.is_empty()),
        "the block to settle",
    )
    .await;
    assert_eq!(
        pair.main.call("getbestblockhash", json!([])).await,
        json!(share.hash.to_string())
    );
    assert_eq!(
        journal.settled().unwrap()[0].outcome,
        Some(Outcome::Accepted),
        "on the node's chain: accepted, not a duplicate"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_on_a_job_whose_tip_was_just_replaced_is_still_submitted() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let running = start_ndas(regtest_config(&pair, dir.path(), &payout)).await;
    let (mut client, work) = common::ready_miner(running.stratum_addr(), "t/1", "w").await;
    // Another miner's block takes the height first; NDAS moves to it.
    pair.main.mine(1).await;
    common::next_tip(&mut client, &work).await;

    let en2 = vec![7; client.extranonce2_size];
    let block =
        ndas_tools::miner::grind(&work, &client.extranonce1, &en2, (None, 0), 10_000, |s| {
            s.is_block
        })
        .unwrap();
    let answer = client.submit("w", &block).await.unwrap();
    assert_eq!(
        answer["error"],
        json!([21, "Stale share", null]),
        "stale as a share"
    );
    // Submitted all the same: the node has it, beside its tip.
    let journal = Journal::open(&dir.path().join("data")).unwrap();
    wait_for(
        || journal.settled().unwrap().len() == 1,
        "the stale block to be submitted and settled",
    )
    .await;
    let header = pair
        .main
        .call("getblockheader", json!([block.hash.to_string()]))
        .await;
    assert_eq!(
        header["confirmations"],
        json!(-1),
        "kept off the active chain"
    );
    assert_eq!(
        journal.settled().unwrap()[0].outcome,
        Some(Outcome::Inconclusive)
    );
    running.shutdown().await;
}
