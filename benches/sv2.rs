//! Stratum V2's costs beside Stratum V1's, through each wire's state
//! machine on a 3,500-transaction job: one share judged (V1's line parsed
//! first; V2's message comes decoded from the wire), and a new job handed
//! to 100 miners (100 V1 sessions, or one proxy's connection with 100
//! extended channels); and the wire's part, a job encrypted for a channel
//! (V1 sends one shared line to all).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use ndas_core::chain::Network;
use ndas_core::channel::{Now, SessionConfig};
use ndas_core::session::{Output, Session};
use ndas_core::stratum::method::Extranonce2;
use ndas_core::sv2::message::{Open, Setup, Submitted};
use ndas_core::sv2::{ChannelBudget, Inbound, Sv2Limits, Sv2Session};
use ndas_core::template::Template;
use ndas_core::vardiff::{Rounding, VardiffConfig};
use ndas_core::work::extranonce::ExtranonceAllocator;
use ndas_core::work::groups::Payouts;
use ndas_core::work::payout::Payout;
use ndas_core::work::routes::{RouteTo, Routes};
use ndas_core::work::{Extranonce1, Job, JobConfig, PayoutGroups};

const POOL: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
type Sv2Out = ndas_core::sv2::Output<()>;

/// Core's 3,500-transaction template at mainnet's first bits: no share
/// is a block, every one is hashed and refused for its difficulty.
fn manager() -> Arc<PayoutGroups> {
    let fixture = include_str!("../tests/fixtures/core-regtest-gbt-height226-3500tx.json");
    let mut raw: serde_json::Value = serde_json::from_str(fixture).unwrap();
    raw["bits"] = "1d00ffff".into();
    raw["target"] = "00000000ffff0000000000000000000000000000000000000000000000000000".into();
    let manager = <PayoutGroups>::new(
        JobConfig {
            payout_script: Vec::new(),
            coinbase_tag: b"/NDAS/".to_vec(),
            extranonce2_size: 8,
            splits: Vec::new(),
        },
        1,
        Payouts {
            fixed: Some(Payout::parse(POOL, Network::Regtest).unwrap()),
            by_username: None,
            max_groups: 4,
            max_new_per_source: 4,
        },
    );
    let template = Template::from_json(raw).unwrap();
    manager.publish(Arc::new(template)).unwrap();
    manager
}

fn config() -> Arc<SessionConfig> {
    Arc::new(SessionConfig {
        extranonce2_size: 8,
        version_mask: 0x1fff_e000,
        vardiff: VardiffConfig {
            start: 1.0,
            min: 1.0,
            max: 1.0,
            target_share_seconds: 1e9,
            rounding: Rounding::None,
        },
        agents: Vec::new(),
    })
}

fn job(manager: &PayoutGroups) -> Arc<Job> {
    manager.fixed().unwrap().current().unwrap()
}

