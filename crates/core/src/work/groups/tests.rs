use super::*;
use crate::testkit::{job_config, template, TIP_A, TIP_B};

const ALICE: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
const BOB: &str = "bcrt1q6rz28mcfaxtmd6v789l9rrlrusdprr9pz3cppk";
const POOL: &str = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn";

fn payout(address: &str) -> Payout {
    Payout::parse(address, Network::Regtest).unwrap()
}

fn by_username(fallback: Option<&str>, max_groups: usize) -> Arc<PayoutGroups> {
    <PayoutGroups>::new(
        job_config(),
        1,
        Payouts {
            fixed: fallback.map(payout),
            by_username: Some(Network::Regtest),
            max_groups,
            max_new_per_source: 16,
        },
    )
}

fn tip(prev: &str) -> Arc<Template> {
    Arc::new(Template::from_json(template(prev, "207fffff", 200)).unwrap())
}

/// The address a job's main output pays, read back from its coinbase.
fn pays(job: &Job) -> Vec<u8> {
    let mut bytes = Vec::new();
    job.coinbase.write_for_block(&[0; 4], &[0; 8], &mut bytes);
    let tx: bitcoin::Transaction = bitcoin::consensus::deserialize(&bytes).unwrap();
    tx.output[0].script_pubkey.to_bytes()
}

#[test]
fn fixed_mode_has_one_group_for_every_username_and_builds_one_job() {
    let manager = <PayoutGroups>::new(
        job_config(),
        1,
        Payouts {
            fixed: Some(payout(POOL)),
            by_username: None,
            max_groups: 1,
            max_new_per_source: 16,
        },
    );
    let group = manager.for_username("not-an-address.rig1", None).unwrap();
    assert!(Arc::ptr_eq(&group, &manager.fixed().unwrap()));
    let job = manager.publish(tip(TIP_A)).unwrap().unwrap();
    assert_eq!(pays(&job), &*payout(POOL).script);
    assert_eq!(manager.group_count(), 1);
    assert!(Arc::ptr_eq(&group.current().unwrap(), &job));
}

#[test]
fn each_address_mines_its_own_coinbase_and_a_new_group_gets_the_current_template_at_once() {
    let manager = by_username(None, 10);
    manager.publish(tip(TIP_A)).unwrap();
    let alice = manager
        .for_username(&format!("{ALICE}.rack1"), None)
        .unwrap();
    let also_alice = manager.for_username(ALICE, None).unwrap();
    assert!(Arc::ptr_eq(&alice, &also_alice), "one group per address");
    let bob = manager.for_username(&format!("{BOB}.s19"), None).unwrap();
    let (a, b) = (alice.current().unwrap(), bob.current().unwrap());
    assert_eq!(pays(&a), &*payout(ALICE).script);
    assert_eq!(pays(&b), &*payout(BOB).script);
    assert_ne!(a.id, b.id);
    // The parts every job of a template shares are shared, not rebuilt.
    assert!(Arc::ptr_eq(&a.branch, &b.branch));
    assert_eq!(a.notify(true).len(), b.notify(true).len());

    manager.publish(tip(TIP_B)).unwrap();
    let tip_b = tip(TIP_B).prev_hash;
    assert_eq!(*alice.current().unwrap().prev_hash(), tip_b);
    assert_eq!(*bob.current().unwrap().prev_hash(), tip_b);
}

#[test]
fn more_addresses_than_allowed_are_refused_until_one_leaves() {
    let manager = by_username(None, 2);
    let alice = manager.for_username(ALICE, None).unwrap();
    let pool = manager.for_username(POOL, None).unwrap();
    // Before a share, they wait for one: as many wait as may be mined for.
    let waiting = manager.for_username(BOB, None).unwrap_err();
    assert_eq!(waiting, JoinError::Waiting { max: 2 });
    // Mined on: each proved by an accepted share, they fill the limit.
    for group in [&alice, &pool] {
        group.record_share(1.0, false, std::time::Instant::now());
    }
    let refused = manager.for_username(BOB, None).unwrap_err();
    assert_eq!(refused, JoinError::Full { max: 2 });
    assert!(
        refused.to_string().contains("mining.max_payout_groups"),
        "{refused}"
    );
    // A worker of an address already mined for is never refused.
    assert!(manager.for_username(&format!("{ALICE}.rig2"), None).is_ok());
    drop(pool);
    assert!(manager.for_username(BOB, None).is_ok());
    drop(alice);
}

