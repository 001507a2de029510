use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::testkit::{job, template};
use crate::work::lanes::Seats;

const POOL: usize = 0;

/// 70 % to the node, 30 % to pool 0.
fn seventy_thirty() -> Arc<Routes> {
    Routes::new(&[(RouteTo::Node, 70.0), (RouteTo::Pool(POOL), 30.0)]).unwrap()
}

/// Pool 0 has a job.
fn pool_up(routes: &Routes) {
    let raw = template(&"11".repeat(32), "207fffff", 300);
    let lanes = Lanes::new(POOL, Seats::new(1, 50), vec![(0, job(1, raw))]).unwrap();
    routes.set_lanes(POOL, Some(Arc::new(lanes)));
}

fn on<T: std::borrow::Borrow<Ticket>>(tickets: &[T], route: usize) -> usize {
    tickets
        .iter()
        .filter(|t| t.borrow().route() == route)
        .count()
}

/// Each miner's accepted difficulty for one plan's time at its `rate`,
/// then a plan; returns how many moved.
fn mine_a_plan(planner: &mut Planner, now: &mut Instant, miners: &[(Ticket, f64)]) -> usize {
    *now += PLAN_EVERY;
    for (ticket, rate) in miners {
        ticket.credit(rate * PLAN_EVERY.as_secs_f64());
    }
    planner.plan(*now)
}

/// The part of `miners`' rates on the pool's route.
fn pool_part(miners: &[(Ticket, f64)]) -> f64 {
    let total: f64 = miners.iter().map(|(_, rate)| rate).sum();
    let pool: f64 = miners
        .iter()
        .filter(|(t, _)| t.route() == 1)
        .map(|(_, rate)| rate)
        .sum();
    pool / total
}

#[test]
fn miners_join_the_route_furthest_below_its_weight_and_only_routes_with_work() {
    let routes = seventy_thirty();
    // The pool has no job yet: every miner mines for the node.
    let early: Vec<Ticket> = (0..4).map(|_| routes.join()).collect();
    assert_eq!(on(&early, 0), 4);
    drop(early);
    let mut planner = Planner::new(routes.clone(), Instant::now());
    planner.plan(Instant::now());
    pool_up(&routes);
    let tickets: Vec<Ticket> = (0..10).map(|_| routes.join()).collect();
    assert_eq!((on(&tickets, 0), on(&tickets, 1)), (7, 3));
    let to_node = tickets.iter().find(|t| t.route() == 0).unwrap();
    assert!(routes.lanes_for(to_node).is_none());
    let to_pool = tickets.iter().find(|t| t.route() == 1).unwrap();
    assert!(routes.lanes_for(to_pool).is_some());
}

#[test]
fn whole_miners_move_by_the_difficulty_they_had_accepted_not_by_their_count() {
    let routes = seventy_thirty();
    let mut now = Instant::now();
    let mut planner = Planner::new(routes.clone(), now);
    // One miner eight times the others', all on the node while the pool
    // has no job.
    let mut miners: Vec<(Ticket, f64)> = vec![(routes.join(), 8.0)];
    miners.extend((0..8).map(|_| (routes.join(), 1.0)));
    assert!(miners.iter().all(|(t, _)| t.route() == 0));
    planner.plan(now);
    mine_a_plan(&mut planner, &mut now, &miners);
    pool_up(&routes);
    let mut moved = 0;
    for _ in 0..6 {
        moved += mine_a_plan(&mut planner, &mut now, &miners);
    }
    // 30 % of 16 is 4.8: five of the small miners (31 %), never the large
    // one (50 %), nor three miners as a count would (19 % or 62 %).
    assert_eq!(miners[0].0.route(), 0, "the large miner stays");
    assert!(
        (pool_part(&miners) - 5.0 / 16.0).abs() < 1e-9,
        "{}",
        pool_part(&miners)
    );
    assert_eq!(moved, 5, "each miner moved once");
    // At the split, later plans move nobody.
    for _ in 0..5 {
        assert_eq!(mine_a_plan(&mut planner, &mut now, &miners), 0);
    }
    let figures = routes.figures();
    assert_eq!((figures[0].miners, figures[1].miners), (4, 5));
    assert!((figures[1].weight - 0.3).abs() < 1e-9);
    assert!(figures[1].available && figures[1].share > 0.0);
}

#[test]
fn a_plan_moves_at_most_a_quarter_of_the_miners() {
    let routes = Routes::new(&[(RouteTo::Node, 1.0), (RouteTo::Pool(POOL), 1.0)]).unwrap();
    let mut now = Instant::now();
    let mut planner = Planner::new(routes.clone(), now);
    let miners: Vec<(Ticket, f64)> = (0..40).map(|_| (routes.join(), 1.0)).collect();
    planner.plan(now);
    pool_up(&routes);
    assert_eq!(mine_a_plan(&mut planner, &mut now, &miners), 10);
    assert_eq!(mine_a_plan(&mut planner, &mut now, &miners), 10);
    assert_eq!(mine_a_plan(&mut planner, &mut now, &miners), 0);
    assert_eq!(pool_part(&miners), 0.5);
}

