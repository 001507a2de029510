//! Batches queued in `data_dir` before a restart, against a real
//! PostgreSQL: one the database took but whose answer was lost is not
//! counted twice; one it refuses loses only its part at fault (a block is
//! kept); and a database a newer NDAS migrates mid-run is let go.

use std::time::{Duration, Instant};

use ndas_testkit as common;

use common::fleet::{fleet_config, writer_state};
use common::postgres::Postgres;
use common::{http_json, start_ndas, temp_dir, RegtestPair};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sent_again_after_a_lost_answer_is_written_once() {
    use ndas::history::fleet::db::{Applied, Db};
    use ndas::history::fleet::rows::{Batch, WorkerMinute};
    let pg = Postgres::start().await;
    let db = Db::new(&ndas_core::Secret::new(pg.url()), "r", 1).unwrap();
    db.migrate().await.unwrap();
    // Twice is the same as once: migrations already applied are skipped.
    db.migrate().await.unwrap();
    let minute = |id: i64, accepted: u64| Batch {
        id,
        replica: "r".into(),
        workers: vec![WorkerMinute {
            worker: "acct.w".into(),
            minute: 1_800_000_000 / 60 * 60,
            accepted,
            accepted_difficulty: accepted as f64,
            best_share: accepted as f64,
            ..WorkerMinute::default()
        }],
        ..Batch::default()
    };
    assert_eq!(db.apply(&minute(1, 5)).await.unwrap(), Applied::Written);
    // The same batch again (its answer was lost in a cut): skipped whole.
    assert_eq!(
        db.apply(&minute(1, 5)).await.unwrap(),
        Applied::AlreadyThere
    );
    // A second part of the same minute (a restart within it) adds.
    assert_eq!(db.apply(&minute(2, 2)).await.unwrap(), Applied::Written);
    assert_eq!(
        pg.query("SELECT accepted, accepted_difficulty, best_share FROM worker_minutes"),
        ["7\t7\t5"]
    );
    assert_eq!(pg.value("SELECT accepted FROM worker_hours"), "7");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_batches_are_sent_once_and_a_refused_one_loses_only_its_bad_part() {
    use ndas::history::fleet::db::Db;
    use ndas::history::fleet::queue::Queue;
    use ndas::history::fleet::rows::{Batch, BlockRow, WorkerMinute};
    let pg = Postgres::start().await;
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let config = fleet_config(&pair, dir.path(), &payout, 1, &pg.url());
    let minute = ndas_core::clock::unix_now() / 60 * 60 - 120;
    let worker = |accepted: u64| WorkerMinute {
        worker: "acct.w".into(),
        minute,
        accepted,
        ..WorkerMinute::default()
    };
    let batch = |id: i64, accepted: u64| Batch {
        id,
        replica: "ndas-1".into(),
        workers: vec![worker(accepted)],
        ..Batch::default()
    };
    // Batch 1 reached the database, but its answer did not reach NDAS (a
    // cut after the commit): it is still queued. Batch 2 would overflow
    // the minute's count (bigint), and carries a block.
    let db = Db::new(&ndas_core::Secret::new(pg.url()), "ndas-1", 1).unwrap();
    db.migrate().await.unwrap();
    db.apply(&batch(1, 5)).await.unwrap();
    db.apply(&batch(9, i64::MAX as u64 - 5)).await.unwrap();
    db.close().await;
    let mut refused = batch(2, 1_000);
    refused.blocks.push(BlockRow {
        hash: "ab".repeat(32),
        height: 7,
        worker: "acct.w".into(),
        found_at: minute,
        status: "accepted".into(),
        at: minute,
        paid: vec![(payout.clone(), 5_000_000_000)],
    });
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    {
        let mut queue = Queue::open(&dir.path().join("data/fleet-queue.redb"), 1 << 30).unwrap();
        queue.push(&batch(1, 5)).unwrap();
        queue.push(&refused).unwrap();
    }

    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    let deadline = Instant::now() + Duration::from_secs(30);
    let fleet = loop {
        let (_, fleet) = http_json(http, "/api/fleet").await;
        if fleet["writer"]["queued_batches"] == json!(0) && fleet["writer"]["state"] == json!("up")
        {
            break fleet;
        }
        assert!(Instant::now() < deadline, "never sent: {fleet}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        fleet["writer"]["dropped_rows"],
        json!(1),
        "the overflowing minute alone: {fleet}"
    );
    assert_eq!(
        pg.value("SELECT accepted FROM worker_minutes WHERE worker = 'acct.w'"),
        (i64::MAX).to_string(),
        "batch 1 counted once, batch 2's minute not at all"
    );
    assert_eq!(
        pg.value("SELECT count(*) FROM applied_batches WHERE batch = 1"),
        "1"
    );
    assert_eq!(
        pg.query("SELECT b.status, o.address, o.value_sats FROM blocks b JOIN block_outputs o USING (hash)"),
        [format!("accepted\t{payout}\t5000000000")],
        "the refused batch's block is kept"
    );
    assert!(common::metric(http, "ndas_history_fleet_dropped_rows_total").await == 1.0);

    // The database is recreated under NDAS (restored empty, its schema
    // dropped): NDAS creates its tables again rather than failing forever.
    pg.query("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    common::fleet::wait_for(
        &pg,
        "SELECT count(*) FROM pg_tables WHERE tablename IN ('worker_minutes', '_sqlx_migrations')",
        "2",
        Duration::from_secs(60),
    )
    .await;
    writer_state(http, "up").await;

    // A newer NDAS migrates the database while this one runs: this one
    // stops writing and reading it within its idle check.
    pg.query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (20990101000000, 'from a newer NDAS', true, '\\x00', 0)");
    let fleet = writer_state(http, "unavailable").await;
    assert!(
        fleet["writer"]["error"]
            .as_str()
            .unwrap()
            .contains("newer than this NDAS's"),
        "{fleet}"
    );
    let (status, _) = http_json(http, "/api/workers?fleet=1").await;
    assert_eq!(status, 503);
    running.shutdown().await;
}
