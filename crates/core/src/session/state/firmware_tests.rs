//! The session as real firmware drives it: every way of rolling version
//! bits, rolling without `mining.configure`, authorizing first, resuming a
//! session, a difficulty floor or rounding, a block on a job just made stale.

use serde_json::json;

use super::tests::{error_of, ready, MAINNET_BITS, REGTEST_BITS};
use super::*;
use crate::chain::Target;
use crate::client::{hash_share_rolled, Rolling, Share};
use crate::testkit::{find, job, now, send, session, submit_line, template, TIP_A, TIP_B};
use crate::vardiff::VardiffConfig;

/// The first share from nonce 0 up, rolled as `rolling` firmware rolls.
fn find_rolled(job: &Job, rolling: Rolling, bits: u32, wanted: impl Fn(&Share) -> bool) -> Share {
    let work = crate::testkit::work(job);
    (0..100_000)
        .map(|nonce| {
            let rolled = Some((rolling, bits, 0x1fff_e000));
            hash_share_rolled(&work, &[9, 0, 0, 1], &[5; 8], nonce, rolled)
        })
        .find(|share| wanted(share))
        .expect("a share within 100,000 nonces")
}

#[test]
fn every_firmware_formula_gets_the_header_it_hashed_on_a_version_with_a_bit_inside_the_mask() {
    // Core's regtest template at heights 144-431: testdummy signals on bit 28.
    let mut raw = template(TIP_A, MAINNET_BITS, 900);
    raw["version"] = json!(0x3000_0000u32);
    let first = job(1, raw);
    // BIP320: the job miners get has no bit inside the mask.
    assert_eq!(crate::testkit::work(&first).version, 0x2000_0000);
    for rolling in [
        Rolling::Bip310,
        Rolling::Cgminer,
        Rolling::EspMiner,
        Rolling::WholeVersion,
    ] {
        for bits in [0x0000_2000, 0x1000_0000, 0x1fff_e000] {
            let mut s = ready(1e-9, first.clone());
            let share = find_rolled(&first, rolling, bits, |s| s.difficulty > 1.1e-9);
            let (answers, out) = send(&mut s, &submit_line("w", &share));
            assert_eq!(
                answers[0]["result"],
                json!(true),
                "{rolling:?} {bits:#x}: {answers:?}"
            );
            // Accepted for the header the miner hashed: its hash, not another.
            let credited = out.events.iter().find_map(|e| match e {
                Event::Share {
                    verdict: Ok(achieved),
                    ..
                } => Some(*achieved),
                _ => None,
            });
            let expected = share.difficulty;
            assert!(credited.is_some_and(|d| (d - expected).abs() <= expected * 1e-9));
        }
    }
}

#[test]
fn version_bits_without_mining_configure_are_accepted_within_the_allowed_mask() {
    // An S21 behind a rental proxy: the sixth param, never negotiated.
    let first = job(1, template(TIP_A, MAINNET_BITS, 900));
    let mut s = ready(1e-9, first.clone());
    for n in 0..20u32 {
        let share = find_rolled(&first, Rolling::Cgminer, (n + 1) << 13, |s| {
            s.difficulty > 1.1e-9
        });
        assert_eq!(
            send(&mut s, &submit_line("w", &share)).0[0]["result"],
            json!(true)
        );
    }
}

#[test]
fn authorize_before_subscribe_is_remembered_and_the_job_follows_the_subscription() {
    let first = job(1, template(TIP_A, MAINNET_BITS, 900));
    let mut s = session(1e-9);
    s.on_job(first.clone(), now(), &mut Output::default());
    let (answers, _) = send(
        &mut s,
        r#"{"id":1,"method":"mining.authorize","params":["acct.rig","x"]}"#,
    );
    assert_eq!(answers[0]["result"], json!(true), "{answers:?}");
    assert_eq!(answers.len(), 1, "no work before the subscription");
    let (answers, _) = send(
        &mut s,
        r#"{"id":2,"method":"mining.subscribe","params":["proxy/1"]}"#,
    );
    assert_eq!(answers[0]["result"][1], json!("09000001"));
    assert_eq!(answers[1]["method"], json!("mining.set_difficulty"));
    assert_eq!(answers[2]["method"], json!("mining.notify"));
    assert!(s.is_authorized());
    let share = find(&first, [3; 8], None, |s| s.difficulty > 1.1e-9);
    assert_eq!(
        send(&mut s, &submit_line("acct.rig", &share)).0[0]["result"],
        json!(true)
    );
}