/// 70/30 with the pool up, ten equal miners joined and measured once.
fn ten_measured_miners() -> (Arc<Routes>, Planner, Instant, Vec<(Ticket, f64)>) {
    let routes = seventy_thirty();
    let mut now = Instant::now();
    let mut planner = Planner::new(routes.clone(), now);
    pool_up(&routes);
    let miners: Vec<(Ticket, f64)> = (0..10).map(|_| (routes.join(), 1.0)).collect();
    planner.plan(now);
    mine_a_plan(&mut planner, &mut now, &miners);
    (routes, planner, now, miners)
}

#[test]
fn a_pool_without_work_lends_its_miners_to_the_node_and_gets_them_back_unmoved() {
    let (routes, mut planner, mut now, miners) = ten_measured_miners();
    assert!((pool_part(&miners) - 0.3).abs() < 1e-9);

    // The pool reconnects: its route's miners mine the node's jobs, are
    // shown there, and stay on their route; nobody else moves, and a new
    // miner joins the node's.
    routes.set_lanes(POOL, None);
    let pooled = miners.iter().find(|(t, _)| t.route() == 1).unwrap();
    assert!(
        routes.lanes_for(&pooled.0).is_none(),
        "a pool without a job gives none"
    );
    for _ in 0..3 {
        assert_eq!(mine_a_plan(&mut planner, &mut now, &miners), 0);
    }
    assert_eq!(routes.join().route(), 0);
    let figures = routes.figures();
    assert!(!figures[1].available);
    assert_eq!((figures[0].miners, figures[1].miners), (10, 0));

    // Its job is back: the same miners mine it, and no plan moves anyone.
    pool_up(&routes);
    assert!(routes.lanes_for(&pooled.0).is_some());
    assert!((pool_part(&miners) - 0.3).abs() < 1e-9);
    assert_eq!(mine_a_plan(&mut planner, &mut now, &miners), 0);
}

#[test]
fn a_plan_long_overdue_measures_nobody() {
    let (_routes, mut planner, mut now, miners) = ten_measured_miners();
    // Ten minutes without a plan (no node served), one miner's shares
    // piling up meanwhile: its weight stays as measured before.
    now += Duration::from_secs(600);
    miners[0].0.credit(1_000.0);
    assert_eq!(planner.plan(now), 0);
    assert_eq!(planner.entries[0].load, Some(1.0));
}

#[test]
fn a_miner_that_leaves_is_forgotten_and_its_last_shares_still_count() {
    let routes = seventy_thirty();
    let mut now = Instant::now();
    let mut planner = Planner::new(routes.clone(), now);
    let ticket = routes.join();
    planner.plan(now);
    ticket.credit(1e6);
    drop(ticket);
    now += Duration::from_secs(60);
    planner.plan(now);
    let figures = routes.figures();
    assert_eq!(figures[0].miners, 0);
    assert!(figures[0].hashrate[0] > 0.0, "{figures:?}");
    assert_eq!(planner.entries.len(), 0);
}

#[test]
fn no_route_is_none() {
    assert!(Routes::new(&[]).is_none());
}

#[test]
fn a_large_miner_on_a_small_route_makes_way_for_small_ones() {
    let routes = seventy_thirty();
    let mut now = Instant::now();
    let mut planner = Planner::new(routes.clone(), now);
    pool_up(&routes);
    // The second miner to join goes to the pool: make it the large one.
    let mut miners: Vec<(Ticket, f64)> = vec![(routes.join(), 1.0), (routes.join(), 8.0)];
    miners.extend((0..7).map(|_| (routes.join(), 1.0)));
    assert_eq!(miners[1].0.route(), 1);
    planner.plan(now);
    for _ in 0..6 {
        mine_a_plan(&mut planner, &mut now, &miners);
    }
    // Moving only from the route most over would leave it there (50 %):
    // no single move brings the split closer.
    assert_eq!(miners[1].0.route(), 0, "the large miner makes way");
    assert!(
        (pool_part(&miners) - 5.0 / 16.0).abs() < 1e-9,
        "{}",
        pool_part(&miners)
    );
    for _ in 0..3 {
        assert_eq!(mine_a_plan(&mut planner, &mut now, &miners), 0);
    }
}

#[test]
fn with_no_route_to_the_node_a_pool_without_work_hands_its_miners_to_the_others() {
    // Two pools, half each: no solo mining wanted.
    let routes = Routes::new(&[(RouteTo::Pool(0), 1.0), (RouteTo::Pool(1), 1.0)]).unwrap();
    let mut now = Instant::now();
    let mut planner = Planner::new(routes.clone(), now);
    let raw = template(&"11".repeat(32), "207fffff", 300);
    let up = |pool: usize| {
        let lanes = Lanes::new(pool, Seats::new(1, 50), vec![(0, job(1, raw.clone()))]).unwrap();
        routes.set_lanes(pool, Some(Arc::new(lanes)));
    };
    up(0);
    up(1);
    let miners: Vec<(Ticket, f64)> = (0..8).map(|_| (routes.join(), 1.0)).collect();
    planner.plan(now);
    assert_eq!(on(&miners.iter().map(|(t, _)| t).collect::<Vec<_>>(), 1), 4);
    routes.set_lanes(1, None);
    // Pool 1's four move to pool 0 at the next plan, past the budget.
    assert_eq!(mine_a_plan(&mut planner, &mut now, &miners), 4);
    assert!(miners.iter().all(|(t, _)| t.route() == 0));
}
