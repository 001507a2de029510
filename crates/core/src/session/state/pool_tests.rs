//! A miner on an upstream pool's job (issue 24): its shares are judged as
//! on a node's job, and those meeting the pool's target are handed on for
//! the pool, with the pool's extranonce2 put back together.

use serde_json::json;

use super::tests::ready;
use super::*;
use crate::client::Work;
use crate::stratum::method::JobId;
use crate::testkit::{find, send, submit_line};
use crate::work::pool::PoolWork;
use crate::work::Job;

fn pool_job(difficulty: f64) -> Arc<Job> {
    pool_job_with_bits(difficulty, 0x207f_ffff)
}

fn pool_job_with_bits(difficulty: f64, bits: u32) -> Arc<Job> {
    Arc::new(Job::from_pool(JobId(77), &pool_work(difficulty, bits), 8).unwrap())
}

fn pool_work(difficulty: f64, bits: u32) -> PoolWork {
    PoolWork {
        pool: 0,
        lane: 0,
        connection: 3,
        work: Work {
            job_id: "p7".into(),
            prev_hash: [0x44; 32],
            coinb1: [
                &[1, 0, 0, 0, 1][..],
                &[0; 32],
                &[0xff; 4],
                &[0x10, 0x01, 0x05],
            ]
            .concat(),
            coinb2: vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0],
            branch: vec![[0x55; 32]],
            version: 0x2000_0000,
            bits,
            ntime: 1_795_504_000,
            clean: true,
        },
        extranonce1: vec![0xee; 4],
        // The session's 8 bytes and the 4-byte slice.
        extranonce2_size: 12,
        difficulty,
        version_mask: 0x1fff_e000,
    }
}

fn forwards(out: &Output) -> Vec<&crate::channel::Forward> {
    out.events
        .iter()
        .filter_map(|e| match e {
            Event::Forward(forward) => Some(&**forward),
            _ => None,
        })
        .collect()
}

#[test]
fn a_share_meeting_the_pool_s_target_is_handed_on_and_never_a_block() {
    let job = pool_job(1e-9);
    let mut s = ready(1e-9, job.clone());
    let share = find(&job, [3; 8], None, |s| s.is_block);
    let (answers, out) = send(&mut s, &submit_line("w", &share));
    assert_eq!(answers[0]["result"], json!(true), "{answers:?}");
    assert!(!out.events.iter().any(|e| matches!(e, Event::Block(_))));
    let sent = forwards(&out);
    assert_eq!(sent.len(), 1);
    let forward = sent[0];
    assert_eq!((forward.pool, forward.connection), (0, 3));
    assert_eq!(&*forward.worker, "w");
    assert_eq!(forward.share.job_id, "p7");
    assert_eq!(
        forward.share.extranonce2,
        [&[9, 0, 0, 1][..], &[3; 8]].concat()
    );
    assert_eq!(forward.share.nonce, share.nonce);
    // The pool credits it at its job's difficulty, whatever it is when
    // its answer comes.
    assert!(
        (forward.pool_difficulty / 1e-9 - 1.0).abs() < 1e-6,
        "{}",
        forward.pool_difficulty
    );
}

#[test]
fn a_share_below_the_pool_s_target_is_the_miner_s_alone() {
    // The pool's difficulty far above any share found here.
    let job = pool_job(1e12);
    let mut s = ready(1e-9, job.clone());
    let share = find(&job, [4; 8], None, |_| true);
    let (answers, out) = send(&mut s, &submit_line("w", &share));
    assert_eq!(answers[0]["result"], json!(true), "{answers:?}");
    assert!(forwards(&out).is_empty());
}

#[test]
fn another_pool_s_job_on_the_same_tip_is_clean_and_the_first_pool_s_shares_are_stale() {
    let first = pool_job(1e-9);
    let mut s = ready(1e-9, first.clone());
    let share = find(&first, [5; 8], None, |s| !s.is_block);
    // The next pool in the config, its job on the same block.
    let mut other = pool_job(1e-9);
    {
        let job = Arc::get_mut(&mut other).unwrap();
        job.id = JobId(78);
        let mut pool = crate::work::pool::PoolJob::clone(job.pool.as_ref().unwrap());
        pool.pool = 1;
        job.pool = Some(Arc::new(pool));
    }
    assert_eq!(other.prev_hash(), first.prev_hash());
    let mut out = Output::default();
    s.on_job(other, crate::testkit::now(), &mut out);
    let notify: serde_json::Value = serde_json::from_slice(out.lines.last().unwrap()).unwrap();
    assert_eq!(notify["params"][8], json!(true), "{notify}");
    let (answers, out) = send(&mut s, &submit_line("w", &share));
    assert_eq!(answers[0]["error"][1], json!("Stale share"), "{answers:?}");
    assert!(forwards(&out).is_empty());
    // A block on the first pool's job is still that pool's to judge: the
    // miner hears it is stale here, and the pool gets it.
    // (Regtest's bits are easier than this pool's difficulty: a block that
    // meets both, as every block does on a real chain.)
    let block = find(&first, [6; 8], None, |s| s.is_block && s.difficulty >= 1e-9);
    let (answers, out) = send(&mut s, &submit_line("w", &block));
    assert_eq!(answers[0]["error"][1], json!("Stale share"), "{answers:?}");
    let sent = forwards(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].pool, sent[0].share.nonce), (0, block.nonce));
}