/// A session as the server makes it: leased from `allocator`, parking into `resumptions`.
fn leased(
    allocator: &Arc<crate::work::ExtranonceAllocator>,
    resumptions: &Arc<crate::session::Resumptions>,
) -> Session {
    let s = session(1e-9);
    let config = s.channel.config().clone();
    Session::leased(
        config,
        allocator.allocate().unwrap(),
        resumptions.clone(),
        now(),
    )
}

#[test]
fn a_miner_resubscribing_with_its_old_id_keeps_its_extranonce_and_its_work() {
    let allocator = Arc::new(crate::work::ExtranonceAllocator::new(9));
    let resumptions = Arc::new(crate::session::Resumptions::new(
        allocator.clone(),
        std::time::Duration::from_secs(600),
    ));
    let first = job(1, template(TIP_A, MAINNET_BITS, 900));
    let mut old = leased(&allocator, &resumptions);
    let (answers, _) = send(
        &mut old,
        r#"{"id":1,"method":"mining.subscribe","params":["cgminer/4.12.1"]}"#,
    );
    let id = answers[0]["result"][1].as_str().unwrap().to_owned();
    old.on_job(first.clone(), now(), &mut Output::default());
    send(
        &mut old,
        r#"{"id":2,"method":"mining.authorize","params":["w","x"]}"#,
    );
    let en1 = old.extranonce1();
    let hashed = |fill: u8| {
        let work = crate::testkit::work(&first);
        (0..100_000)
            .map(|nonce| hash_share_rolled(&work, &en1.0, &[fill; 8], nonce, None))
            .find(|share| share.difficulty > 1.1e-9)
            .unwrap()
    };
    let sent_before = hashed(1);
    assert_eq!(
        send(&mut old, &submit_line("w", &sent_before)).0[0]["result"],
        json!(true)
    );
    // The connection drops; another miner connects meanwhile.
    old.retire(now().instant);
    let mut other = leased(&allocator, &resumptions);
    send(
        &mut other,
        r#"{"id":1,"method":"mining.subscribe","params":["x/1"]}"#,
    );
    assert_ne!(other.extranonce1(), en1);

    let mut back = leased(&allocator, &resumptions);
    back.on_job(first.clone(), now(), &mut Output::default());
    let resume =
        format!(r#"{{"id":1,"method":"mining.subscribe","params":["cgminer/4.12.1","{id}"]}}"#);
    let (answers, out) = send(&mut back, &resume);
    assert_eq!(answers[0]["result"][1], json!(id), "the same extranonce1");
    assert!(out.events.iter().any(|e| matches!(e, Event::Resumed)));
    let (answers, _) = send(
        &mut back,
        r#"{"id":2,"method":"mining.authorize","params":["w","x"]}"#,
    );
    let notify = answers
        .iter()
        .find(|a| a["method"] == json!("mining.notify"))
        .unwrap();
    assert_eq!(
        notify["params"][8],
        json!(false),
        "same tip: keep the work you have"
    );
    // The share hashed before the drop, resent (cgminer does): a duplicate.
    assert_eq!(
        error_of(&send(&mut back, &submit_line("w", &sent_before)).0)[0],
        json!(22)
    );
    // Work in flight on the old job, on the old extranonce1: accepted.
    let in_flight = hashed(2);
    assert_eq!(
        send(&mut back, &submit_line("w", &in_flight)).0[0]["result"],
        json!(true)
    );

    // Held now by a live connection: another resubscribe gets a new one.
    let mut twin = leased(&allocator, &resumptions);
    let (answers, _) = send(&mut twin, &resume);
    assert_ne!(answers[0]["result"][1], json!(id));
}

/// A subscribed session with vardiff between 1 and 1e6, `rounding`, on a
/// job whose network difficulty is far above both.
fn wide(rounding: crate::vardiff::Rounding, start: f64) -> Session {
    let config = SessionConfig {
        extranonce2_size: 8,
        version_mask: 0x1fff_e000,
        vardiff: VardiffConfig {
            start,
            min: 1.0,
            max: 1e6,
            target_share_seconds: 10.0,
            rounding,
        },
        agents: Vec::new(),
    };
    let mut s = Session::new(
        Arc::new(config),
        crate::work::Extranonce1([9, 0, 0, 1]),
        now(),
    );
    send(
        &mut s,
        r#"{"id":1,"method":"mining.subscribe","params":[]}"#,
    );
    s.on_job(
        job(1, template(TIP_A, "17034219", 900)),
        now(),
        &mut Output::default(),
    );
    s
}

/// The difficulties sent in `answers`.
fn difficulties(answers: &[Value]) -> Vec<f64> {
    answers
        .iter()
        .filter(|a| a["method"] == json!("mining.set_difficulty"))
        .map(|a| a["params"][0].as_f64().unwrap())
        .collect()
}

#[test]
fn difficulties_are_rounded_as_configured_and_the_sent_one_is_the_target() {
    use crate::vardiff::Rounding;
    for (rounding, sent) in [
        (Rounding::Integer, 1536.0),
        (Rounding::PowerOfTwo, 1024.0),
        (Rounding::None, 1536.75),
    ] {
        let mut s = wide(rounding, 1536.75);
        let (answers, out) = send(
            &mut s,
            r#"{"id":2,"method":"mining.authorize","params":["w","x"]}"#,
        );
        assert_eq!(difficulties(&answers), vec![sent], "{rounding:?}");
        assert!(out
            .events
            .iter()
            .any(|e| matches!(e, Event::Difficulty { difficulty, .. } if *difficulty == sent)));
        // The job's share target is that difficulty's.
        assert_eq!(
            s.channel.jobs.back().unwrap().target,
            Target::from_difficulty(sent)
        );
    }
}

#[test]
fn a_minimum_difficulty_from_configure_or_the_password_is_the_miners_floor() {
    use crate::vardiff::Rounding;
    // BIP310 minimum-difficulty: answered true, honoured under suggestions.
    let mut s = wide(Rounding::Integer, 16.0);
    let (answers, _) = send(
        &mut s,
        r#"{"id":2,"method":"mining.configure","params":[["minimum-difficulty"],{"minimum-difficulty.value":2048}]}"#,
    );
    assert_eq!(answers[0]["result"], json!({"minimum-difficulty": true}));
    let (answers, _) = send(
        &mut s,
        r#"{"id":3,"method":"mining.authorize","params":["w","x"]}"#,
    );
    assert_eq!(difficulties(&answers), vec![2048.0]);
    let (answers, _) = send(
        &mut s,
        r#"{"id":4,"method":"mining.suggest_difficulty","params":[100]}"#,
    );
    assert_eq!(answers[0]["result"], json!(true));
    assert!(difficulties(&answers).is_empty(), "still 2048: {answers:?}");

    // d=N in the password: the worker's start and floor, within the bounds.
    let mut s = wide(Rounding::Integer, 16.0);
    let (answers, _) = send(
        &mut s,
        r#"{"id":2,"method":"mining.authorize","params":["w","x,d=4096"]}"#,
    );
    assert_eq!(difficulties(&answers), vec![4096.0]);
    let mut s = wide(Rounding::Integer, 16.0);
    let (answers, _) = send(
        &mut s,
        r#"{"id":2,"method":"mining.authorize","params":["w","d=1e9"]}"#,
    );
    assert_eq!(
        difficulties(&answers),
        vec![1e6],
        "bounded by difficulty.max"
    );
}

#[test]
fn a_block_on_a_job_whose_tip_was_just_replaced_is_still_submitted() {
    let first = job(1, template(TIP_A, REGTEST_BITS, 900));
    let mut s = ready(2.5e-10, first.clone());
    s.on_job(
        job(2, template(TIP_B, REGTEST_BITS, 901)),
        now(),
        &mut Output::default(),
    );
    let block = find(&first, [4; 8], None, |s| s.is_block);
    let (answers, out) = send(&mut s, &submit_line("w", &block));
    assert_eq!(
        error_of(&answers),
        json!([21, "Stale share", null]),
        "stale as a share"
    );
    let blocks: Vec<_> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Block(found) => Some(found.hash),
            _ => None,
        })
        .collect();
    assert_eq!(blocks.len(), 1, "and a block to submit");
    assert_eq!(blocks[0].to_string(), block.hash.to_string());
    // Sent again: stale, and no second block.
    let (answers, out) = send(&mut s, &submit_line("w", &block));
    assert_eq!(error_of(&answers)[0], json!(21));
    assert!(!out.events.iter().any(|e| matches!(e, Event::Block(_))));
    // A stale share that is no block: stale, nothing else.
    let plain = find(&first, [5; 8], None, |s| {
        !s.is_block && s.difficulty > 2.5e-10
    });
    let (answers, out) = send(&mut s, &submit_line("w", &plain));
    assert_eq!(error_of(&answers)[0], json!(21));
    assert!(!out.events.iter().any(|e| matches!(e, Event::Block(_))));
}

