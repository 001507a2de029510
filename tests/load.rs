//! The load generator against NDAS and the real regtest node, small and
//! short: it holds its miners, times answers and sees jobs fan out. Its
//! figures go to BENCHMARKS.md, never into assertions.

use ndas_testkit as common;

use std::time::Duration;

use common::{regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas_tools::load::{run, LoadConfig, LoadError, Mode};

fn config(target: std::net::SocketAddr) -> LoadConfig {
    LoadConfig {
        target,
        miners: 8,
        rate: 10.0,
        duration: Duration::from_secs(2),
        sources: 2,
        connect_rate: 100.0,
        ramp_timeout: Duration::from_secs(30),
        mode: Mode::Random,
        payout_addresses: 0,
    }
}

#[tokio::test]
async fn only_loopback_targets_and_bounded_runs_are_accepted() {
    let remote = config("10.1.2.3:3333".parse().unwrap());
    assert!(matches!(run(remote).await, Err(LoadError::NotLoopback(_))));
    let huge = LoadConfig {
        miners: 1_000_000,
        ..config("127.0.0.1:3333".parse().unwrap())
    };
    assert!(matches!(run(huge).await, Err(LoadError::TooManyMiners(_))));
    let long = LoadConfig {
        duration: Duration::from_secs(7200),
        ..config("127.0.0.1:3333".parse().unwrap())
    };
    assert!(matches!(run(long).await, Err(LoadError::TooLong(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miners_are_held_answered_and_see_new_jobs() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let running = start_ndas(regtest_config(&pair, dir.path(), &payout)).await;
    let report = run(config(running.stratum_addr())).await.unwrap();
    assert_eq!(report.connections_held, 8, "{report}");
    assert_eq!(report.connect_failures, 0);
    assert!(report.answers >= 10, "{report}");
    assert!(report.accepted > 0, "{report}");
    // At regtest difficulty about half the random nonces are blocks: the tip
    // moves during the window and every miner receives the new jobs.
    assert!(report.fanout_ms.count >= 1, "{report}");
    let stats = running.stats();
    assert!(stats.metrics.blocks.found_total.get() >= 1);
    running.shutdown().await;
}
