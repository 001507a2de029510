//! The job manager's own: building many groups' jobs off the runtime.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::*;
use ndas_core::chain::Network;
use ndas_core::testkit::{job_config, template, TIP_A, TIP_B};
use ndas_core::work::groups::Group;
use ndas_core::work::payout::Payout;

const ALICE: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
const BOB: &str = "bcrt1q6rz28mcfaxtmd6v789l9rrlrusdprr9pz3cppk";

fn payout(address: &str) -> Payout {
    Payout::parse(address, Network::Regtest).unwrap()
}

fn by_username(max_groups: usize) -> Arc<JobManager> {
    JobManager::new(
        job_config(),
        1,
        Payouts {
            fixed: None,
            by_username: Some(Network::Regtest),
            max_groups,
            max_new_per_source: 16,
        },
    )
}

fn tip(prev: &str) -> Arc<Template> {
    Arc::new(Template::from_json(template(prev, "207fffff", 200)).unwrap())
}

#[tokio::test(flavor = "current_thread")]
async fn many_groups_are_built_off_the_runtime_thread() {
    let manager = by_username(1000);
    let groups = manager.groups();
    let held: Vec<Arc<Group<JobFeed>>> = (0..INLINE_GROUPS + 8)
        .map(|i| {
            let script = bitcoin::ScriptBuf::from(vec![0x51, (i % 256) as u8, (i / 256) as u8]);
            let address = bitcoin::Address::p2wsh(&script, bitcoin::Network::Regtest);
            groups.join(&payout(&address.to_string()), None).unwrap()
        })
        .collect();
    assert!(
        groups.group_count() > INLINE_GROUPS,
        "{}",
        groups.group_count()
    );
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = ran.clone();
    // Ready at once: it runs as soon as the runtime's one thread is free.
    tokio::spawn(async move { other.store(true, Ordering::Relaxed) });
    manager.publish_off_runtime(tip(TIP_A)).await.unwrap();
    assert!(
        ran.load(Ordering::Relaxed),
        "the runtime thread served other tasks while the jobs were built"
    );
    assert!(held.iter().all(|group| group.current().is_some()));
    // Few groups: built inline, no thread hop.
    let few = by_username(10);
    let _group = few.groups().join(&payout(ALICE), None).unwrap();
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = ran.clone();
    tokio::spawn(async move { other.store(true, Ordering::Relaxed) });
    few.publish_off_runtime(tip(TIP_A)).await.unwrap();
    assert!(!ran.load(Ordering::Relaxed));
}

#[test]
fn a_group_whose_last_connection_left_is_not_rebuilt() {
    let manager = by_username(10);
    let groups = manager.groups();
    let alice = groups.for_username(ALICE, None).unwrap();
    let bob = groups.for_username(BOB, None).unwrap();
    manager.publish(tip(TIP_A)).unwrap();
    let bob_jobs = bob.feed.subscribe().0;
    drop(bob);
    assert_eq!(groups.group_count(), 1);
    manager.publish(tip(TIP_B)).unwrap();
    assert_eq!(*alice.current().unwrap().prev_hash(), tip(TIP_B).prev_hash);
    // Bob's channel (a receiver outlives its group here) saw no new job.
    assert_eq!(
        *bob_jobs.borrow().as_ref().unwrap().prev_hash(),
        tip(TIP_A).prev_hash
    );
}