/// A session on a port starting at 65536 (min 1, max 1e6) with the
/// built-in user agent table, subscribed as `agent` after `before`.
fn on_asic_port(agent: &str, before: &[&str]) -> (Session, Vec<Value>) {
    let config = SessionConfig {
        extranonce2_size: 8,
        version_mask: 0x1fff_e000,
        vardiff: VardiffConfig {
            start: 65536.0,
            min: 1.0,
            max: 1e6,
            target_share_seconds: 10.0,
            rounding: crate::vardiff::Rounding::Integer,
        },
        agents: crate::vardiff::AgentDifficulty::defaults(),
    };
    let mut s = Session::new(
        Arc::new(config),
        crate::work::Extranonce1([9, 0, 0, 1]),
        now(),
    );
    s.on_job(
        job(1, template(TIP_A, "17034219", 900)),
        now(),
        &mut Output::default(),
    );
    for line in before {
        send(&mut s, line);
    }
    let subscribe = json!({"id": 1, "method": "mining.subscribe", "params": [agent]});
    send(&mut s, &subscribe.to_string());
    let (answers, _) = send(
        &mut s,
        r#"{"id":2,"method":"mining.authorize","params":["w","x"]}"#,
    );
    (s, answers)
}

#[test]
fn a_known_user_agent_starts_at_its_familys_difficulty_within_the_ports_bounds() {
    for (agent, start) in [
        ("NiceHash/1.0.0", 500_000.0),
        ("bitaxe/BM1370/v2.9.0", 512.0),
        // Their starts are below this port's min: the port's min holds.
        ("cpuminer/2.5.1", 1.0),
        ("NerdMinerV2", 1.0),
        // Not in the table: the port's start.
        ("bmminer/2.0.0", 65536.0),
        ("Braiins OS 24.03", 65536.0),
    ] {
        let (_, answers) = on_asic_port(agent, &[]);
        assert_eq!(difficulties(&answers), vec![start], "{agent}");
    }
}

