//! `username` mode on one connection: refusals with their reason, the
//! group a worker is paid by, and shares counted only on jobs paying the
//! worker named.

use serde_json::json;

use super::tests::{error_of, MAINNET_BITS, REGTEST_BITS};
use super::*;
use crate::chain::Network;
use crate::template::Template;
use crate::testkit::{find, now, send, session, submit_line, template, TIP_A};
use crate::work::groups::Payouts;
use crate::work::payout::Payout;

const ALICE: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
const BOB: &str = "bcrt1q6rz28mcfaxtmd6v789l9rrlrusdprr9pz3cppk";

fn manager(bits: &str) -> Arc<PayoutGroups> {
    with_fallback(bits, None)
}

fn with_fallback(bits: &str, fallback: Option<&str>) -> Arc<PayoutGroups> {
    let manager = <PayoutGroups>::new(
        crate::testkit::job_config(),
        1,
        Payouts {
            fixed: fallback.map(|address| Payout::parse(address, Network::Regtest).unwrap()),
            by_username: Some(Network::Regtest),
            max_groups: 4,
            max_new_per_source: 4,
        },
    );
    let template = Template::from_json(template(TIP_A, bits, 300)).unwrap();
    manager.publish(Arc::new(template)).unwrap();
    manager
}

fn subscribed(manager: &Arc<PayoutGroups>) -> Session {
    let mut s = session(1e-9).with_payouts(manager.clone());
    assert!(
        s.jobs().is_none(),
        "no jobs before a worker names its address"
    );
    send(
        &mut s,
        r#"{"id":1,"method":"mining.subscribe","params":["bitaxe/BM1370/v2.4.0"]}"#,
    );
    s
}

fn authorize(s: &mut Session, user: &str) -> (Vec<Value>, Output) {
    send(
        s,
        &json!({"id": 2, "method": "mining.authorize", "params": [user, "x"]}).to_string(),
    )
}

/// The job a notify line announced, as the session holds it.
fn notified(s: &Session, answers: &[Value]) -> Arc<Job> {
    let id = answers
        .iter()
        .find(|a| a["method"] == "mining.notify")
        .expect("a notify")["params"][0]
        .as_str()
        .unwrap()
        .to_owned();
    s.channel
        .jobs
        .iter()
        .find(|sent| sent.job.id.to_string() == id)
        .unwrap()
        .job
        .clone()
}

/// A connection that authorized a worker of Alice's, then one of Bob's
/// (it mines for Bob now), with the job it had for Alice.
struct TwoWorkers {
    manager: Arc<PayoutGroups>,
    session: Session,
    alice: String,
    bob: String,
    alice_job: Arc<Job>,
}

fn two_workers(bits: &str) -> TwoWorkers {
    let manager = manager(bits);
    let mut session = subscribed(&manager);
    let (alice, bob) = (format!("{ALICE}.a"), format!("{BOB}.b"));
    let (answers, _) = authorize(&mut session, &alice);
    let alice_job = notified(&session, &answers);
    authorize(&mut session, &bob);
    TwoWorkers {
        manager,
        session,
        alice,
        bob,
        alice_job,
    }
}

/// The job a connection that moved to another address was sent, with
/// `clean_jobs` so that the miner drops the old address's work.
fn switched(s: &Session, answers: &[Value], out: &Output) -> Arc<Job> {
    assert!(out.moved, "the connection's jobs come from the new group");
    let notify = answers
        .iter()
        .find(|a| a["method"] == "mining.notify")
        .expect("a notify");
    assert_eq!(notify["params"][8], json!(true));
    notified(s, answers)
}

#[test]
fn a_username_that_is_not_an_address_is_refused_with_its_reason_and_nothing_is_sent() {
    let manager = manager(MAINNET_BITS);
    let mut s = subscribed(&manager);
    for user in ["rig1", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.rig1"] {
        let (answers, out) = authorize(&mut s, user);
        assert_eq!(answers.len(), 1, "only the refusal: {answers:?}");
        let refusal = error_of(&answers);
        assert_eq!(refusal[0], json!(24));
        assert!(
            refusal[1]
                .as_str()
                .unwrap()
                .contains(user.split('.').next().unwrap()),
            "{refusal}"
        );
        assert!(!out.moved && !s.is_authorized());
    }
    assert_eq!(manager.group_count(), 0);
    // The same connection may still name a real address.
    let (answers, out) = authorize(&mut s, &format!("{ALICE}.rack1"));
    assert_eq!(answers[0]["result"], json!(true));
    assert!(out.moved);
    assert_eq!(&*notified(&s, &answers).payout.address, ALICE);
}

