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
