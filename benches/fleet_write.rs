//! The fleet history's cost per minute, against a real PostgreSQL (its own
//! cluster, as the tests start one): for a replica with N workers sharing,
//! the time to take their minute from the registry into a batch, the
//! batch's bytes in the queue, the time to write it, and the rows, table
//! bytes and WAL bytes it adds. Three minutes each; the first inserts the
//! hour's rows, the next two add to them.
//!
//! `cargo bench --bench fleet_write` measures 10,000 and 100,000 workers;
//! under `cargo test` it runs 1,000 once, to keep the code working.

use std::sync::Arc;
use std::time::Instant;

use ndas::history::fleet::collect::Collector;
use ndas::history::fleet::db::Db;
use ndas::metrics::Metrics;
use ndas::stats::registry::Joined;
use ndas::stats::Stats;
use ndas_testkit::postgres::Postgres;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if bench { &[10_000, 100_000] } else { &[1_000] };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let pg = Postgres::start().await;
        let db = Db::new(&ndas_core::Secret::new(pg.url()), "bench", 1).unwrap();
        db.migrate().await.unwrap();
        println!("| workers | minute | collect ms | queue bytes | write ms | rows | table bytes | WAL bytes |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
        for &n in sizes {
            minutes(&pg, &db, n).await;
        }
        db.close().await;
    });
}

/// Three minutes of `n` workers, one line each.
async fn minutes(pg: &Postgres, db: &Db, n: usize) {
    let stats = Stats::with_max_workers(Arc::new(Metrics::new()), n * 2);
    let now = Instant::now();
    let workers: Vec<_> = (0..n)
        .map(|i| {
            let name: Arc<str> = format!("cust{:04}.rig{i:06}", i % 1000).into();
            match stats.workers.join(&name, now) {
                Joined::Entry(worker, _) => worker,
                Joined::Full => panic!("the registry holds {n}"),
            }
        })
        .collect();
    let collector = Collector::new(format!("bench-{n}"), 1_800_000_000_000_000);
    let start = ndas_core::clock::unix_now() / 3600 * 3600;
    for m in 0..3u64 {
        // About six shares a minute each: an S21 at 10 s per share.
        for worker in &workers {
            for _ in 0..6 {
                worker.accepted(65_536.0, 100_000.0, now);
            }
        }
        let taken = Instant::now();
        let batch = collector.batch(
            &stats,
            start + 60 * m,
            start + 60 * m + 60,
            (n as i64) << 8 | m as i64,
        );
        let collect = taken.elapsed();
        let queue_bytes = serde_json::to_vec(&batch).unwrap().len();
        let (tables, wal) = sizes(pg);
        let written = Instant::now();
        db.apply(&batch).await.unwrap();
        let write = written.elapsed();
        let (tables_after, wal_after) = sizes(pg);
        println!(
            "| {n} | {} | {:.1} | {queue_bytes} | {:.0} | {} | {} | {} |",
            m + 1,
            collect.as_secs_f64() * 1e3,
            write.as_secs_f64() * 1e3,
            batch.rows(),
            tables_after - tables,
            wal_after - wal,
        );
    }
}

/// The worker tables' bytes (with indexes), and the WAL position.
fn sizes(pg: &Postgres) -> (i64, i64) {
    let row = pg.value(
        "SELECT pg_total_relation_size('worker_minutes') + pg_total_relation_size('worker_hours'), \
         pg_current_wal_lsn() - '0/0'::pg_lsn",
    );
    let (tables, wal) = row.split_once('\t').unwrap();
    (tables.parse().unwrap(), wal.parse::<f64>().unwrap() as i64)
}
