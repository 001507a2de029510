//! The `ndas serve` process: JSON logs without secrets, SIGHUP reload that
//! says what changed, SIGTERM that reconnects miners and exits 0.

use ndas_testkit as common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::node::free_port;
use common::process::{config_text, exit_of, serve, served, signal, wait_for_log, Served, WAIT};
use common::RegtestPair;
use ndas_tools::miner::grind;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_json_reloads_on_sighup_and_stops_on_sigterm() {
    let served = served().await;
    let stratum = served.stratum();
    let Served {
        pair,
        payout,
        dir,
        ports,
        config,
        log,
        mut child,
    } = served;
    let (mut client, work) = common::ready_miner(stratum, "t/1", "acct.rig").await;
    let block = common::submit_block(&mut client, &work, "acct.rig", 3).await;
    let lines = wait_for_log(&log, "BLOCK ACCEPTED").await;
    let found = lines
        .iter()
        .find(|l| l["message"] == json!("BLOCK FOUND"))
        .expect("BLOCK FOUND logged");
    assert_eq!(found["hash"], json!(block.hash.to_string()));
    assert_eq!(found["level"], json!("INFO"));

    // SIGHUP: new difficulty bounds apply live; a restart-only key is named.
    std::fs::write(
        &config,
        config_text(dir.path(), &pair, &payout, ports, 3.0e-10, "/OTHER/", ""),
    )
    .unwrap();
    signal(child.0.id(), "HUP");
    let lines = wait_for_log(&log, "SIGHUP: difficulty.min").await;
    let said: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["message"].as_str())
        .filter(|m| m.starts_with("SIGHUP"))
        .collect();
    assert!(
        said.iter()
            .any(|m| m.contains("difficulty.min: 0.00000000025 -> 0.0000000003")),
        "{said:?}"
    );
    assert!(
        said.iter()
            .any(|m| m.contains("mining.coinbase_tag changed in the file; restart to apply it")),
        "{said:?}"
    );
    // The log level up, then down again.
    let text = config_text(dir.path(), &pair, &payout, ports, 3.0e-10, "/OTHER/", "");
    for (level, said) in [
        ("debug", "log.level: info -> debug"),
        ("info", "log.level: debug -> info"),
    ] {
        std::fs::write(
            &config,
            text.replace("level = \"info\"", &format!("level = \"{level}\"")),
        )
        .unwrap();
        signal(child.0.id(), "HUP");
        wait_for_log(&log, said).await;
    }
    let deadline = Instant::now() + WAIT;
    while (client.difficulty - 3.0e-10).abs() > 1e-20 {
        assert!(Instant::now() < deadline, "new difficulty never announced");
        tokio::time::timeout(WAIT, client.read_message())
            .await
            .unwrap()
            .unwrap();
    }

    // SIGTERM: miners are told to reconnect and the process exits 0.
    signal(child.0.id(), "TERM");
    common::expect_reconnect(&mut client).await;
    let exit = exit_of(&mut child).await;
    assert!(exit.success(), "{exit:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("\"stopped\""));
    let metadata = std::fs::read_to_string(dir.path().join("metadata.json")).unwrap();
    let token: Value = serde_json::from_str(&metadata).unwrap();
    assert!(
        !text.contains(&pair.main.password),
        "the RPC password reached the log"
    );
    assert!(
        !text.contains(token["factory_token"].as_str().unwrap()),
        "the licence token reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_like_sigterm() {
    // `_pair` and `_dir` keep the node running and its files in place until the end.
    let served = served().await;
    let stratum = served.stratum();
    let Served {
        pair: _pair,
        dir: _dir,
        log,
        mut child,
        ..
    } = served;
    let (mut client, _) = common::ready_miner(stratum, "t/1", "w").await;
    signal(child.0.id(), "INT");
    common::expect_reconnect(&mut client).await;
    assert!(exit_of(&mut child).await.success());
    wait_for_log(&log, "stopped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_every_output_even_at_trace_level() {
    let mut pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = common::temp_dir();
    let ports = (free_port(), free_port());
    let config = dir.path().join("ndas.toml");
    let text = config_text(dir.path(), &pair, &payout, ports, 2.5e-10, "/NDAS/", "")
        .replace("level = \"info\"", "level = \"trace\"");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("ndas.log");
    let mut child = serve(&config, &log);
    wait_for_log(&log, "new job").await;

    let metadata: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("metadata.json")).unwrap())
            .unwrap();
    let token = metadata["factory_token"].as_str().unwrap().to_owned();
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", pair.main.user, pair.main.password))
    };
    let secrets = [pair.main.password.clone(), token, basic];

    // Everything an operator or a miner can see: the HTTP surface with the
    // node up and down, stratum answers, check-config, and the log.
    let mut seen = String::new();
    let stratum = format!("127.0.0.1:{}", ports.0).parse().unwrap();
    let http = format!("127.0.0.1:{}", ports.1).parse().unwrap();
    let (mut client, work) = common::ready_miner(stratum, "t/1", "acct.rig").await;
    let share = grind(
        &work,
        &client.extranonce1,
        &[7; 8],
        (None, 0),
        10_000,
        |s| s.is_block,
    )
    .unwrap();
    seen += &client.submit("acct.rig", &share).await.unwrap().to_string();
    wait_for_log(&log, "BLOCK ACCEPTED").await;
    pair.main.stop();
    wait_for_log(&log, "node state: down").await;
    for path in [
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/stats",
        "/api/workers",
    ] {
        seen += &common::http_get(http, path).await.1;
    }
    let checked = Command::new(env!("CARGO_BIN_EXE_ndas"))
        .args(["check-config", "--config", config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    seen += &String::from_utf8_lossy(&checked.stdout);
    seen += &String::from_utf8_lossy(&checked.stderr);
    signal(child.0.id(), "TERM");
    assert!(exit_of(&mut child).await.success());
    seen += &std::fs::read_to_string(&log).unwrap();
    assert!(
        seen.contains("node unreachable") && seen.contains("submitblock"),
        "the node-down errors and the RPC traces were in what was checked"
    );
    for secret in &secrets {
        assert!(
            !seen.contains(secret.as_str()),
            "a secret reached the output"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_journaled_before_kill_9_is_submitted_on_the_next_start() {
    let served = served().await;
    let stratum = served.stratum();
    let Served {
        mut pair,
        dir,
        config,
        mut child,
        ..
    } = served;
    let (mut client, work) = common::ready_miner(stratum, "t/1", "acct.rig").await;
    let height = pair.main.height().await;

    // The node is gone, so the block cannot be submitted; then NDAS is killed.
    pair.main.stop();
    let block = common::submit_block(&mut client, &work, "acct.rig", 9).await;
    let journal = ndas::blocks::Journal::open(&dir.path().join("data")).unwrap();
    let deadline = Instant::now() + WAIT;
    // Read while NDAS appends: a read that sees the file grow is retried.
    while !journal.pending().is_ok_and(|pending| !pending.is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the block never reached the journal"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.0.kill().unwrap(); // SIGKILL: no shutdown, no flush
    child.0.wait().unwrap();

    pair.main.restart().await;
    let log_again = dir.path().join("ndas-again.log");
    let _again = serve(&config, &log_again);
    wait_for_log(&log_again, "BLOCK ACCEPTED").await;
    pair.wait_height(height + 1).await;
    assert_eq!(
        pair.main.call("getbestblockhash", json!([])).await,
        json!(block.hash.to_string())
    );
    assert!(journal.pending().unwrap().is_empty());
    let settled = journal.settled().unwrap();
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].hash, block.hash.to_string());
}