#[test]
fn a_username_that_is_not_an_address_is_refused_with_the_reason_or_falls_back() {
    let manager = by_username(None, 10);
    for (username, reason) in [
        ("rig1", "is not a Bitcoin address"),
        // Mainnet and testnet addresses on a regtest pool.
        (
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.rig",
            "is not an address of regtest",
        ),
        (
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            "is not an address of regtest",
        ),
        // A bech32 address with a bad checksum.
        (
            "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt081",
            "is not a Bitcoin address",
        ),
    ] {
        let refusal = manager
            .for_username(username, None)
            .unwrap_err()
            .to_string();
        assert!(refusal.contains(reason), "{username}: {refusal}");
        assert!(refusal.contains("address.worker"), "{refusal}");
    }
    assert_eq!(manager.group_count(), 0);
    // The fallback's group is not one of the bounded ones.
    let fallback = by_username(Some(POOL), 1);
    let group = fallback.for_username("rig1", None).unwrap();
    assert_eq!(&*group.payout.address, POOL);
    let own = fallback.for_username(ALICE, None).unwrap();
    assert_eq!(&*own.payout.address, ALICE);
    assert_eq!(fallback.group_count(), 2);
}

#[test]
fn a_new_tip_goes_to_the_groups_with_the_most_hashrate_first() {
    let manager = by_username(None, 10);
    let idle = manager.for_username(ALICE, None).unwrap();
    let busy = manager.for_username(BOB, None).unwrap();
    let now = std::time::Instant::now();
    busy.record_share(1e6, false, now);
    let first = manager.publish(tip(TIP_A)).unwrap().unwrap();
    assert!(Arc::ptr_eq(&first, &busy.current().unwrap()));
    assert!(busy.current().unwrap().id < idle.current().unwrap().id);
    // And the other way round once the other one hashes more.
    idle.record_share(1e9, false, now);
    let first = manager.publish(tip(TIP_B)).unwrap().unwrap();
    assert!(Arc::ptr_eq(&first, &idle.current().unwrap()));
}

#[test]
fn a_run_restarted_a_second_later_reuses_none_of_its_ids() {
    use std::time::{Duration, UNIX_EPOCH};
    let started = UNIX_EPOCH + Duration::from_secs(1_795_487_027);
    let payout = Payout::parse(
        "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn",
        crate::chain::Network::Regtest,
    )
    .unwrap();
    let run = |at| {
        <PayoutGroups>::new(
            job_config(),
            crate::work::job::first_job_id(at),
            Payouts {
                fixed: Some(payout.clone()),
                by_username: None,
                max_groups: 1,
                max_new_per_source: 1,
            },
        )
    };
    let tip = || {
        Template::from_json(crate::testkit::template(
            crate::testkit::TIP_A,
            "207fffff",
            200,
        ))
        .unwrap()
    };
    // The first run hands out 300 ids (a refresh of 300 payout
    // groups), then restarts a second later.
    let first = run(started);
    let mut last = 0;
    for _ in 0..300 {
        last = first.publish(Arc::new(tip())).unwrap().unwrap().id.0;
    }
    let second = run(started + Duration::from_secs(1));
    let next = second.publish(Arc::new(tip())).unwrap().unwrap().id.0;
    assert!(next > last, "restart's first id {next:x} <= {last:x}");
    // A run that starts within the same second is apart by the time between.
    let soon = run(started + Duration::from_millis(1));
    assert!(soon.publish(Arc::new(tip())).unwrap().unwrap().id.0 > last);
    assert_eq!(crate::work::job::first_job_id(UNIX_EPOCH), 1);
}

#[test]
fn a_pool_s_job_is_every_group_s_a_group_joined_meanwhile_s_too_until_a_template_returns() {
    let manager = by_username(None, 10);
    manager.publish(tip(TIP_A)).unwrap();
    let alice = manager.for_username(ALICE, None).unwrap();
    // A node's job's fields stand for a pool's.
    let fields = crate::testkit::work(&alice.current().unwrap());
    manager.withdraw();
    assert!(manager.is_withdrawn());
    let mut from = crate::work::pool::PoolWork {
        pool: 0,
        lane: 0,
        connection: 1,
        work: fields,
        extranonce1: vec![1; 4],
        extranonce2_size: 12,
        difficulty: 2.0,
        version_mask: 0x1fff_e000,
    };
    let seats = crate::work::lanes::Seats::new(1, 50);
    let lanes = |job| crate::work::lanes::Lanes::new(0, seats.clone(), vec![(0, job)]).unwrap();
    let job = manager.publish_pool(lanes(manager.pool_job(&from).unwrap()));
    assert!(!manager.is_withdrawn());
    assert!(Arc::ptr_eq(&alice.current().unwrap(), &job));
    let bob = manager.for_username(BOB, None).unwrap();
    assert!(
        Arc::ptr_eq(&bob.current().unwrap(), &job),
        "one job for all"
    );
    // A pool whose extranonce2 leaves no slice is refused, and the groups
    // keep the job they had.
    from.extranonce2_size = 11;
    assert!(manager.pool_job(&from).is_err());
    assert!(Arc::ptr_eq(&alice.current().unwrap(), &job));

    manager.publish(tip(TIP_B)).unwrap();
    assert!(bob.current().unwrap().pool.is_none());
    assert_eq!(pays(&bob.current().unwrap()), &*payout(BOB).script);
}
