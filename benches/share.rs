//! Share validation and block assembly on Bitcoin Core's templates:
//! 0, 60 and 3,500 transactions (merkle depth 0, 6 and 12).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndas_core::chain::Target;
use ndas_core::share::{validate, ShareContext};
use ndas_core::stratum::method::{Extranonce2, JobId, Submit};
use ndas_core::template::Template;
use ndas_core::work::{Extranonce1, Job, JobConfig};
use ndas_core::FoundBlock;
use serde_json::Value;

fn template(fixture: &str, keep: usize) -> Template {
    let mut raw: Value = serde_json::from_str(fixture).unwrap();
    raw["transactions"].as_array_mut().unwrap().truncate(keep);
    // Dropping transactions breaks the node's commitment; let NDAS recompute it.
    raw.as_object_mut()
        .unwrap()
        .remove("default_witness_commitment");
    Template::from_json(raw).unwrap()
}

fn job(template: Template) -> Arc<Job> {
    let config = JobConfig {
        payout_script: hex::decode("0014f5e19ce4798d4fa87b1de99bc4d8557a6264f610").unwrap(),
        coinbase_tag: b"/NDAS/".to_vec(),
        extranonce2_size: 8,
        splits: Vec::new(),
    };
    Arc::new(Job::build(JobId(1), Arc::new(template), &config).unwrap())
}

