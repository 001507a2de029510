//! Testnet's 20-minute rule: when no block has come for 20 minutes, the
//! node's template drops to the minimum difficulty at the same tip, and a
//! block must carry exactly the bits its time calls for. No node here can be
//! made to show it on demand (regtest never retargets; testnet blocks cannot
//! be mined on a CPU), so the stand-in node plays the node: the one mock in
//! the suite besides the HTTP 503 answer, for the one thing a real node
//! cannot be made to do.

mod common;

use std::time::Duration;

use common::{endpoint_config, ready_miner, start_ndas, temp_dir};
use ndas::load::standin::{serve, StandIn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_target_at_the_same_tip_goes_to_miners_as_a_new_job() {
    let fixture = include_str!("fixtures/core-regtest-gbt-height121-60tx.json");
    let standin = StandIn::new(serde_json::from_str(fixture).unwrap(), 0x1d00_ffff).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let node = tokio::spawn(serve(listener, standin.clone()));
    let dir = temp_dir();
    let payout = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
    let mut config = endpoint_config((port, "u", "p"), "regtest", dir.path(), payout);
    config.node.poll_interval_ms = 60_000;
    let running = start_ndas(config).await;
    let (mut client, work) = ready_miner(running.stratum_addr(), "t/1", "acct.rig").await;
    assert_eq!(work.bits, 0x1d00_ffff);

    // Twenty minutes without a block: the minimum difficulty, same tip,
    // same transactions. The longpoll does not return for it; the refresh
    // must notice.
    standin.set_bits(0x207f_ffff).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let next = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let job = client
            .next_job(left)
            .await
            .unwrap()
            .expect("a job with the new bits within 30 s");
        if job.bits != work.bits {
            break job;
        }
    };
    assert_eq!(next.bits, 0x207f_ffff);
    assert_eq!(next.prev_hash, work.prev_hash, "at the same tip");
    running.shutdown().await;
    node.abort();
}
