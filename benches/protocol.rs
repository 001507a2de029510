//! The hashing floor and the protocol's own costs: one SHA-256 compression,
//! parsing a `mining.submit` line, serializing a `mining.notify`, and the
//! coinbase + merkle root of a share on a 3,500-transaction template, and
//! counting an accepted share.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ndas_core::chain::merkle::root_from_branch;
use ndas_core::stratum::notify::{notify, NotifyFields};
use ndas_core::stratum::{Method, Request};
use ndas_core::template::Template;
use ndas_core::work::{Job, JobConfig};
use sha2::digest::generic_array::GenericArray;

fn floor(c: &mut Criterion) {
    let block = GenericArray::clone_from_slice(&[7u8; 64]);
    let mut state = [
        0x6a09e667u32,
        0xbb67ae85,
        0x3c6ef372,
        0xa54ff53a,
        0x510e527f,
        0x9b05688c,
        0x1f83d9ab,
        0x5be0cd19,
    ];
    c.bench_function("sha256_compression", |b| {
        b.iter(|| {
            sha2::compress256(&mut state, std::slice::from_ref(&block));
            black_box(state[0])
        })
    });
}

fn protocol(c: &mut Criterion) {
    let line = r#"{"id":4711,"method":"mining.submit","params":["bc1qexampleaccount.rack12-s19-004","1a2b3c4d5e","0000000000000f2a","6743f1a2","0badf00d","00402000"]}"#;
    c.bench_function("parse_submit_line", |b| {
        b.iter(|| Method::parse(&Request::parse(black_box(line)).unwrap()).unwrap())
    });
    let branch: Vec<String> = (0..12).map(|i| format!("{i:064x}")).collect();
    let coinb1 = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2003e2cc0c0c";
    let coinb2 = "062f4e4441532fffffffff0200f2052a010000001600147af7d2a45dab23c78e3a5846dd4671aab308044d0000000000000000266a24aa21a9ed00000000000000000000000000000000000000000000000000000000000000000000000000";
    c.bench_function("serialize_notify_depth12", |b| {
        b.iter(|| {
            notify(&NotifyFields {
                job_id: "6743f1a200",
                prev_hash: "ab02cd818b9e567ee21793cddef299feb29ad444a41b85b8000008a300000000",
                coinb1,
                coinb2,
                merkle_branch: &branch,
                version: "20000000",
                bits: "17034219",
                ntime: "6743f1a2",
                clean_jobs: true,
            })
        })
    });
}

fn coinbase_and_root(c: &mut Criterion) {
    let fixture = include_str!("../tests/fixtures/core-regtest-gbt-height226-3500tx.json");
    let template = Template::from_json(serde_json::from_str(fixture).unwrap()).unwrap();
    let config = JobConfig {
        payout_script: vec![0x51],
        coinbase_tag: b"/NDAS/".to_vec(),
        extranonce2_size: 8,
        splits: Vec::new(),
    };
    let job = Job::build(
        ndas_core::stratum::method::JobId(1),
        Arc::new(template),
        &config,
    )
    .unwrap();
    let mut en2 = 0u64;
    c.bench_function("coinbase_txid_and_merkle_root_3500", |b| {
        b.iter(|| {
            en2 += 1;
            let txid = job.coinbase.txid(&[9, 0, 0, 1], &en2.to_be_bytes());
            root_from_branch(&txid, &job.branch)
        })
    });
}

/// Counting one accepted share (metrics, pool rate, worker figures): the
/// per-share cost of the stats, with its `port` series resolved once.
fn record_share(c: &mut Criterion) {
    use ndas::session::Event;
    let stats = Arc::new(ndas::stats::Stats::new(Arc::new(
        ndas::metrics::Metrics::new(),
    )));
    let mut connection = ndas::stats::connection::ConnectionStats::open(
        stats.clone(),
        stats.metrics.port("main", 0),
    );
    let worker: Arc<str> = "bc1qexampleaccount.rack12-s19-004".into();
    connection.record(
        &Event::Authorized {
            worker: worker.clone(),
        },
        None,
    );
    let share = Event::Share {
        worker: Some(worker),
        difficulty: 65536.0,
        verdict: Ok(131072.0),
    };
    c.bench_function("record_accepted_share", |b| {
        b.iter(|| connection.record(black_box(&share), None))
    });
}

criterion_group!(benches, floor, protocol, coinbase_and_root, record_share);
criterion_main!(benches);