#[test]
fn a_share_counts_only_for_a_worker_whose_address_its_job_pays() {
    let manager = manager(MAINNET_BITS);
    let mut s = subscribed(&manager);
    let (alice, bob) = (format!("{ALICE}.a"), format!("{BOB}.b"));
    let (answers, _) = authorize(&mut s, &alice);
    let alice_job = notified(&s, &answers);
    // A second worker of another address: the connection mines for it now,
    // told to drop the old work.
    let (answers, out) = authorize(&mut s, &bob);
    let bob_job = switched(&s, &answers, &out);
    assert_eq!(&*bob_job.payout.address, BOB);

    let on_alice = find(&alice_job, [1; 8], None, |s| s.difficulty > 1.1e-9);
    let (answers, out) = send(&mut s, &submit_line(&bob, &on_alice));
    assert_eq!(error_of(&answers)[0], json!(21), "{answers:?}");
    assert!(out
        .events
        .iter()
        .all(|e| !matches!(e, Event::Share { verdict: Ok(_), .. })));
    let (answers, _) = send(&mut s, &submit_line(&alice, &on_alice));
    assert_eq!(answers[0]["result"], json!(true), "{answers:?}");

    let on_bob = find(&bob_job, [2; 8], None, |s| s.difficulty > 1.1e-9);
    let (answers, _) = send(&mut s, &submit_line(&alice, &on_bob));
    assert_eq!(error_of(&answers)[0], json!(21));
    let (answers, _) = send(&mut s, &submit_line(&bob, &on_bob));
    assert_eq!(answers[0]["result"], json!(true));
}

