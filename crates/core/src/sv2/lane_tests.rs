//! Channels on an upstream pool's lanes (`crate::work::lanes`): each is
//! sent its own lane's job, from its first.

use super::tests::*;
use super::*;
use crate::work::lanes::{Lanes, Seats};
use crate::work::pool::PoolWork;

#[test]
fn each_channel_opened_on_a_pool_s_lanes_is_sent_its_own_lane_s_job_first() {
    let manager = manager(HARD);
    let fields = crate::testkit::work(&manager.fixed().unwrap().current().unwrap());
    // Two connections to the pool, one miner each.
    let lane = |lane: usize| {
        let from = PoolWork {
            pool: 0,
            lane,
            connection: 1 + lane as u64,
            work: fields.clone(),
            extranonce1: vec![0xa0 + lane as u8; 4],
            extranonce2_size: 16,
            difficulty: 1e-6,
            version_mask: 0x1fff_e000,
        };
        (lane, manager.pool_job(&from).unwrap())
    };
    let jobs = vec![lane(0), lane(1)];
    let seats = Seats::new(2, 1);
    manager.publish_pool(Lanes::new(0, seats.clone(), jobs.clone()).unwrap());
    let mut s = ready(&manager);
    let mut sent = Vec::new();
    for request in [1, 2] {
        let out = send(&mut s, extended(request));
        let job = out.messages.iter().find_map(|message| match message {
            Outbound::NewExtendedJob { job, .. } => Some(job.clone()),
            _ => None,
        });
        sent.push(job.expect("a first job"));
    }
    assert!(Arc::ptr_eq(&sent[0], &jobs[0].1), "lane 0's job");
    assert!(
        Arc::ptr_eq(&sent[1], &jobs[1].1),
        "lane 1's job, not the first lane's"
    );
    assert_eq!((seats.on(0), seats.on(1)), (1, 1));
}

#[test]
fn a_channel_on_a_pool_s_route_is_sent_the_pool_s_job_for_the_node_s() {
    use crate::testkit::{now, TIP_B};
    use crate::work::routes::{RouteTo, Routes};
    let manager = manager(HARD);
    // Every miner to pool 0 while it has a job.
    let routes = Routes::new(&[(RouteTo::Pool(0), 1.0)]).unwrap();
    manager.set_routes(routes.clone());
    let fields = crate::testkit::work(&manager.fixed().unwrap().current().unwrap());
    let from = PoolWork {
        pool: 0,
        lane: 0,
        connection: 1,
        work: fields,
        extranonce1: vec![0xa0; 4],
        extranonce2_size: 16,
        difficulty: 1e-6,
        version_mask: 0x1fff_e000,
    };
    let pool_job = manager.pool_job(&from).unwrap();
    // Opened while the pool has no job: the node's.
    let mut s = ready(&manager);
    let (key, _) = send(&mut s, extended(1)).subscribe.pop().unwrap();
    let node_job = publish(&manager, TIP_B, HARD);
    let mut out = Out::default();
    s.on_job(key, node_job.clone(), now(), &mut out);
    assert!(out.messages.iter().any(|message| matches!(message, Outbound::NewExtendedJob { job, .. } if Arc::ptr_eq(job, &node_job))));
    // The pool has one, and the connection is woken on the node's job:
    // the channel mines its route's pool's instead, and is sent that one
    // (its shares are judged on it).
    let seats = Seats::new(1, 50);
    let lanes = Lanes::new(0, seats.clone(), vec![(0, pool_job.clone())]).unwrap();
    routes.set_lanes(0, Some(Arc::new(lanes)));
    let mut out = Out::default();
    s.on_job(key, node_job.clone(), now(), &mut out);
    let sent: Vec<&Arc<Job>> = out
        .messages
        .iter()
        .filter_map(|message| match message {
            Outbound::NewExtendedJob { job, .. } => Some(job),
            _ => None,
        })
        .collect();
    assert!(!sent.is_empty());
    assert!(
        sent.iter().all(|job| Arc::ptr_eq(job, &pool_job)),
        "the pool's job, not the node's"
    );
    assert_eq!(seats.on(0), 1);
}
