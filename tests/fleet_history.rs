//! The fleet history against a real PostgreSQL (its own cluster, on a free
//! port, stopped by PID) and Bitcoin Core regtest: two replicas writing to
//! one database and each showing the whole fleet; a database outage that
//! loses nothing and doubles nothing; a database NDAS cannot use, named
//! for the operator while mining goes on; miners' text stored as written.

use std::time::{Duration, Instant};

use ndas_testkit as common;

use common::fleet::{fleet_config, page, wait_for, writer_state};
use common::postgres::Postgres;
use common::{http_json, ready_miner, start_ndas, temp_dir, RegtestPair};
use serde_json::json;

/// A worker name a hostile miner may send (no whitespace or control
/// characters, which authorize refuses): quotes, backslashes and SQL.
const HOSTILE_WORKER: &str = r#"acct.o'k";DROP/**/TABLE/**/blocks;--\x"#;
const HOSTILE_AGENT: &str = r#"cgminer/4.9 '); DELETE FROM sessions; -- "\\" $$ %s"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_show_the_whole_fleet_with_exact_totals() {
    let pg = Postgres::start().await;
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let (dir1, dir2) = (temp_dir(), temp_dir());
    let one = start_ndas(fleet_config(&pair, dir1.path(), &payout, 1, &pg.url())).await;
    let two = start_ndas(fleet_config(&pair, dir2.path(), &payout, 2, &pg.url())).await;
    writer_state(one.metrics_addr(), "up").await;
    writer_state(two.metrics_addr(), "up").await;

    // The same worker name on both replicas, one only on each, a hostile one.
    let (mut a, work_a) = ready_miner(one.stratum_addr(), "bitaxe/2.4", "acct.rig1").await;
    common::accepted_shares(&mut a, &work_a, "acct.rig1", 0..5).await;
    let (mut b, work_b) = ready_miner(one.stratum_addr(), HOSTILE_AGENT, HOSTILE_WORKER).await;
    common::accepted_shares(&mut b, &work_b, HOSTILE_WORKER, 0..3).await;
    let (mut c, work_c) = ready_miner(two.stratum_addr(), "cgminer/4.11", "acct.rig1").await;
    common::accepted_shares(&mut c, &work_c, "acct.rig1", 0..4).await;
    let (mut d, work_d) = ready_miner(two.stratum_addr(), "cgminer/4.11", "other.x").await;
    common::accepted_shares(&mut d, &work_d, "other.x", 0..2).await;
    let block = common::submit_block(&mut d, &work_d, "other.x", 100).await;
    pair.wait_height(102).await;

    // Written at the minute's end: 5 + 3 + 4 + 2 shares and the block.
    wait_for(
        &pg,
        "SELECT sum(accepted) FROM worker_minutes",
        "15",
        Duration::from_secs(90),
    )
    .await;
    wait_for(
        &pg,
        &format!("SELECT status FROM blocks WHERE hash = '{}'", block.hash),
        "accepted",
        Duration::from_secs(90),
    )
    .await;
    // A hosting customer's figures, summed across replicas in SQL.
    assert_eq!(
        pg.query("SELECT replica, sum(accepted) FROM worker_hours WHERE worker = 'acct.rig1' GROUP BY replica ORDER BY replica"),
        ["ndas-1\t5", "ndas-2\t4"]
    );
    assert_eq!(
        pg.value("SELECT count(DISTINCT (replica, worker)) FROM worker_hours WHERE split_part(worker, '.', 1) = 'acct'"),
        "3"
    );
    // Stored as written, found by a bound parameter's equal.
    assert_eq!(
        pg.value("SELECT worker FROM worker_minutes WHERE worker LIKE 'acct.o%'"),
        HOSTILE_WORKER
    );
    assert_eq!(
        pg.value("SELECT count(*) FROM blocks"),
        "1",
        "the hostile name dropped nothing"
    );
    assert_eq!(
        pg.value("SELECT user_agent FROM sessions WHERE worker LIKE 'acct.o%'"),
        HOSTILE_AGENT
    );
    assert_eq!(
        pg.query("SELECT replica, worker, protocol FROM sessions WHERE worker NOT LIKE 'acct.o%' ORDER BY replica, worker"),
        ["ndas-1\tacct.rig1\tstratum", "ndas-2\tacct.rig1\tstratum", "ndas-2\tother.x\tstratum"]
    );
    let outputs = pg.query(&format!(
        "SELECT address, value_sats > 0 FROM block_outputs WHERE hash = '{}' ORDER BY position",
        block.hash
    ));
    assert_eq!(outputs, [format!("{payout}\tt")]);

    // Either replica shows every replica's workers and blocks.
    for running in [&one, &two] {
        let http = running.metrics_addr();
        let (status, workers) = http_json(http, "/api/workers?fleet=1").await;
        assert_eq!(status, 200, "{workers}");
        let rows: Vec<(String, String, i64)> = workers["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["name"].as_str().unwrap().to_owned(),
                    w["replica"].as_str().unwrap().to_owned(),
                    w["accepted"].as_i64().unwrap(),
                )
            })
            .collect();
        let mut want = vec![
            ("acct.rig1".to_owned(), "ndas-1".to_owned(), 5),
            ("acct.rig1".to_owned(), "ndas-2".to_owned(), 4),
            (HOSTILE_WORKER.to_owned(), "ndas-1".to_owned(), 3),
            ("other.x".to_owned(), "ndas-2".to_owned(), 3),
        ];
        want.sort();
        assert_eq!(rows, want, "{workers}");
        assert_eq!(workers["total"], json!(4));

        let (_, series) = http_json(http, "/api/history?range=1h").await;
        assert_eq!(series["scope"], json!("fleet"), "{series}");
        let accepted: i64 = series["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["accepted"].as_i64().unwrap())
            .sum();
        assert_eq!(accepted, 15, "{series}");

        let (_, totals) = http_json(http, "/api/history/worker?name=acct.rig1").await;
        assert_eq!(totals["totals"]["accepted"], json!(9), "{totals}");
        assert_eq!(totals["totals"]["replicas"], json!(["ndas-1", "ndas-2"]));
        let hostile = format!(
            "/api/history/worker?name={}",
            form_urlencoded::byte_serialize(HOSTILE_WORKER.as_bytes()).collect::<String>()
        );
        let (_, totals) = http_json(http, &hostile).await;
        assert_eq!(totals["name"], json!(HOSTILE_WORKER), "{totals}");
        assert_eq!(totals["totals"]["accepted"], json!(3), "{totals}");

        let (_, blocks) = http_json(http, "/api/history/blocks").await;
        assert_eq!(
            blocks["blocks"][0]["hash"],
            json!(block.hash.to_string()),
            "{blocks}"
        );
        assert_eq!(blocks["blocks"][0]["replica"], json!("ndas-2"));
        assert_eq!(blocks["blocks"][0]["worker"], json!("other.x"));
        assert_eq!(blocks["blocks"][0]["paid"][0]["address"], json!(payout));

        // A hosting customer across replicas, summed by the database.
        let (_, accounts) = http_json(http, "/api/fleet/accounts").await;
        let acct = &accounts["accounts"][0];
        assert_eq!(acct["account"], json!("acct"), "{accounts}");
        assert_eq!(
            (&acct["workers"], &acct["accepted"]),
            (&json!(2), &json!(12)),
            "{accounts}"
        );
        assert_eq!(acct["replicas"], json!(["ndas-1", "ndas-2"]));
        assert_eq!(accounts["total"], json!(2), "acct and other");

        let (_, fleet) = http_json(http, "/api/fleet").await;
        let reporting: Vec<&str> = fleet["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["reporting"] == json!(true))
            .map(|r| r["replica"].as_str().unwrap())
            .collect();
        assert_eq!(reporting.len(), 2, "{fleet}");
        // The replica's own history is still there for the asking.
        let (_, own) = http_json(http, "/api/history?range=1h&scope=replica").await;
        assert_eq!(own["scope"], json!("replica"), "{own}");
    }
    // The status page in a real browser: both replicas reporting, both
    // replicas' workers, the hostile name as text.
    let dom = page(one.metrics_addr()).await;
    assert!(dom.contains("2 of 2 replicas reported"), "{dom}");
    assert!(dom.contains("Fleet hashrate"));
    for shown in [
        "<td>ndas-1</td>",
        "<td>ndas-2</td>",
        "every replica, last 10 minutes",
        r#"<span class="rig">o'k";DROP/**/TABLE/**/blocks;--\x</span>"#,
    ] {
        assert!(dom.contains(shown), "{shown} not on the page: {dom}");
    }
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_loses_nothing_and_doubles_nothing() {
    let mut pg = Postgres::start().await;
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let (dir1, dir2) = (temp_dir(), temp_dir());
    let config2 = fleet_config(&pair, dir2.path(), &payout, 2, &pg.url());
    let one = start_ndas(fleet_config(&pair, dir1.path(), &payout, 1, &pg.url())).await;
    let two = start_ndas(config2.clone()).await;
    writer_state(one.metrics_addr(), "up").await;
    writer_state(two.metrics_addr(), "up").await;
    let (mut a, work_a) = ready_miner(one.stratum_addr(), "bitaxe/2.4", "acct.a").await;
    common::accepted_shares(&mut a, &work_a, "acct.a", 0..3).await;

    pg.stop();
    let outage = Instant::now();
    common::accepted_shares(&mut a, &work_a, "acct.a", 3..6).await;
    let (mut b, work_b) = ready_miner(two.stratum_addr(), "cgminer/4.11", "acct.b").await;
    common::accepted_shares(&mut b, &work_b, "acct.b", 0..2).await;
    let block = common::submit_block(&mut a, &work_a, "acct.a", 100).await;
    pair.wait_height(102).await;
    writer_state(one.metrics_addr(), "unavailable").await;
    // Replica two stops and starts again while the database is away: what
    // it queued waits in its data_dir.
    drop(b);
    two.shutdown().await;
    let two = start_ndas(config2).await;
    let (_, fleet) = http_json(two.metrics_addr(), "/api/fleet").await;
    assert!(
        fleet["writer"]["queued_batches"].as_u64().unwrap() >= 1,
        "{fleet}"
    );
    let (mut b, work_b) = ready_miner(two.stratum_addr(), "cgminer/4.11", "acct.b").await;
    common::accepted_shares(&mut b, &work_b, "acct.b", 0..1).await;
    let (status, _) = http_json(two.metrics_addr(), "/api/workers?fleet=1").await;
    assert_eq!(status, 503, "no fleet view while the database is away");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(outage.elapsed())).await;

    pg.restart().await;
    // 3 + 3 + the block for acct.a, 2 + 1 for acct.b: each once.
    let sums = "SELECT string_agg(replica || ' ' || worker || ' ' || a, ', ' ORDER BY replica) \
                FROM (SELECT replica, worker, sum(accepted) AS a FROM worker_minutes GROUP BY 1, 2) s";
    wait_for(
        &pg,
        sums,
        "ndas-1 acct.a 7, ndas-2 acct.b 3",
        Duration::from_secs(100),
    )
    .await;
    assert_eq!(
        pg.value("SELECT string_agg(replica || ' ' || worker || ' ' || a, ', ' ORDER BY replica) FROM (SELECT replica, worker, sum(accepted) AS a FROM worker_hours GROUP BY 1, 2) s"),
        "ndas-1 acct.a 7, ndas-2 acct.b 3"
    );
    wait_for(
        &pg,
        &format!(
            "SELECT count(*) || ' ' || min(status) FROM blocks WHERE hash = '{}'",
            block.hash
        ),
        "1 accepted",
        Duration::from_secs(30),
    )
    .await;
    for running in [&one, &two] {
        let fleet = writer_state(running.metrics_addr(), "up").await;
        assert_eq!(fleet["writer"]["dropped_rows"], json!(0), "{fleet}");
    }
    // The sessions of both runs of replica two, each ended or open once.
    assert_eq!(
        pg.value(
            "SELECT count(*) || ' ' || count(DISTINCT run) FROM sessions WHERE replica = 'ndas-2'"
        ),
        "2 2"
    );
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_ndas_cannot_use_is_named_and_mining_goes_on() {
    let pg = Postgres::start().await;
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    // A schema from a newer NDAS: migrated, then one more migration on top.
    {
        let dir = temp_dir();
        let running = start_ndas(fleet_config(&pair, dir.path(), &payout, 1, &pg.url())).await;
        writer_state(running.metrics_addr(), "up").await;
        running.shutdown().await;
        pg.query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (20990101000000, 'from a newer NDAS', true, '\\x00', 0)");
    }
    let wrong = pg.url_as(common::postgres::USER, "not-the-password-7f3a");
    let nowhere = format!(
        "postgres://ndas:pw@127.0.0.1:{}/postgres",
        common::node::free_port()
    );
    let newer = pg.url();
    let cases = [
        (wrong, "password authentication failed"),
        (nowhere, "cannot reach the database"),
        (newer, "newer than this NDAS's 1"),
    ];
    for (url, why) in cases {
        let dir = temp_dir();
        let running = start_ndas(fleet_config(&pair, dir.path(), &payout, 3, &url)).await;
        let http = running.metrics_addr();
        let fleet = writer_state(http, "unavailable").await;
        let error = fleet["writer"]["error"].as_str().unwrap();
        assert!(error.starts_with("history.database_url: "), "{error}");
        assert!(error.contains(why), "{error}");
        assert!(
            !error.contains("not-the-password"),
            "the secret is never shown: {error}"
        );
        assert_eq!(fleet["available"], json!(false), "{fleet}");
        // Mining goes on; the replica's own history answers, saying why
        // the fleet's cannot.
        let (mut client, work) = ready_miner(running.stratum_addr(), "t/1", "acct.m").await;
        common::accepted_shares(&mut client, &work, "acct.m", 0..3).await;
        let (status, series) = http_json(http, "/api/history?range=1h").await;
        assert_eq!(status, 200, "{series}");
        assert_eq!(series["scope"], json!("replica"), "{series}");
        assert!(
            series["fleet_error"]
                .as_str()
                .unwrap()
                .starts_with("fleet view unavailable"),
            "{series}"
        );
        let (_, stats) = http_json(http, "/api/stats").await;
        assert_eq!(stats["fleet"]["state"], json!("unavailable"), "{stats}");
        assert!(common::metric(http, "ndas_history_fleet_up").await == 0.0);
        if why.starts_with("password") {
            let dom = page(http).await;
            assert!(dom.contains("the fleet view is unavailable"), "{dom}");
            assert!(dom.contains("password authentication failed"), "{dom}");
        }
        running.shutdown().await;
    }
    // Nothing was written over the newer schema.
    assert_eq!(
        pg.value("SELECT count(*) FROM replicas WHERE replica = 'ndas-3'"),
        "0"
    );
}
