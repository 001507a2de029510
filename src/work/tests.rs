//! The job manager's own: building many groups' jobs off the runtime.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::*;
use ndas_core::chain::Network;
use ndas_core::testkit::{job_config, template, TIP_A, TIP_B};
use ndas_core::work::groups::Group;
use ndas_core::work::payout::Payout;
use ndas_core::work::pool::PoolWork;

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

/// The job stage running with pools `names`, each fed by the returned
/// senders, a grace of a minute: the node side's sender, the pools',
/// and what stops it.
struct PoolStage {
    templates: watch::Sender<Option<crate::node::handoff::NewTemplate>>,
    pools: Vec<watch::Sender<crate::upstream::links::LaneWork>>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

const GRACE: std::time::Duration = std::time::Duration::from_secs(60);

fn pool_stage(manager: &Arc<JobManager>, names: &[&str]) -> PoolStage {
    let (templates, template_feed) = watch::channel(None);
    let (built, _) = watch::channel(0);
    let (senders, feeds): (Vec<_>, Vec<_>) = names
        .iter()
        .map(|_| {
            let (sender, work) = watch::channel(Vec::new());
            let seats = ndas_core::work::lanes::Seats::new(4, 2);
            (sender, crate::upstream::links::PoolFeed { work, seats })
        })
        .unzip();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(
        manager.clone(),
        JobsIn {
            templates: template_feed,
            built,
        },
        (
            Pools {
                feeds,
                names: names.iter().map(|n| n.to_string()).collect(),
                grace: GRACE,
            },
            None,
        ),
        Events::new(Vec::new()),
        shutdown.clone(),
    ));
    PoolStage {
        templates,
        pools: senders,
        shutdown,
        task,
    }
}

/// A job stage with the pools `names`, and Alice's group on a node's job
/// whose fields the pools' jobs are made of.
fn alice_on_pools(
    names: &[&str],
) -> (
    Arc<JobManager>,
    Arc<Group<JobFeed>>,
    ndas_core::client::Work,
    PoolStage,
) {
    let manager = by_username(10);
    let alice = manager.groups().for_username(ALICE, None).unwrap();
    manager.publish(tip(TIP_A)).unwrap();
    let fields = ndas_core::testkit::work(&alice.current().unwrap());
    let stage = pool_stage(&manager, names);
    (manager, alice, fields, stage)
}

impl PoolStage {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

/// A pool's job made of `fields`, on its first connection alone.
fn pool_work(
    fields: &ndas_core::client::Work,
    pool: usize,
    extranonce2_size: usize,
    difficulty: f64,
) -> crate::upstream::links::LaneWork {
    vec![lane_work(fields, pool, 0, extranonce2_size, difficulty)]
}

/// Lane `lane`'s job of a pool made of `fields`.
fn lane_work(
    fields: &ndas_core::client::Work,
    pool: usize,
    lane: usize,
    extranonce2_size: usize,
    difficulty: f64,
) -> Option<Arc<PoolWork>> {
    Some(Arc::new(PoolWork {
        pool,
        lane,
        connection: 1 + lane as u64,
        work: fields.clone(),
        extranonce1: vec![1; 4],
        extranonce2_size,
        difficulty,
        version_mask: 0x1fff_e000,
    }))
}

async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
}