#[test]
fn a_miner_s_difficulty_is_capped_at_the_pool_s() {
    // Vardiff would have 1.0; the pool credits shares at 0.001: a miner
    // above it would send the pool fewer shares than its hashrate earns.
    let mut s = crate::testkit::session(1.0);
    let (_, mut out) = send(
        &mut s,
        r#"{"id":1,"method":"mining.subscribe","params":["test/1"]}"#,
    );
    // Mainnet's bits: the network's difficulty is far above the pool's.
    s.on_job(
        pool_job_with_bits(0.001, 0x1d00_ffff),
        crate::testkit::now(),
        &mut out,
    );
    let (_, authorized) = send(
        &mut s,
        r#"{"id":2,"method":"mining.authorize","params":["w","x"]}"#,
    );
    let mut announced = difficulties(&out);
    announced.extend(difficulties(&authorized));
    assert_eq!(announced.last(), Some(&0.001), "{announced:?}");
}

/// The `mining.notify` lines in `out`.
fn notifies(out: &Output) -> Vec<serde_json::Value> {
    out.lines
        .iter()
        .map(|line| serde_json::from_slice::<serde_json::Value>(line).unwrap())
        .filter(|message| message["method"] == json!("mining.notify"))
        .collect()
}

#[test]
fn each_miner_mines_its_own_lane_s_job_and_its_share_goes_to_that_connection() {
    use crate::work::lanes::{Lanes, Seats};
    // Two connections to the pool, each with its own extranonce1; one
    // miner per connection.
    let lane = |lane: usize, connection: u64, extranonce1: u8| {
        let mut from = pool_work(1e-9, 0x207f_ffff);
        (from.lane, from.connection, from.extranonce1) = (lane, connection, vec![extranonce1; 4]);
        Arc::new(Job::from_pool(JobId(80 + lane as u64), &from, 8).unwrap())
    };
    let (first, second) = (lane(0, 3, 0xe0), lane(1, 4, 0xe1));
    let seats = Seats::new(4, 1);
    let publish = || {
        let lanes = vec![(0, first.clone()), (1, second.clone())];
        Arc::new(Job::over_lanes(
            Lanes::new(0, seats.clone(), lanes).unwrap(),
        ))
    };
    let mut a = ready(1e-9, publish());
    let mut b = ready(1e-9, publish());
    assert_eq!((seats.on(0), seats.on(1)), (1, 1));

    for (session, job, connection) in [(&mut a, &first, 3), (&mut b, &second, 4)] {
        // Its notify is its lane's job: the lane's extranonce1 ends coinb1.
        let mut out = Output::default();
        session.on_job(publish(), crate::testkit::now(), &mut out);
        assert!(notifies(&out).is_empty(), "an unchanged lane sends nothing");
        // (Regtest's bits: only a share that meets them meets the miner's.)
        let share = find(job, [7; 8], None, |s| s.is_block && s.difficulty >= 1e-9);
        let (answers, out) = send(session, &submit_line("w", &share));
        assert_eq!(answers[0]["result"], json!(true), "{answers:?}");
        let sent = forwards(&out);
        assert_eq!(
            (sent[0].pool, sent[0].lane, sent[0].connection),
            (0, usize::from(connection == 4), connection)
        );
    }

    // The node is back: both seats are given back.
    let node = crate::testkit::job(
        90,
        crate::testkit::template(&"22".repeat(32), "207fffff", 301),
    );
    let mut out = Output::default();
    a.on_job(node.clone(), crate::testkit::now(), &mut out);
    assert_eq!(notifies(&out).len(), 1);
    b.on_job(node, crate::testkit::now(), &mut Output::default());
    assert_eq!(seats.seated(), 0);
}

