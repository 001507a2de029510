use serde_json::json;

use super::*;
use crate::testkit::{find, job, now, send, session, submit_line, template, TIP_A, TIP_B};
use crate::vardiff::VardiffConfig;

pub(super) const MAINNET_BITS: &str = "1d00ffff";
pub(super) const REGTEST_BITS: &str = "207fffff";

/// A session subscribed and authorized as `w`, with `first` as its job.
pub(super) fn ready(difficulty: f64, first: Arc<Job>) -> Session {
    let mut s = session(difficulty);
    send(
        &mut s,
        r#"{"id":1,"method":"mining.subscribe","params":["test/1"]}"#,
    );
    s.on_job(first, now(), &mut Output::default());
    send(
        &mut s,
        r#"{"id":2,"method":"mining.authorize","params":["w","x"]}"#,
    );
    s
}

pub(super) fn error_of(answers: &[Value]) -> Value {
    answers[0]["error"].clone()
}

#[test]
fn subscribe_then_authorize_sends_difficulty_then_a_clean_job() {
    let mut s = session(1e-9);
    let (answers, _) = send(
        &mut s,
        r#"{"id":"a","method":"mining.subscribe","params":["bmminer/2.0"]}"#,
    );
    assert_eq!(answers[0]["id"], json!("a"));
    assert_eq!(answers[0]["result"][1], json!("09000001"));
    assert_eq!(answers[0]["result"][2], json!(8));
    assert_eq!(s.user_agent(), Some("bmminer/2.0"));

    let mut out = Output::default();
    s.on_job(job(1, template(TIP_A, MAINNET_BITS, 900)), now(), &mut out);
    assert!(out.lines.is_empty(), "no job before authorization");

    let (answers, out) = send(
        &mut s,
        r#"{"id":2,"method":"mining.authorize","params":["acct.rig","x"]}"#,
    );
    assert_eq!(answers[0]["result"], json!(true));
    assert_eq!(
        answers[1],
        json!({"id": null, "method": "mining.set_difficulty", "params": [1e-9]})
    );
    assert_eq!(answers[2]["method"], json!("mining.notify"));
    assert_eq!(answers[2]["params"][0], json!("1"));
    assert_eq!(answers[2]["params"][8], json!(true));
    let authorized = out.events.iter().find_map(|e| match e {
        Event::Authorized { worker } => Some(worker.to_string()),
        _ => None,
    });
    assert_eq!(authorized.as_deref(), Some("acct.rig"));
}

