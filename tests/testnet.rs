//! Testnet's 20-minute rule: when no block has come for 20 minutes, the
//! node's template drops to the minimum difficulty at the same tip, and a
//! block must carry exactly the bits its time calls for. No node here can be
//! made to show it on demand (regtest never retargets; testnet blocks cannot
//! be mined on a CPU), so the stand-in node plays the node: the one mock in
//! the suite besides the HTTP 503 answer, for the one thing a real node
//! cannot be made to do.

use ndas_testkit as common;

use std::time::Duration;

use common::{endpoint_config, ready_miner, start_ndas, temp_dir};
use ndas_tools::load::standin::{serve, StandIn, TESTNET_MIN_BITS};
use ndas_tools::miner::{grind, Client, Work};
use serde_json::json;

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

/// Submits a share on `work` with its time set to `ntime`; the answer.
async fn submit_at(client: &mut Client, work: &Work, ntime: u32, fill: u8) -> serde_json::Value {
    let mut rolled = work.clone();
    rolled.ntime = ntime;
    let en2 = vec![fill; client.extranonce2_size];
    // At the pool's difficulty: a refusal is then for the time alone.
    let wanted = client.difficulty;
    let share = grind(&rolled, &client.extranonce1, &en2, (None, 0), 10_000, |s| {
        s.difficulty >= wanted
    })
    .unwrap();
    client.submit("acct.rig", &share).await.unwrap()
}

fn unix_now() -> u32 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    u32::try_from(now.unwrap().as_secs()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_share_is_taken_for_a_time_its_jobs_bits_are_wrong_for_and_the_easy_job_comes_at_the_mark(
) {
    let fixture = include_str!("fixtures/core-regtest-gbt-height121-60tx.json");
    // Testnet3's difficulty in 2024: no share here is a block.
    let standin = StandIn::new(serde_json::from_str(fixture).unwrap(), 0x1903_a30c).unwrap();
    // The tip was mined 1,197 s ago: the 20-minute mark is 3 s away.
    let parent_time = unix_now() - 1197;
    let mark = parent_time + 1200;
    standin.follow_testnet_rule(u64::from(parent_time));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let node = tokio::spawn(serve(listener, standin.clone()));
    let dir = temp_dir();
    let payout = "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx";
    let mut config = endpoint_config((port, "u", "p"), "testnet", dir.path(), payout);
    // Neither a tip poll nor a refresh comes within the test: only the
    // watcher's wake at the mark can bring the easy job.
    config.node.poll_interval_ms = 60_000;
    config.mining.job_refresh_seconds = 300;
    let running = start_ndas(config).await;
    let (mut client, normal) = ready_miner(running.stratum_addr(), "t/1", "acct.rig").await;
    assert_eq!(normal.bits, 0x1903_a30c);
    assert!(normal.ntime <= mark);

    // Rolled past the mark, the block would need the minimum-difficulty
    // bits: refused, and the connection stays (an honest miner's roll).
    let past = submit_at(&mut client, &normal, mark + 1, 1).await;
    assert_eq!(past["result"], json!(null), "{past}");
    let why = past["error"][1].as_str().unwrap();
    assert!(why.contains("20-minute"), "{why}");
    let at = submit_at(&mut client, &normal, mark, 2).await;
    assert_eq!(at["result"], json!(true), "{at}");

    // At the mark the easy job goes out, at the same tip.
    let easy = loop {
        let job = client
            .next_job(Duration::from_secs(30))
            .await
            .unwrap()
            .expect("the minimum-difficulty job soon after the mark");
        if job.bits != normal.bits {
            break job;
        }
    };
    assert_eq!(easy.bits, TESTNET_MIN_BITS);
    assert_eq!(easy.prev_hash, normal.prev_hash);
    // Blocks are easy from now: miners drop what they have queued.
    assert!(easy.clean, "the easy job is clean_jobs=true");
    assert!(
        easy.ntime > mark,
        "{} is not past the mark {mark}",
        easy.ntime
    );
    // Its time may not go back before the mark: its bits would be wrong.
    let before = submit_at(&mut client, &easy, mark, 3).await;
    assert_eq!(before["result"], json!(null), "{before}");
    let why = before["error"][1].as_str().unwrap();
    assert!(why.contains("20-minute"), "{why}");
    let on_time = submit_at(&mut client, &easy, easy.ntime, 4).await;
    assert_eq!(on_time["result"], json!(true), "{on_time}");
    // The old job's shares before the mark still count.
    let old = submit_at(&mut client, &normal, mark - 5, 5).await;
    assert_eq!(old["result"], json!(true), "{old}");
    running.shutdown().await;
    node.abort();
}