/// The job stage with no node: a pool's jobs, a grace when the pool has
/// none, then the work withdrawn; a template brings the node's back.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn with_no_node_groups_mine_a_pool_s_job_and_lose_it_only_after_the_grace() {
    let (manager, alice, fields, stage) = alice_on_pools(&["backup"]);
    let pool = &stage.pools[0];
    pool.send_replace(pool_work(&fields, 0, 12, 1.0));
    // No node serves.
    stage.templates.send_replace(None);
    settle().await;
    assert!(alice.current().unwrap().pool.is_some(), "on the pool's job");

    // The pool reconnects: miners stay on its last job for the grace.
    let last = pool.send_replace(Vec::new());
    tokio::time::sleep(GRACE - std::time::Duration::from_secs(1)).await;
    assert!(alice.current().unwrap().pool.is_some());
    assert!(!manager.groups().is_withdrawn());
    pool.send_replace(last);
    settle().await;
    pool.send_replace(Vec::new());
    tokio::time::sleep(GRACE + std::time::Duration::from_secs(1)).await;
    assert!(alice.current().is_none(), "withdrawn after the grace");
    assert!(manager.groups().is_withdrawn());

    // A node serves again.
    stage
        .templates
        .send_replace(Some(crate::node::handoff::NewTemplate {
            template: tip(TIP_B),
            noticed: std::time::Instant::now(),
            new_tip: true,
            seq: 1,
        }));
    settle().await;
    let job = alice.current().unwrap();
    assert!(job.pool.is_none());
    assert_eq!(*job.prev_hash(), tip(TIP_B).prev_hash);
    stage.stop().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_unusable_pool_job_is_passed_over_and_same_block_updates_are_paced() {
    let (manager, alice, fields, stage) = alice_on_pools(&["first", "second"]);
    let (first, second) = (&stage.pools[0], &stage.pools[1]);
    // The first pool's extranonce2 leaves miners no room.
    first.send_replace(pool_work(&fields, 0, 4, 1.0));
    second.send_replace(pool_work(&fields, 1, 12, 1.0));
    stage.templates.send_replace(None);
    settle().await;
    let on = alice.current().unwrap();
    assert_eq!(on.pool.as_ref().unwrap().pool, 1, "the second pool's job");

    // Three updates on the same block at once: the newest goes out a
    // second after the last job, the others never.
    for difficulty in [2.0, 3.0, 4.0] {
        second.send_replace(pool_work(&fields, 1, 12, difficulty));
        settle().await;
    }
    assert!(Arc::ptr_eq(&alice.current().unwrap(), &on), "held");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let newest = alice.current().unwrap();
    assert_eq!(
        newest.pool.as_ref().unwrap().target,
        ndas_core::chain::Target::from_difficulty(4.0)
    );
    assert_eq!(newest.id.0, on.id.0 + 1, "one job between");

    // An update held for its turn, then the pool gone: the grace runs
    // from then (the held turn must not keep the stage awake), and the
    // work is withdrawn after it.
    second.send_replace(pool_work(&fields, 1, 12, 5.0));
    settle().await;
    second.send_replace(Vec::new());
    tokio::time::sleep(GRACE - std::time::Duration::from_secs(1)).await;
    assert!(alice.current().is_some(), "on the last job for the grace");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(manager.groups().is_withdrawn());
    stage.stop().await;
}