#[test]
fn methods_out_of_order_get_their_codes() {
    let mut s = session(1e-9);
    let submit = r#"{"id":3,"method":"mining.submit","params":["w","1","0000000000000000","6b0556d4","00000000"]}"#;
    assert_eq!(
        error_of(&send(&mut s, submit).0),
        json!([25, "Not subscribed", null])
    );
    // Authorizing first is allowed (old proxies do it); the worker is kept.
    let authorize = r#"{"id":2,"method":"mining.authorize","params":["w","x"]}"#;
    assert_eq!(send(&mut s, authorize).0[0]["result"], json!(true));
    send(
        &mut s,
        r#"{"id":1,"method":"mining.subscribe","params":[]}"#,
    );
    let other = submit.replace(r#"["w","#, r#"["v","#);
    assert_eq!(
        error_of(&send(&mut s, &other).0),
        json!([24, "Unauthorized worker", null])
    );
    let again = r#"{"id":4,"method":"mining.subscribe","params":[]}"#;
    assert_eq!(
        error_of(&send(&mut s, again).0),
        json!([20, "Already subscribed", null])
    );
}

#[test]
fn shares_are_accepted_once_and_credited_at_the_job_difficulty() {
    let first = job(1, template(TIP_A, MAINNET_BITS, 900));
    let mut s = ready(1e-9, first.clone());
    let share = find(&first, [0; 8], None, |s| s.difficulty > 1.1e-9);
    let (answers, out) = send(&mut s, &submit_line("w", &share));
    assert_eq!(answers[0]["result"], json!(true));
    assert!(
        matches!(&out.events[..], [Event::Share { difficulty, verdict: Ok(_), .. }] if *difficulty == 1e-9)
    );
    let (answers, out) = send(&mut s, &submit_line("w", &share));
    assert_eq!(error_of(&answers), json!([22, "Duplicate share", null]));
    assert!(matches!(
        &out.events[..],
        [Event::Share {
            verdict: Err(Reject::Duplicate),
            ..
        }]
    ));
}

#[test]
fn each_bad_share_gets_its_reason() {
    let first = job(1, template(TIP_A, MAINNET_BITS, 900));
    let mut s = ready(1e-9, first.clone());
    let low = find(&first, [1; 8], None, |s| s.difficulty < 0.9e-9);
    assert_eq!(
        error_of(&send(&mut s, &submit_line("w", &low)).0),
        json!([23, "Low difficulty share", null])
    );

    let good = find(&first, [2; 8], None, |s| s.difficulty > 1.1e-9);
    let mut unknown = good.clone();
    unknown.job_id = "ff".into();
    assert_eq!(
        error_of(&send(&mut s, &submit_line("w", &unknown)).0),
        json!([21, "Job not found", null])
    );
    assert_eq!(
        error_of(&send(&mut s, &submit_line("stranger", &good)).0),
        json!([24, "Unauthorized worker", null])
    );

    let mut short = good.clone();
    short.extranonce2 = vec![2; 4];
    let answer = error_of(&send(&mut s, &submit_line("w", &short)).0);
    assert_eq!(
        answer,
        json!([20, "Invalid extranonce2 size: 4 bytes, expected 8", null])
    );

    let mut old = good.clone();
    old.ntime = 1_795_503_999;
    assert_eq!(
        error_of(&send(&mut s, &submit_line("w", &old)).0),
        json!([20, "Invalid ntime: too old", null])
    );
    let mut future = good.clone();
    future.ntime = now().unix + 7201;
    let answer = error_of(&send(&mut s, &submit_line("w", &future)).0);
    assert_eq!(
        answer,
        json!([20, "Invalid ntime: too far in the future", null])
    );

    let mut rolled = good.clone();
    rolled.version_bits = Some(0x0000_1000);
    let answer = error_of(&send(&mut s, &submit_line("w", &rolled)).0);
    assert_eq!(
        answer[1],
        json!("Invalid version bits: outside the allowed mask"),
        "bit 12 is outside 1fffe000"
    );
}

#[test]
fn version_rolling_within_the_negotiated_mask_is_accepted() {
    let first = job(1, template(TIP_A, MAINNET_BITS, 900));
    let mut s = session(1e-9);
    let (answers, _) = send(
        &mut s,
        r#"{"id":1,"method":"mining.configure","params":[["version-rolling","minimum-difficulty"],{"version-rolling.mask":"00fff000"}]}"#,
    );
    assert_eq!(
        answers[0]["result"],
        json!({"version-rolling": true, "version-rolling.mask": "00ffe000", "minimum-difficulty": false})
    );
    send(
        &mut s,
        r#"{"id":2,"method":"mining.subscribe","params":[]}"#,
    );
    s.on_job(first.clone(), now(), &mut Output::default());
    send(
        &mut s,
        r#"{"id":3,"method":"mining.authorize","params":["w","x"]}"#,
    );
    let share = find(&first, [3; 8], Some(0x0012_4000), |s| s.difficulty > 1.1e-9);
    assert_eq!(
        send(&mut s, &submit_line("w", &share)).0[0]["result"],
        json!(true)
    );
    // Outside what was negotiated, inside the pool's mask: accepted, as ckpool does.
    let wider = find(&first, [3; 8], Some(0x1000_0000), |s| s.difficulty > 1.1e-9);
    assert_eq!(
        send(&mut s, &submit_line("w", &wider)).0[0]["result"],
        json!(true)
    );
    let outside = find(&first, [3; 8], Some(0x0000_0800), |s| s.difficulty > 1.1e-9);
    assert_eq!(
        error_of(&send(&mut s, &submit_line("w", &outside)).0)[0],
        json!(20)
    );
}

#[test]
fn a_new_tip_makes_old_jobs_stale_but_a_refresh_does_not() {
    let first = job(1, template(TIP_A, MAINNET_BITS, 900));
    let mut s = ready(1e-9, first.clone());
    let refresh = job(2, template(TIP_A, MAINNET_BITS, 900));
    let mut out = Output::default();
    s.on_job(refresh, now(), &mut out);
    let notify: Value = serde_json::from_slice(out.lines.last().unwrap()).unwrap();
    assert_eq!(notify["params"][8], json!(false), "same tip: not clean");
    let share = find(&first, [4; 8], None, |s| s.difficulty > 1.1e-9);
    assert_eq!(
        send(&mut s, &submit_line("w", &share)).0[0]["result"],
        json!(true)
    );

    let mut out = Output::default();
    s.on_job(job(3, template(TIP_B, MAINNET_BITS, 901)), now(), &mut out);
    let notify: Value = serde_json::from_slice(out.lines.last().unwrap()).unwrap();
    assert_eq!(notify["params"][8], json!(true), "new tip: clean");
    let late = find(&first, [5; 8], None, |s| s.difficulty > 1.1e-9);
    assert_eq!(
        error_of(&send(&mut s, &submit_line("w", &late)).0),
        json!([21, "Stale share", null])
    );
}

#[test]
fn a_block_share_yields_a_block_the_bitcoin_crate_accepts() {
    let first = job(1, template(TIP_A, REGTEST_BITS, 102));
    let mut s = ready(4.656542373906925e-10, first.clone());
    let share = find(&first, [6; 8], Some(0x0000_2000), |s| s.is_block);
    send(
        &mut s,
        r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff"}]}"#,
    );
    let (answers, out) = send(&mut s, &submit_line("w", &share));
    assert_eq!(answers[0]["result"], json!(true));
    let Some(Event::Block(found)) = out.events.iter().find(|e| matches!(e, Event::Block(_))) else {
        panic!("no block event")
    };
    let block: bitcoin::Block = bitcoin::consensus::deserialize(&found.serialize()).unwrap();
    assert!(block.check_merkle_root());
    assert_eq!(block.block_hash(), share.hash);
    assert!(block.header.validate_pow(block.header.target()).is_ok());
    assert_eq!(
        bitcoin::consensus::serialize(&block.txdata[0]),
        share.coinbase
    );
}

#[test]
fn share_difficulty_is_capped_at_the_network_difficulty() {
    let first = job(1, template(TIP_A, REGTEST_BITS, 102));
    let mut s = session(1000.0);
    send(
        &mut s,
        r#"{"id":1,"method":"mining.subscribe","params":[]}"#,
    );
    s.on_job(first, now(), &mut Output::default());
    let (answers, _) = send(
        &mut s,
        r#"{"id":2,"method":"mining.authorize","params":["w","x"]}"#,
    );
    let difficulty = answers[1]["params"][0].as_f64().unwrap();
    assert!(
        (difficulty - 4.656542373906925e-10).abs() < 1e-20,
        "{difficulty}"
    );
}

#[test]
fn suggested_difficulty_is_clamped_and_announced() {
    let mut s = ready(1e-9, job(1, template(TIP_A, MAINNET_BITS, 900)));
    let (answers, _) = send(
        &mut s,
        r#"{"id":5,"method":"mining.suggest_difficulty","params":[5000]}"#,
    );
    assert_eq!(answers[0]["result"], json!(true));
    assert_eq!(
        answers.len(),
        1,
        "bounds pin difficulty at 1e-9: nothing new to announce"
    );
    let (answers, _) = send(
        &mut s,
        r#"{"id":6,"method":"mining.suggest_difficulty","params":[-1]}"#,
    );
    assert_eq!(answers[0]["error"][0], json!(20));
}

#[test]
fn garbage_gets_errors_and_enough_of_it_closes_the_connection() {
    let mut s = session(1e-9);
    let (answers, out) = send(&mut s, "this is not json");
    assert_eq!(
        answers[0],
        json!({"id": null, "result": null, "error": [20, "invalid JSON-RPC request", null]})
    );
    assert!(!out.close);
    let (answers, _) = send(
        &mut s,
        r#"{"id":9,"method":"mining.get_transactions","params":[]}"#,
    );
    assert_eq!(
        answers[0]["error"],
        json!([20, "Unknown method mining.get_transactions", null])
    );
    let (answers, _) = send(
        &mut s,
        r#"{"id":10,"method":"mining.subscribe","params":{"a":1}}"#,
    );
    assert_eq!(answers[0]["error"][0], json!(20));
    let mut closed = false;
    for _ in 0..MAX_BAD_LINES {
        closed |= send(&mut s, "{").1.close;
    }
    assert!(closed);
}

#[test]
fn a_vardiff_change_is_announced_at_once_and_applies_from_the_next_job() {
    let config = SessionConfig {
        extranonce2_size: 8,
        version_mask: 0x1fff_e000,
        vardiff: VardiffConfig {
            start: 1e-9,
            min: 1e-10,
            max: 1e-6,
            target_share_seconds: 10.0,
            rounding: crate::vardiff::Rounding::None,
        },
        agents: Vec::new(),
    };
    let mut s = Session::new(
        Arc::new(config),
        crate::work::Extranonce1([9, 0, 0, 1]),
        now(),
    );
    let first = job(1, template(TIP_A, MAINNET_BITS, 900));
    send(
        &mut s,
        r#"{"id":1,"method":"mining.subscribe","params":[]}"#,
    );
    s.on_job(first.clone(), now(), &mut Output::default());
    send(
        &mut s,
        r#"{"id":2,"method":"mining.authorize","params":["w","x"]}"#,
    );

    // Sixteen shares at once: far faster than one per ten seconds.
    let mut announced = None;
    for extranonce2 in 0..16u8 {
        let share = find(&first, [extranonce2; 8], None, |s| s.difficulty > 4e-9);
        let (answers, _) = send(&mut s, &submit_line("w", &share));
        assert_eq!(answers[0]["result"], json!(true));
        if let Some(notice) = answers.get(1) {
            assert_eq!(notice["method"], json!("mining.set_difficulty"));
            announced = notice["params"][0].as_f64();
        }
    }
    let raised = announced.expect("vardiff raised the difficulty");
    assert!(raised > 1e-9, "{raised}");

    // The job already out keeps its difficulty; the next one takes the new one.
    let old_rules = find(&first, [20; 8], None, |s| {
        s.difficulty > 1.1e-9 && s.difficulty < raised * 0.9
    });
    assert_eq!(
        send(&mut s, &submit_line("w", &old_rules)).0[0]["result"],
        json!(true)
    );
    let second = job(2, template(TIP_A, MAINNET_BITS, 900));
    s.on_job(second.clone(), now(), &mut Output::default());
    let too_easy = find(&second, [21; 8], None, |s| {
        s.difficulty > 1.1e-9 && s.difficulty < raised * 0.9
    });
    assert_eq!(
        error_of(&send(&mut s, &submit_line("w", &too_easy)).0)[0],
        json!(23)
    );
}
