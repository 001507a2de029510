//! The test kit's translator wrapper against the real `translator_sv2`
//! binary, with no SV2 pool to reach: the config it writes parses, the
//! upstream it names is the one tried, and a config error is told apart
//! from a pool that is not there.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ndas_testkit::node::free_port;
use ndas_testkit::translator::{Settings, Translator};

/// A valid authority key (the one in the crate's example configs).
const PUBKEY: &str = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";

/// What 0.6.0 prints when its config does not load (on stderr, before
/// its logging starts).
const CONFIG_ERROR: &str = "Translator proxy config error";

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A variable that would break the config if it reached the translator:
/// the wrapper clears `TPROXY__*`, so it never does.
fn leak_a_bad_override() {
    std::env::set_var("TPROXY__DOWNSTREAM_EXTRANONCE2_SIZE", "not-a-number");
}

#[tokio::test]
async fn no_pool_ends_the_translator_after_its_config_loaded() {
    leak_a_bad_override();
    let upstream = closed_port();
    let started = Instant::now();
    let mut translator = Translator::spawn(&Settings::new(upstream, PUBKEY, "ndas-test", 4));
    let status = translator.exit().await;
    let log = translator.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    // Lines it logs only once the config loaded and logging started, with
    // the upstream the config names: a config that did not parse, or that
    // it read differently, fails here.
    assert!(!log.contains(CONFIG_ERROR), "log:\n{log}");
    assert!(log.contains("Starting Translator Proxy"), "log:\n{log}");
    assert!(
        log.contains(&format!("Trying upstream 1 of 1: {upstream}")),
        "log:\n{log}"
    );
    assert_eq!(
        log.matches("Connection attempt ").count(),
        3,
        "three tries: {log}"
    );
    assert!(log.contains("All upstreams failed"), "log:\n{log}");
    // It never got as far as its SV1 port.
    assert!(!log.contains("listening on"), "log:\n{log}");
    assert!(
        std::net::TcpStream::connect(translator.addr()).is_err(),
        "something listens on the SV1 port"
    );
    // Three tries a second apart, not a hang.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_bad_authority_key_is_a_config_error_not_a_missing_pool() {
    leak_a_bad_override();
    let mut translator = Translator::spawn(&Settings::new(
        closed_port(),
        "not-a-base58-key",
        "ndas-test",
        4,
    ));
    let status = translator.exit().await;
    let log = translator.log();
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    let line = translator.wait_for_log(CONFIG_ERROR).await;
    assert!(line.contains("Base58"), "{line}");
    assert!(!log.contains("Trying upstream"), "log:\n{log}");
}

#[tokio::test]
#[should_panic(expected = "All upstreams failed")]
async fn start_fails_quoting_the_log_when_no_pool_answers() {
    leak_a_bad_override();
    Translator::start(closed_port(), PUBKEY, "ndas-test", 4).await;
}

#[test]
fn the_config_names_every_required_key() {
    let toml = Settings::new(closed_port(), PUBKEY, "acct", 8).toml(3333);
    for key in [
        "downstream_address = \"127.0.0.1\"",
        "downstream_port = 3333",
        "max_supported_version = 2",
        "min_supported_version = 2",
        "downstream_extranonce2_size = 8",
        "aggregate_channels = false",
        "[downstream_difficulty_config]",
        "min_individual_miner_hashrate = 10000000.0",
        "shares_per_minute = 6.0",
        "enable_vardiff = false",
        "job_keepalive_interval_secs = 60",
        "[[upstreams]]",
        "user_identity = \"acct\"",
    ] {
        assert!(toml.contains(key), "{key} missing from:\n{toml}");
    }
}
