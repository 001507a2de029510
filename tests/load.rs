//! The load generator against NDAS and the real regtest node, small and
//! short: it holds its miners, times answers and sees jobs fan out. Its
//! figures go to BENCHMARKS.md, never into assertions.

use ndas_testkit as common;

use std::time::Duration;

use common::{regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas::sv2::keys::AuthorityKey;
use ndas_tools::load::{run, LoadConfig, LoadError, Mode, Sv2Load};

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
        sv2: None,
    }
}

/// All 8 miners held and answered; at regtest difficulty about half the
/// random nonces are blocks, so the tip moves in the window and every
/// miner (or channel) hears of it.
fn held_answered_and_told_of_tips(report: &ndas_tools::load::Report) {
    assert_eq!(report.connections_held, 8, "{report}");
    assert_eq!(report.connect_failures, 0, "{report}");
    assert!(report.answers >= 10, "{report}");
    assert!(report.accepted > 0, "{report}");
    assert!(report.fanout_ms.count >= 1, "{report}");
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
    let sv2 = |channels_per_connection| Sv2Load {
        authority: [2; 32],
        extended: true,
        channels_per_connection,
    };
    let no_channels = LoadConfig {
        sv2: Some(sv2(0)),
        ..config("127.0.0.1:3333".parse().unwrap())
    };
    assert!(matches!(run(no_channels).await, Err(LoadError::Channels)));
    let ground = LoadConfig {
        sv2: Some(sv2(1)),
        mode: Mode::Shares,
        ..config("127.0.0.1:3333".parse().unwrap())
    };
    assert!(matches!(run(ground).await, Err(LoadError::Sv2Shares)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miners_are_held_answered_and_see_new_jobs() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut ndas = regtest_config(&pair, dir.path(), &payout);
    // Not the generator's own default: it takes the size NDAS subscribes
    // it with (the subscribe answer names `mining.notify` too).
    ndas.stratum.extranonce2_size = 4;
    let running = start_ndas(ndas).await;
    let report = run(config(running.stratum_addr())).await.unwrap();
    held_answered_and_told_of_tips(&report);
    let stats = running.stats();
    assert!(stats.metrics.blocks.found_total.get() >= 1);
    let wrong_size = "ndas_shares_total{port=\"main\",protocol=\"stratum\",reason=\"bad_extranonce2\",result=\"rejected\"}";
    assert_eq!(
        common::metric(running.metrics_addr(), wrong_size).await,
        0.0,
        "{report}"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sv2_channels_standard_and_extended_are_held_answered_and_see_new_tips() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let settings = common::sv2::with_sv2(regtest_config(&pair, dir.path(), &payout), 100);
    let data_dir = settings.data_dir.clone();
    let running = start_ndas(settings).await;
    let target = running.port_addr("sv2").expect("the sv2 port");
    let authority = *AuthorityKey::load_or_create(&data_dir).unwrap().public();
    // Eight firmware-like connections of one standard channel each, then a
    // proxy-like run: eight extended channels over two connections.
    for (extended, per_connection, connections) in [(false, 1, 8), (true, 4, 2)] {
        let load = LoadConfig {
            target,
            sv2: Some(Sv2Load {
                authority,
                extended,
                channels_per_connection: per_connection,
            }),
            ..config(target)
        };
        let report = run(load).await.unwrap();
        held_answered_and_told_of_tips(&report);
        assert_eq!(report.connections, connections, "{report}");
        assert!(report.handshakes_per_second.is_some(), "{report}");
    }
    let stats = running.stats();
    assert!(stats.metrics.blocks.found_total.get() >= 1);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sv2_miners_pinning_another_key_are_counted_as_connect_failures() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let settings = common::sv2::with_sv2(regtest_config(&pair, dir.path(), &payout), 100);
    let running = start_ndas(settings).await;
    let target = running.port_addr("sv2").expect("the sv2 port");
    let stranger = AuthorityKey::load_or_create(temp_dir().path()).unwrap();
    let load = LoadConfig {
        target,
        miners: 2,
        ramp_timeout: Duration::from_secs(5),
        sv2: Some(Sv2Load {
            authority: *stranger.public(),
            extended: false,
            channels_per_connection: 1,
        }),
        ..config(target)
    };
    let report = run(load).await.unwrap();
    assert_eq!(report.connections_held, 0, "{report}");
    assert_eq!(report.connect_failures, 2, "{report}");
    assert!(report.handshakes_per_second.is_none(), "{report}");
    running.shutdown().await;
}