#[test]
fn a_familys_floor_holds_against_vardiff_and_the_miners_own_ask_wins_over_the_table() {
    // NiceHash sends nothing for long: vardiff would quarter it, but not
    // below the family's floor of 500,000.
    let (mut s, _) = on_asic_port("NiceHash/1.0.0", &[]);
    let later = Now {
        instant: now().instant + std::time::Duration::from_secs(3600),
        unix: now().unix + 3600,
    };
    let mut out = Output::default();
    s.on_job(job(2, template(TIP_A, "17034219", 900)), later, &mut out);
    let sent: Vec<Value> = out
        .lines
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(difficulties(&sent), Vec::<f64>::new(), "{sent:?}");
    assert_eq!(s.channel.difficulty, 500_000.0);

    // cgminer negotiates a minimum before it subscribes; a suggestion
    // before subscribing counts too; so does d=N after it.
    let minimum = r#"{"id":0,"method":"mining.configure","params":[["minimum-difficulty"],{"minimum-difficulty.value":2048}]}"#;
    let (_, answers) = on_asic_port("cpuminer/2.5.1", &[minimum]);
    assert_eq!(difficulties(&answers), vec![2048.0]);
    let suggest = r#"{"id":0,"method":"mining.suggest_difficulty","params":[300]}"#;
    let (_, answers) = on_asic_port("bitaxe/BM1366/v2.1.0", &[suggest]);
    assert_eq!(difficulties(&answers), vec![300.0]);
    // A suggestion below a family's floor is held to the floor.
    let (_, answers) = on_asic_port("NiceHash/1.0.0", &[suggest]);
    assert_eq!(difficulties(&answers), vec![500_000.0]);
    let (mut s, _) = on_asic_port("NiceHash/1.0.0", &[]);
    let (answers, _) = send(
        &mut s,
        r#"{"id":3,"method":"mining.authorize","params":["w2","d=800000"]}"#,
    );
    assert_eq!(difficulties(&answers), vec![800_000.0]);
}