#[test]
fn a_block_on_a_job_of_the_other_address_is_still_submitted() {
    let TwoWorkers {
        manager,
        session: mut s,
        alice,
        bob,
        alice_job,
    } = two_workers(REGTEST_BITS);
    // Another of Alice's machines keeps her group (and its figures) alive.
    let mut rig = subscribed(&manager);
    authorize(&mut rig, &format!("{ALICE}.rig2"));
    let block = find(&alice_job, [3; 8], None, |share| share.is_block);
    let (answers, out) = send(&mut s, &submit_line(&bob, &block));
    assert_eq!(error_of(&answers)[0], json!(21));
    let found = out.events.iter().find_map(|e| match e {
        Event::Block(block) => Some(block),
        _ => None,
    });
    let found = found.expect("the block goes to the node");
    assert_eq!(&*found.job.payout.address, ALICE);
    assert_eq!(
        found.job.payout,
        Payout::parse(ALICE, Network::Regtest).unwrap()
    );
    // Recorded for the worker and the address it pays, not Bob's.
    assert_eq!(&*found.worker, alice);
    let payouts = manager.snapshot(10);
    let row = |address: &str| {
        payouts["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["address"] == json!(address))
            .cloned()
            .unwrap()
    };
    assert_eq!(row(ALICE)["blocks"], json!(1), "{payouts}");
    assert_eq!(row(BOB)["blocks"], json!(0), "{payouts}");
}

#[test]
fn a_block_on_a_job_of_an_address_no_worker_names_is_recorded_for_the_address() {
    let TwoWorkers {
        session: mut s,
        bob,
        alice_job,
        ..
    } = two_workers(REGTEST_BITS);
    // The Alice worker's name is gone (as after a resume that restored
    // her parked jobs to a connection of Bob's).
    s.channel.workers.retain(|w| *w.name == *bob);
    let block = find(&alice_job, [5; 8], None, |share| share.is_block);
    let (_, out) = send(&mut s, &submit_line(&bob, &block));
    let found = out.events.iter().find_map(|e| match e {
        Event::Block(block) => Some(block),
        _ => None,
    });
    assert_eq!(&*found.expect("submitted").worker, ALICE);
}

#[test]
fn with_a_fallback_a_username_that_is_not_an_address_mines_for_the_pool() {
    let pool = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn";
    let manager = with_fallback(MAINNET_BITS, Some(pool));
    let mut s = subscribed(&manager);
    let (answers, out) = authorize(&mut s, "acct.rig1");
    assert_eq!(answers[0]["result"], json!(true));
    assert!(out.moved);
    assert_eq!(&*notified(&s, &answers).payout.address, pool);
    // Told, with the reason, for the operator to see.
    let fell_back = |out: &Output| {
        out.events.iter().find_map(|e| match e {
            Event::FellBack { worker, why } => Some((worker.clone(), why.clone())),
            _ => None,
        })
    };
    let (worker, why) = fell_back(&out).expect("a fallback event");
    assert_eq!(&*worker, "acct.rig1");
    assert!(why.contains("`acct` is not a Bitcoin address"), "{why}");
    // Once per name on a connection.
    let (_, out) = authorize(&mut s, "acct.rig1");
    assert!(fell_back(&out).is_none());
    // A second connection naming its own address mines for it, untold.
    let mut other = subscribed(&manager);
    let (answers, out) = authorize(&mut other, &format!("{ALICE}.rig2"));
    assert_eq!(&*notified(&other, &answers).payout.address, ALICE);
    assert!(fell_back(&out).is_none());
}

#[test]
fn a_connection_holds_only_the_group_it_mines_for() {
    let TwoWorkers {
        manager,
        session: mut s,
        alice,
        ..
    } = two_workers(MAINNET_BITS);
    // Alice's group went with the switch: names do not hold groups.
    assert_eq!(manager.group_count(), 1);
    // Alice authorized again: her group back, her job sent clean.
    let (answers, out) = authorize(&mut s, &alice);
    assert_eq!(&*switched(&s, &answers, &out).payout.address, ALICE);
    assert_eq!(manager.group_count(), 1);
    drop(s);
    assert_eq!(manager.group_count(), 0);
}

#[test]
fn a_broken_share_on_another_address_s_job_gets_its_own_reason() {
    let TwoWorkers {
        session: mut s,
        bob,
        alice_job,
        ..
    } = two_workers(MAINNET_BITS);
    let share = find(&alice_job, [4; 8], None, |s| s.difficulty > 1.1e-9);
    let mut line: Value = serde_json::from_str(&submit_line(&bob, &share)).unwrap();
    line["params"][2] = json!("0011");
    let (answers, out) = send(&mut s, &line.to_string());
    let refusal = error_of(&answers);
    assert!(
        refusal[1].as_str().unwrap().contains("extranonce2"),
        "{refusal}"
    );
    assert!(out.events.iter().any(|e| matches!(
        e,
        Event::Share { verdict: Err(reject), .. } if reject.proves_broken_client()
    )));
}

#[test]
fn a_resume_after_authorizing_another_address_drops_the_parked_work() {
    let manager = manager(MAINNET_BITS);
    let allocator = Arc::new(crate::work::ExtranonceAllocator::new(9));
    let resumptions = Arc::new(crate::session::Resumptions::new(
        allocator.clone(),
        std::time::Duration::from_secs(600),
    ));
    let config = session(1e-9).channel.config().clone();
    let leased = || {
        let lease = allocator.allocate().unwrap();
        Session::leased(config.clone(), lease, resumptions.clone(), now())
            .with_payouts(manager.clone())
    };
    let mut old = leased();
    let (answers, _) = send(
        &mut old,
        r#"{"id":1,"method":"mining.subscribe","params":["cgminer/4.12.1"]}"#,
    );
    let id = answers[0]["result"][1].as_str().unwrap().to_owned();
    let (answers, _) = authorize(&mut old, &format!("{ALICE}.a"));
    assert_eq!(&*notified(&old, &answers).payout.address, ALICE);
    old.retire(now().instant);

    // Authorized as Bob first, then resumed with Alice's old session id.
    let mut back = leased();
    authorize(&mut back, &format!("{BOB}.b"));
    let resume =
        format!(r#"{{"id":1,"method":"mining.subscribe","params":["cgminer/4.12.1","{id}"]}}"#);
    let (answers, out) = send(&mut back, &resume);
    assert!(out.events.iter().any(|e| matches!(e, Event::Resumed)));
    let notify = answers
        .iter()
        .find(|a| a["method"] == "mining.notify")
        .expect("a notify");
    assert_eq!(notify["params"][8], json!(true), "drop Alice's work");
    assert_eq!(&*notified(&back, &answers).payout.address, BOB);
}

#[test]
fn parked_jobs_are_bounded_in_bytes_and_a_shared_job_counts_once() {
    let manager = manager(MAINNET_BITS);
    let allocator = Arc::new(crate::work::ExtranonceAllocator::new(9));
    let config = session(1e-9).channel.config().clone();
    let parking = |max_bytes| {
        let window = std::time::Duration::from_secs(600);
        let resumptions = crate::session::Resumptions::new(allocator.clone(), window);
        Arc::new(resumptions.with_max_bytes(max_bytes))
    };
    let leased = |resumptions: &Arc<crate::session::Resumptions>, user: &str| {
        let lease = allocator.allocate().unwrap();
        let mut s = Session::leased(config.clone(), lease, resumptions.clone(), now())
            .with_payouts(manager.clone());
        send(
            &mut s,
            r#"{"id":1,"method":"mining.subscribe","params":["churn/1"]}"#,
        );
        let (answers, _) = authorize(&mut s, user);
        assert_eq!(answers[0]["result"], json!(true), "{answers:?}");
        s
    };
    // The churner: a fresh address, its job taken, the connection closed.
    let bounded = parking(10_000);
    for i in 0..20 {
        leased(&bounded, &crate::client::payout_address(i)).retire(now().instant);
    }
    let bytes = bounded.bytes();
    assert!(bytes > 0 && bytes <= 10_000, "{bytes}");
    assert!(bounded.len() < 20, "the oldest went");
    // Sessions that were sent the same job keep one copy, counted once
    // (a fleet's blip in `fixed` mode, or a keeper connection holding the
    // group while others churn).
    let shared = parking(10_000);
    let alice: Vec<Session> = (0..6).map(|_| leased(&shared, ALICE)).collect();
    let one_job = crate::session::resume::job_bytes(&alice[0].channel.jobs[0].job);
    alice.into_iter().for_each(|s| s.retire(now().instant));
    assert_eq!((shared.len(), shared.bytes()), (6, one_job));
}

#[test]
fn a_worker_of_another_address_on_a_pool_s_lanes_is_sent_its_lane_s_job() {
    use crate::work::lanes::{Lanes, Seats};
    let manager = manager(REGTEST_BITS);
    let node = crate::testkit::job(1, template(TIP_A, REGTEST_BITS, 300));
    let seats = Seats::new(2, 1);
    let lane = |lane: usize| {
        let from = crate::work::pool::PoolWork {
            pool: 0,
            lane,
            connection: 1 + lane as u64,
            work: crate::testkit::work(&node),
            extranonce1: vec![0xb0 + lane as u8; 4],
            extranonce2_size: 16,
            difficulty: 1e-6,
            version_mask: 0x1fff_e000,
        };
        (lane, manager.pool_job(&from).unwrap())
    };
    manager.publish_pool(Lanes::new(0, seats.clone(), vec![lane(0), lane(1)]).unwrap());
    let mut s = subscribed(&manager);
    let (answers, _) = authorize(&mut s, &format!("{ALICE}.a"));
    let first = notified(&s, &answers);
    assert!(
        first.lanes.is_none() && first.pool.is_some(),
        "a lane's job"
    );
    // Another address's worker: the same pool's lanes, and still one seat.
    let (answers, out) = authorize(&mut s, &format!("{BOB}.b"));
    let second = switched(&s, &answers, &out);
    assert!(
        second.lanes.is_none(),
        "a lane's job, never what carries them"
    );
    assert_eq!(seats.seated(), 1);
}