fn v1_session(manager: &Arc<PayoutGroups>, extranonce1: [u8; 4]) -> Session {
    let now = Now::system();
    let mut session =
        Session::new(config(), Extranonce1(extranonce1), now).with_payouts(manager.clone());
    let mut out = Output::default();
    session.handle_line(
        r#"{"id":1,"method":"mining.subscribe","params":["bmminer/2.0.0"]}"#,
        now,
        &mut out,
    );
    let authorize =
        format!(r#"{{"id":2,"method":"mining.authorize","params":["{POOL}.rig","x"]}}"#);
    session.handle_line(&authorize, now, &mut out);
    session.on_job(job(manager), now, &mut out);
    session
}

fn v2_connection(manager: &Arc<PayoutGroups>, channels: u32) -> Sv2Session {
    let limits = Sv2Limits {
        max_channels: 1_000,
        budget: ChannelBudget::new(10_000),
    };
    let extranonces = Arc::new(ExtranonceAllocator::new(1));
    let mut session = Sv2Session::new(config(), limits, extranonces).with_payouts(manager.clone());
    let mut out = Sv2Out::default();
    let now = Now::system();
    let setup = Setup {
        protocol: 0,
        min_version: 2,
        max_version: 2,
        flags: 0b100,
        vendor: "SRI".into(),
        hardware_version: "Translator Proxy".into(),
        firmware: String::new(),
        device_id: String::new(),
    };
    session.handle(Inbound::SetupConnection(setup), now, &mut out);
    for request_id in 0..channels {
        let open = Open {
            request_id,
            user_identity: format!("{POOL}.miner{request_id}"),
            nominal_hash_rate: 0.0,
            max_target: [0xff; 32],
        };
        let open = Inbound::OpenExtended {
            open,
            min_extranonce_size: 4,
        };
        session.handle(open, now, &mut out);
    }
    session
}

fn share(c: &mut Criterion) {
    let manager = manager();
    let job = job(&manager);
    let mut group = c.benchmark_group("share_judged_3500tx");

    let mut v1 = v1_session(&manager, [9, 0, 0, 1]);
    let lines: Vec<String> = (0..1024u32)
        .map(|nonce| {
            format!(
                r#"{{"id":4711,"method":"mining.submit","params":["{POOL}.rig","{}","0000000000000f2a","{:08x}","{nonce:08x}"]}}"#,
                job.id, job.template.cur_time
            )
        })
        .collect();
    let mut next = 0usize;
    let mut out = Output::default();
    group.bench_function("stratum_v1_line", |b| {
        b.iter(|| {
            next = (next + 1) % lines.len();
            v1.handle_line(&lines[next], Now::system(), &mut out);
            out.lines.clear();
            out.events.clear();
        })
    });

    let mut v2 = v2_connection(&manager, 1);
    let mut nonce = 0u32;
    let mut out = Sv2Out::default();
    group.bench_function("stratum_v2_submit_extended", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(1);
            let submitted = Submitted {
                channel_id: 2,
                sequence_number: nonce,
                job_id: 1,
                nonce,
                ntime: job.template.cur_time,
                version: job.version,
                extranonce: Extranonce2::from_bytes(&[0, 0, 0, 0, 0, 0, 0x0f, 0x2a]),
            };
            v2.handle(Inbound::SubmitExtended(submitted), Now::system(), &mut out);
            out.messages.clear();
            out.events.clear();
        })
    });
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    let manager = self::manager();
    // New jobs on the same tip, as a node's refresh gives them, in turn.
    let template = job(&manager).template.clone();
    let jobs: Vec<Arc<Job>> = (0..32)
        .map(|_| manager.publish(template.clone()).unwrap().unwrap())
        .collect();
    let mut next = 0usize;
    let mut group = c.benchmark_group("job_to_100_miners");
    let mut sessions: Vec<Session> = (0..100u8)
        .map(|i| v1_session(&manager, [9, 0, 1, i]))
        .collect();
    let mut out = Output::default();
    group.bench_function("stratum_v1_100_sessions", |b| {
        b.iter(|| {
            next = (next + 1) % jobs.len();
            for session in &mut sessions {
                session.on_job(jobs[next].clone(), Now::system(), &mut out);
                out.lines.clear();
                out.events.clear();
            }
        })
    });
    // With `[[route]]`s (70 % node, 30 % a pool without a job): each
    // channel looks its route up on every node job; and a nudge (the
    // connections woken on the job they have, as when a routed pool's job
    // changes or miners move) sends nothing.
    let routed = self::manager();
    let routes = Routes::new(&[(RouteTo::Node, 70.0), (RouteTo::Pool(0), 30.0)]).unwrap();
    routed.set_routes(routes);
    let routed_jobs: Vec<Arc<Job>> = (0..32)
        .map(|_| routed.publish(template.clone()).unwrap().unwrap())
        .collect();
    let mut routed_sessions: Vec<Session> = (0..100u8)
        .map(|i| v1_session(&routed, [9, 0, 2, i]))
        .collect();
    let mut routed_out = Output::default();
    group.bench_function("stratum_v1_100_sessions_routed", |b| {
        b.iter(|| {
            next = (next + 1) % routed_jobs.len();
            for session in &mut routed_sessions {
                session.on_job(routed_jobs[next].clone(), Now::system(), &mut routed_out);
                routed_out.lines.clear();
                routed_out.events.clear();
            }
        })
    });
    group.bench_function("stratum_v1_100_sessions_nudged", |b| {
        b.iter(|| {
            for session in &mut routed_sessions {
                session.on_job(routed_jobs[next].clone(), Now::system(), &mut routed_out);
                routed_out.lines.clear();
                routed_out.events.clear();
            }
        })
    });
    let mut proxy = v2_connection(&manager, 100);
    let mut out = Sv2Out::default();
    let key = {
        let group = manager.fixed().unwrap();
        Arc::as_ptr(&group) as *const () as usize
    };
    group.bench_function("stratum_v2_100_channels", |b| {
        b.iter(|| {
            next = (next + 1) % jobs.len();
            proxy.on_job(key, jobs[next].clone(), Now::system(), &mut out);
            out.messages.clear();
            out.events.clear();
        })
    });
    group.finish();
}

/// One `NewExtendedMiningJob` serialized and encrypted, on a connection
/// set up over loopback with the test kit's client.
fn encrypt_job(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = ndas::sv2::keys::AuthorityKey::load_or_create(dir.path()).unwrap();
    let kept = ndas::sv2::keys::StaticKey::load_or_create(dir.path()).unwrap();
    let public = *key.public();
    let (mut writer, _client) = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(ndas_testkit::sv2::Client::connect(addr, public));
        let (stream, _) = listener.accept().await.unwrap();
        let (reader, mut write_half) = stream.into_split();
        let (_, writer) = ndas::sv2::wire::accept(reader, &mut write_half, &key, &kept, 4096)
            .await
            .unwrap();
        (writer, (client.await.unwrap().unwrap(), write_half))
    });
    let manager = manager();
    let job = job(&manager);
    let message = ndas_core::sv2::Outbound::NewExtendedJob {
        channel_id: 2,
        job_id: 7,
        min_ntime: Some(job.template.cur_time),
        job,
    };
    let mut bytes = Vec::with_capacity(4096);
    c.bench_function("sv2_encrypt_extended_job_3500tx", |b| {
        b.iter(|| {
            bytes.clear();
            writer.encode(&message, &mut bytes).unwrap();
        })
    });
}

criterion_group!(benches, share, fan_out, encrypt_job);
criterion_main!(benches);