fn submit(job: &Job, nonce: u32, version_bits: Option<u32>) -> Submit {
    Submit {
        worker: "w".into(),
        job_id: Some(JobId(1)),
        extranonce2: Extranonce2::from_bytes(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap(),
        ntime: job.template.cur_time,
        nonce,
        version_bits,
    }
}

fn jobs() -> Vec<(usize, Arc<Job>)> {
    let small = include_str!("../tests/fixtures/core-regtest-gbt-height121-60tx.json");
    let big = include_str!("../tests/fixtures/core-regtest-gbt-height226-3500tx.json");
    vec![
        (0, job(template(small, 0))),
        (60, job(template(small, 60))),
        (3500, job(template(big, 3500))),
    ]
}

fn share_validation(c: &mut Criterion) {
    let extranonce1 = Extranonce1([9, 0, 0, 1]);
    let target = Target::from_difficulty(1e12);
    let mut group = c.benchmark_group("validate_share");
    group.throughput(Throughput::Elements(1));
    for (transactions, job) in jobs() {
        for (label, bits) in [("plain", None), ("version_rolling", Some(0x0040_2000))] {
            let context = ShareContext {
                extranonce1: &extranonce1,
                extranonce2_size: 8,
                version_mask: 0x1fff_e000,
                target: &target,
                now_unix: job.template.cur_time,
            };
            // Every figure must be the full path: rebuilt, hashed, then judged.
            let outcome = validate(&job, &submit(&job, 1, bits), &context);
            assert!(
                matches!(outcome, Err(ndas_core::share::Reject::LowDifficulty { .. })),
                "{outcome:?}"
            );
            let mut nonce = 0u32;
            group.bench_with_input(BenchmarkId::new(label, transactions), &job, |b, job| {
                b.iter(|| {
                    nonce = nonce.wrapping_add(1);
                    validate(job, &submit(job, nonce, bits), &context)
                })
            });
        }
    }
    group.finish();
}

fn job_building(c: &mut Criterion) {
    let big = include_str!("../tests/fixtures/core-regtest-gbt-height226-3500tx.json");
    let parsed: Value = serde_json::from_str(big).unwrap();
    c.bench_function("template_parse_3500", |b| {
        b.iter(|| Template::from_json(parsed.clone()).unwrap())
    });
    let template = Arc::new(template(big, 3500));
    let config = JobConfig {
        payout_script: vec![0x51],
        coinbase_tag: b"/NDAS/".to_vec(),
        extranonce2_size: 8,
        splits: Vec::new(),
    };
    c.bench_function("job_build_3500", |b| {
        b.iter(|| Job::build(JobId(1), template.clone(), &config).unwrap())
    });
}

fn block_assembly(c: &mut Criterion) {
    let (_, job) = jobs().pop().unwrap();
    let found = FoundBlock {
        job,
        header: [7; 80],
        hash: ndas_core::chain::Hash256::ZERO,
        extranonce1: Extranonce1([9, 0, 0, 1]),
        extranonce2: Extranonce2::from_bytes(&[0; 8]).unwrap(),
        worker: "w".into(),
        received: std::time::Instant::now(),
    };
    c.bench_function("block_hex_3500", |b| {
        b.iter(|| faster_hex::hex_string(&found.serialize()))
    });
    // What a found block costs when its template's transactions are already
    // journaled (with their hex): the head alone, serialized and in hex.
    c.bench_function("block_head_hex_3500", |b| {
        b.iter(|| {
            let mut head = Vec::with_capacity(512);
            found.serialize_head_into(&mut head);
            faster_hex::hex_string(&head)
        })
    });
}

/// A template's jobs for 1, 100 and 10,000 payout groups (`username` mode,
/// one address each) on the 3,500-transaction template: the merkle branch
/// and notify fields once, then a coinbase and two notify lines per group.
/// Beside them `fixed` mode's one group, today's single payout.
fn payout_groups(c: &mut Criterion) {
    use ndas::work::JobManager;
    use ndas_core::work::groups::Payouts;
    use ndas_core::work::payout::Payout;
    let big = include_str!("../tests/fixtures/core-regtest-gbt-height226-3500tx.json");
    let template = template(big, 3500);
    let config = JobConfig {
        payout_script: Vec::new(),
        coinbase_tag: b"/NDAS/".to_vec(),
        extranonce2_size: 8,
        splits: Vec::new(),
    };
    let payout = |i: usize| {
        let address = ndas_core::client::payout_address(i);
        Payout::parse(&address, ndas_core::chain::Network::Regtest).unwrap()
    };
    let mut group = c.benchmark_group("publish_3500");
    group.sample_size(20);
    let fixed = JobManager::new(
        config.clone(),
        1,
        Payouts {
            fixed: Some(payout(0)),
            by_username: None,
            max_groups: 1,
            max_new_per_source: 1,
        },
    );
    group.bench_function("fixed", |b| {
        b.iter_batched(
            || std::sync::Arc::new(template.clone()),
            |t| fixed.publish(t).unwrap(),
            criterion::BatchSize::LargeInput,
        )
    });
    for groups in [1usize, 100, 10_000] {
        let manager = JobManager::new(
            config.clone(),
            1,
            Payouts {
                fixed: None,
                by_username: Some(ndas_core::chain::Network::Regtest),
                max_groups: groups,
                max_new_per_source: groups,
            },
        );
        let held: Vec<_> = (0..groups)
            .map(|i| manager.groups().join(&payout(i), None).unwrap())
            .collect();
        group.throughput(Throughput::Elements(groups as u64));
        group.bench_with_input(BenchmarkId::new("groups", groups), &groups, |b, _| {
            b.iter_batched(
                || std::sync::Arc::new(template.clone()),
                |t| manager.publish(t).unwrap(),
                criterion::BatchSize::LargeInput,
            )
        });
        // As the watcher publishes: on the blocking pool past 64 groups.
        let runtime = tokio::runtime::Runtime::new().unwrap();
        group.bench_with_input(
            BenchmarkId::new("groups_from_runtime", groups),
            &groups,
            |b, _| {
                b.iter_batched(
                    || std::sync::Arc::new(template.clone()),
                    |t| runtime.block_on(manager.publish_off_runtime(t)).unwrap(),
                    criterion::BatchSize::LargeInput,
                )
            },
        );
        drop(held);
    }
    group.finish();
}

criterion_group!(
    benches,
    share_validation,
    job_building,
    block_assembly,
    payout_groups
);
criterion_main!(benches);