/// The lanes' jobs of `job` (what the groups were given of a pool), by lane.
fn lanes(job: &ndas_core::work::Job) -> Vec<(usize, Arc<ndas_core::work::Job>)> {
    job.lanes.as_ref().expect("a pool's lanes").jobs().to_vec()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_new_block_reaches_every_lane_in_one_fan_out_and_a_new_lane_waits_its_turn() {
    let (_manager, alice, fields, stage) = alice_on_pools(&["backup"]);
    let pool = &stage.pools[0];
    pool.send_replace(pool_work(&fields, 0, 12, 1.0));
    stage.templates.send_replace(None);
    settle().await;
    let one = alice.current().unwrap();
    assert_eq!(lanes(&one).len(), 1);

    // A second connection is ready: its miners can wait a second.
    pool.send_modify(|work| work.push(lane_work(&fields, 0, 1, 12, 1.0)));
    settle().await;
    assert!(Arc::ptr_eq(&alice.current().unwrap(), &one), "held");
    tokio::time::sleep(MIN_POOL_JOB_INTERVAL).await;
    let two = alice.current().unwrap();
    let jobs = lanes(&two);
    assert_eq!(
        jobs.iter().map(|(lane, _)| *lane).collect::<Vec<_>>(),
        [0, 1]
    );
    assert!(
        Arc::ptr_eq(&jobs[0].1, &lanes(&one)[0].1),
        "an unchanged lane's job is not built again: its miners are sent nothing"
    );

    // A new block on lane 1, then on lane 0 a few milliseconds later, as a
    // pool sends it down each connection: one fan-out with both, within
    // URGENT_GATHER, whatever the second's pace.
    let mut next = fields.clone();
    next.prev_hash = [0x77; 32];
    pool.send_modify(|work| work[1] = lane_work(&next, 0, 1, 12, 1.0));
    settle().await;
    assert!(Arc::ptr_eq(&alice.current().unwrap(), &two), "gathering");
    pool.send_modify(|work| work[0] = lane_work(&next, 0, 0, 12, 1.0));
    tokio::time::sleep(URGENT_GATHER).await;
    let moved = lanes(&alice.current().unwrap());
    assert!(moved.iter().all(|(_, job)| job.prev_hash().0 == [0x77; 32]));
    // Lane 0's connection is gone: its miners move, URGENT_GATHER after
    // the last fan-out at most.
    pool.send_modify(|work| work[0] = None);
    tokio::time::sleep(URGENT_GATHER).await;
    let left = lanes(&alice.current().unwrap());
    assert_eq!(left.iter().map(|(lane, _)| *lane).collect::<Vec<_>>(), [1]);
    // A lane's new extranonce1 (a new connection number) on the same
    // block: not held for the second's pace either.
    pool.send_modify(|work| {
        let mut renewed = PoolWork::clone(work[1].as_ref().unwrap());
        renewed.connection += 10;
        work[1] = Some(Arc::new(renewed));
    });
    tokio::time::sleep(URGENT_GATHER).await;
    let renewed = lanes(&alice.current().unwrap());
    assert_eq!(renewed[0].1.pool.as_ref().unwrap().connection, 12);
    stage.stop().await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_lane_left_on_the_last_block_is_left_out_after_the_lag_until_it_catches_up() {
    let (_manager, alice, fields, stage) = alice_on_pools(&["backup"]);
    let pool = &stage.pools[0];
    pool.send_replace(vec![
        lane_work(&fields, 0, 0, 12, 1.0),
        lane_work(&fields, 0, 1, 12, 1.0),
    ]);
    stage.templates.send_replace(None);
    settle().await;
    let on = |lanes: Vec<(usize, Arc<ndas_core::work::Job>)>| -> Vec<(usize, u8)> {
        lanes
            .iter()
            .map(|(lane, job)| (*lane, job.prev_hash().0[0]))
            .collect()
    };
    let a = fields.prev_hash[0];
    assert_eq!(on(lanes(&alice.current().unwrap())), [(0, a), (1, a)]);

    // The pool's new block reaches lane 1; lane 0's connection never gets it.
    let mut next = fields.clone();
    next.prev_hash = [0x77; 32];
    pool.send_modify(|work| work[1] = lane_work(&next, 0, 1, 12, 1.0));
    tokio::time::sleep(URGENT_GATHER).await;
    settle().await;
    assert_eq!(on(lanes(&alice.current().unwrap())), [(0, a), (1, 0x77)]);
    // Its miners are not left on the last block past the lag.
    tokio::time::sleep(LANE_LAG - URGENT_GATHER).await;
    assert_eq!(on(lanes(&alice.current().unwrap())), [(1, 0x77)]);
    // It catches up: back, at the pace of a new lane.
    pool.send_modify(|work| work[0] = lane_work(&next, 0, 0, 12, 1.0));
    tokio::time::sleep(MIN_POOL_JOB_INTERVAL).await;
    settle().await;
    assert_eq!(on(lanes(&alice.current().unwrap())), [(0, 0x77), (1, 0x77)]);
    stage.stop().await;
}