#[test]
fn vardiff_under_a_pool_s_cap_retargets_from_the_difficulty_mined_not_its_own() {
    // Vardiff starts at 1e-6; the pool credits 1e-9, so the miner mines at
    // 1e-9 and finds a share a second (ten times the 10 s goal).
    let (mut s, start, mut out) = vardiff_session(1e-6);
    let capped = Arc::new(Job::from_pool(JobId(78), &pool_work(1e-9, 0x1d00_ffff), 8).unwrap());
    s.on_job(capped.clone(), start, &mut out);
    let mut announced = Vec::new();
    for i in 1..=16u8 {
        let share = find(&capped, [i; 8], None, |share| share.difficulty >= 1e-9);
        let at = crate::channel::Now {
            instant: start.instant + std::time::Duration::from_secs(u64::from(i)),
            unix: start.unix + u32::from(i),
        };
        let mut out = Output::default();
        s.handle_line(&submit_line("w", &share), at, &mut out);
        announced.extend(difficulties(&out));
    }
    // The pool's job with a cap far above: the miner's own rate says 1e-8
    // (a share every 10 s), not 1e-5 (vardiff's start, ten times over).
    let roomy = Arc::new(Job::from_pool(JobId(79), &pool_work(1.0, 0x1d00_ffff), 8).unwrap());
    let mut out = Output::default();
    s.on_job(roomy, start, &mut out);
    announced.extend(difficulties(&out));
    let last = *announced.last().expect("a difficulty after the cap lifted");
    assert!((last / 1e-8 - 1.0).abs() < 0.2, "{announced:?}");
}

#[test]
fn shares_from_under_a_cap_do_not_count_in_the_rate_after_it_lifts() {
    let (mut s, start, mut out) = vardiff_session(1e-8);
    let at = |seconds: u64| crate::channel::Now {
        instant: start.instant + std::time::Duration::from_secs(seconds),
        unix: start.unix + seconds as u32,
    };
    // Eight quick shares under a pool's cap of 1e-9 (a second apart)...
    let capped = Arc::new(Job::from_pool(JobId(78), &pool_work(1e-9, 0x1d00_ffff), 8).unwrap());
    s.on_job(capped.clone(), start, &mut out);
    for i in 1..=8u8 {
        let share = find(&capped, [i; 8], None, |share| share.difficulty >= 1e-9);
        s.handle_line(
            &submit_line("w", &share),
            at(u64::from(i)),
            &mut Output::default(),
        );
    }
    // ...then the cap lifts to vardiff's 1e-8, and the miner finds one
    // every 10 s, its goal: the window holds no share of the cap's, so
    // nothing is retargeted (with them, 16 shares in 88 s read as 1.8
    // times too fast).
    let roomy = Arc::new(Job::from_pool(JobId(79), &pool_work(1.0, 0x1d00_ffff), 8).unwrap());
    s.on_job(roomy.clone(), at(8), &mut out);
    let mut announced = Vec::new();
    for i in 1..=8u8 {
        let share = find(&roomy, [0x40 + i; 8], None, |share| {
            share.difficulty >= 1e-8
        });
        let mut out = Output::default();
        s.handle_line(
            &submit_line("w", &share),
            at(8 + 10 * u64::from(i)),
            &mut out,
        );
        announced.extend(difficulties(&out));
    }
    assert!(announced.is_empty(), "{announced:?}");
}

/// The difficulties `out` announces.
fn difficulties(out: &Output) -> Vec<f64> {
    out.lines
        .iter()
        .map(|line| serde_json::from_slice::<serde_json::Value>(line).unwrap())
        .filter(|message| message["method"] == json!("mining.set_difficulty"))
        .map(|message| message["params"][0].as_f64().unwrap())
        .collect()
}

/// A session subscribed and authorized at `start` difficulty (vardiff
/// free down to 1e-12, a share per 10 s wanted), the time it began, and
/// its output so far.
fn vardiff_session(start: f64) -> (Session, crate::channel::Now, Output) {
    let config = crate::session::SessionConfig {
        extranonce2_size: 8,
        version_mask: 0x1fff_e000,
        vardiff: crate::vardiff::VardiffConfig {
            start,
            min: 1e-12,
            max: 1.0,
            target_share_seconds: 10.0,
            rounding: crate::vardiff::Rounding::None,
        },
        agents: Vec::new(),
    };
    let now = crate::testkit::now();
    let mut s: Session = Session::new(
        Arc::new(config),
        crate::work::Extranonce1([9, 0, 0, 1]),
        now,
    );
    let mut out = Output::default();
    s.handle_line(
        r#"{"id":1,"method":"mining.subscribe","params":["test/1"]}"#,
        now,
        &mut out,
    );
    s.handle_line(
        r#"{"id":2,"method":"mining.authorize","params":["w","x"]}"#,
        now,
        &mut out,
    );
    (s, now, out)
}
