//! Routing by weight (issue 24's `[[route]]`): while a node serves, a
//! share of the farm's hashrate mines for the node (solo) and shares of it
//! for upstream pools, as Braiins Farm Proxy splits a farm between
//! targets. Whole miners are routed, never a miner's shares: a miner's
//! firmware mines one connection's jobs, and a share split would cost it a
//! `clean_jobs` on every switch.
//!
//! A miner's weight is the difficulty it had accepted per second, as the
//! [`Planner`] measures it every [`PLAN_EVERY`] (averaged over a few
//! plans, whatever job it mined); a miner not measured yet counts as the
//! average one. A miner joins the route furthest below its weight
//! ([`Routes::join`]); each plan then places whole miners again, the
//! largest first, each staying where it is while its route has room for
//! it ([`move_miners`]). A pool's route is available while the pool has a
//! job; its miners are on the others meanwhile.
//!
//! The routes hold each routed pool's current lanes ([`Routes::set_lanes`],
//! by the job stage); a channel given a node's job mines its route's pool's
//! lanes instead when its route is a pool's ([`Routes::lanes_for`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::lanes::Lanes;
use crate::rates::Rates;
use crate::sync::LockAnyway;

/// How often the split is measured and miners are moved.
pub const PLAN_EVERY: Duration = Duration::from_secs(30);
/// How much of each plan's measure a miner's weight takes: over about
/// three plans, so one plan's luck does not move miners.
const SMOOTHING: f64 = 0.3;
/// The most miners one plan moves, as a part of them all (at least one):
/// a route's weight changed or a pool back moves the farm over a few
/// plans, not in one jolt.
const MOST_MOVED: f64 = 0.25;

/// Where a route's miners mine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteTo {
    /// The node's jobs (solo).
    Node,
    /// The upstream pool of this index (`[[upstream]]`'s order).
    Pool(usize),
}

/// One route's figures, as of the last plan.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteFigures {
    pub to: RouteTo,
    /// Its part of the configured weights.
    pub weight: f64,
    /// A pool's route: whether the pool has a job (the node's always).
    pub available: bool,
    pub miners: usize,
    /// Hashes per second its miners had accepted, over 1 minute, 5
    /// minutes and 1 hour.
    pub hashrate: [f64; 3],
    /// Its part of the routes' hashrate over 5 minutes.
    pub share: f64,
}

struct Route {
    to: RouteTo,
    weight: f64,
    /// A pool's lanes while it has a job (never for the node's route).
    lanes: RwLock<Option<Arc<Lanes>>>,
}

/// What joins read and the planner writes: each route's weighted miners
/// as of the last plan plus those joined since, and the miners joined
/// since, which the next plan takes in.
struct Joining {
    loads: Vec<f64>,
    /// The weight a miner not measured yet is given.
    mean: f64,
    joined: Vec<Arc<TicketState>>,
}

/// The configured routes and the state joins and channels read.
pub struct Routes {
    routes: Box<[Route]>,
    joining: Mutex<Joining>,
    figures: Mutex<Vec<RouteFigures>>,
}

/// A miner's route, shared by its channel (which credits its accepted
/// difficulty) and the planner (which moves it).
#[derive(Debug)]
struct TicketState {
    route: AtomicUsize,
    /// Accepted difficulty since it joined, as `f64` bits: one writer, its
    /// channel.
    accepted: AtomicU64,
    gone: AtomicBool,
}

impl TicketState {
    fn accepted(&self) -> f64 {
        f64::from_bits(self.accepted.load(Ordering::Relaxed))
    }
}

/// A channel's place on a route; leaves it when dropped.
#[derive(Debug)]
pub struct Ticket(Arc<TicketState>);

impl Ticket {
    /// The route (an index into the configured routes) the miner is on.
    pub fn route(&self) -> usize {
        self.0.route.load(Ordering::Relaxed)
    }

    /// An accepted share of `difficulty`, on whatever job.
    pub fn credit(&self, difficulty: f64) {
        let total = self.0.accepted() + difficulty;
        self.0.accepted.store(total.to_bits(), Ordering::Relaxed);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.gone.store(true, Ordering::Relaxed);
    }
}

impl Routes {
    /// `routes` as configured: where each sends miners and its weight
    /// (positive). None without a route.
    pub fn new(routes: &[(RouteTo, f64)]) -> Option<Arc<Routes>> {
        if routes.is_empty() {
            return None;
        }
        let total: f64 = routes.iter().map(|(_, weight)| weight).sum();
        let figures = routes
            .iter()
            .map(|&(to, weight)| RouteFigures {
                to,
                weight: weight / total,
                available: to == RouteTo::Node,
                miners: 0,
                hashrate: [0.0; 3],
                share: 0.0,
            })
            .collect();
        Some(Arc::new(Routes {
            routes: routes
                .iter()
                .map(|&(to, weight)| Route {
                    to,
                    weight,
                    lanes: RwLock::new(None),
                })
                .collect(),
            joining: Mutex::new(Joining {
                loads: vec![0.0; routes.len()],
                mean: 1.0,
                joined: Vec::new(),
            }),
            figures: Mutex::new(figures),
        }))
    }

    /// The pools some route sends miners to.
    pub fn pools(&self) -> impl Iterator<Item = usize> + '_ {
        self.routes.iter().filter_map(|route| match route.to {
            RouteTo::Pool(pool) => Some(pool),
            RouteTo::Node => None,
        })
    }

    /// `pool`'s lanes now (none: it has no job, and its routes' miners
    /// mine elsewhere until it has).
    pub fn set_lanes(&self, pool: usize, lanes: Option<Arc<Lanes>>) {
        for route in self.routes.iter().filter(|r| r.to == RouteTo::Pool(pool)) {
            *route.lanes.write().unwrap_or_else(|e| e.into_inner()) = lanes.clone();
        }
    }

    fn lanes(&self, route: usize) -> Option<Arc<Lanes>> {
        // The node's route has none: no lock taken on every node job.
        let route = self.routes.get(route).filter(|r| r.to != RouteTo::Node)?;
        route
            .lanes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn available(&self, route: usize) -> bool {
        let route = &self.routes[route];
        route.to == RouteTo::Node
            || route
                .lanes
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
    }

    /// The lanes a miner on `ticket`'s route mines instead of a node's job:
    /// its pool's, while they are there; none for the node's route.
    pub fn lanes_for(&self, ticket: &Ticket) -> Option<Arc<Lanes>> {
        self.lanes(ticket.route())
    }

    /// A new miner's ticket, on the available route furthest below its
    /// weight once the miner is counted (as the average miner).
    pub fn join(&self) -> Ticket {
        let mut joining = self.joining.lock_anyway();
        let weights = self.available_weights();
        let mean = joining.mean;
        let total: f64 = joining.loads.iter().sum::<f64>() + mean;
        let route = (0..self.routes.len())
            .filter(|&r| weights[r] > 0.0)
            .max_by(|&a, &b| {
                let room = |r: usize| weights[r] * total - joining.loads[r];
                room(a).total_cmp(&room(b)).then(b.cmp(&a))
            })
            .unwrap_or(0);
        joining.loads[route] += mean;
        let state = Arc::new(TicketState {
            route: AtomicUsize::new(route),
            accepted: AtomicU64::new(0f64.to_bits()),
            gone: AtomicBool::new(false),
        });
        joining.joined.push(state.clone());
        Ticket(state)
    }

    /// Each route's part of the weights of the available routes (0 for
    /// the others); all 0 when none is available.
    fn available_weights(&self) -> Vec<f64> {
        let weights: Vec<f64> = (0..self.routes.len())
            .map(|r| {
                if self.available(r) {
                    self.routes[r].weight
                } else {
                    0.0
                }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        weights
            .iter()
            .map(|w| if total > 0.0 { w / total } else { 0.0 })
            .collect()
    }

    /// Each route's figures, as of the last plan, in the config's order.
    pub fn figures(&self) -> Vec<RouteFigures> {
        self.figures.lock_anyway().clone()
    }
}

/// A miner the planner knows.
struct Entry {
    state: Arc<TicketState>,
    /// Its accepted difficulty at the last plan.
    seen: f64,
    /// Its accepted difficulty per second (none: not measured over a
    /// whole plan yet).
    load: Option<f64>,
    /// Joined since the last plan: its first measure is the next.
    fresh: bool,
}

/// Measures the routes and moves miners between them, every
/// [`PLAN_EVERY`], on the job stage's side.
pub struct Planner {
    routes: Arc<Routes>,
    entries: Vec<Entry>,
    last: Option<Instant>,
    rates: Vec<Rates>,
}

impl Planner {
    pub fn new(routes: Arc<Routes>, now: Instant) -> Planner {
        let rates = routes.routes.iter().map(|_| Rates::new(now)).collect();
        Planner {
            routes,
            entries: Vec::new(),
            last: None,
            rates,
        }
    }

    /// Measures every miner and route since the last plan, then moves
    /// miners toward the weights. Returns how many moved (their channels
    /// take their new route's work when next given a job).
    pub fn plan(&mut self, now: Instant) -> usize {
        let routes = self.routes.clone();
        let count = routes.routes.len();
        let joined = std::mem::take(&mut routes.joining.lock_anyway().joined);
        self.entries.extend(joined.into_iter().map(|state| Entry {
            state,
            seen: 0.0,
            load: None,
            fresh: true,
        }));
        let elapsed = self.last.replace(now).map_or(0.0, |last| {
            now.saturating_duration_since(last).as_secs_f64()
        });
        // A plan long overdue (no node served meanwhile, and the miners
        // mined a pool's jobs whatever their route) measures nobody.
        let measuring = elapsed > 0.0 && elapsed <= 2.0 * PLAN_EVERY.as_secs_f64();
        let weights = routes.available_weights();
        // Where a route's miners mine: a pool's without a job sends them
        // to the node's jobs, and they are shown there.
        let node = routes.routes.iter().position(|r| r.to == RouteTo::Node);
        let shown = |route: usize| match node {
            Some(node) if weights[route] <= 0.0 => node,
            _ => route,
        };
        let mut accepted = vec![0.0; count];
        self.entries.retain_mut(|entry| {
            let total = entry.state.accepted();
            let delta = (total - entry.seen).max(0.0);
            entry.seen = total;
            accepted[shown(entry.state.route.load(Ordering::Relaxed).min(count - 1))] += delta;
            if entry.state.gone.load(Ordering::Relaxed) {
                return false;
            }
            if std::mem::take(&mut entry.fresh) || !measuring {
                return true;
            }
            let rate = delta / elapsed;
            entry.load = Some(
                entry
                    .load
                    .map_or(rate, |was| was + SMOOTHING * (rate - was)),
            );
            true
        });
        for (rates, delta) in self.rates.iter_mut().zip(&accepted) {
            rates.add(*delta, now);
        }
        let measured: Vec<f64> = self.entries.iter().filter_map(|e| e.load).collect();
        let mean = if measured.is_empty() {
            1.0
        } else {
            (measured.iter().sum::<f64>() / measured.len() as f64).max(f64::MIN_POSITIVE)
        };
        let loads: Vec<f64> = self
            .entries
            .iter()
            .map(|e| e.load.unwrap_or(mean).max(0.0))
            .collect();
        let moved = move_miners(&self.entries, &loads, &weights, node.is_some());
        let mut on = vec![0.0; count];
        let mut miners = vec![0; count];
        for (entry, load) in self.entries.iter().zip(&loads) {
            let route = entry.state.route.load(Ordering::Relaxed).min(count - 1);
            on[route] += load;
            miners[shown(route)] += 1;
        }
        {
            let mut joining = routes.joining.lock_anyway();
            // Miners joined since this plan began stay counted.
            for state in &joining.joined {
                on[state.route.load(Ordering::Relaxed).min(count - 1)] += mean;
            }
            // Joins weigh the routes with work alone.
            for (load, weight) in on.iter_mut().zip(&weights) {
                if *weight <= 0.0 {
                    *load = 0.0;
                }
            }
            (joining.loads, joining.mean) = (on, mean);
        }
        let hashrates: Vec<[f64; 3]> = self.rates.iter().map(|r| r.hashrates(now)).collect();
        let total_5m: f64 = hashrates.iter().map(|h| h[1]).sum();
        let mut figures = routes.figures.lock_anyway();
        for (r, figure) in figures.iter_mut().enumerate() {
            figure.available = routes.available(r);
            figure.miners = miners[r];
            figure.hashrate = hashrates[r];
            figure.share = if total_5m > 0.0 {
                hashrates[r][1] / total_5m
            } else {
                0.0
            };
        }
        moved
    }
}

/// Moves miners (`entries`, weighing `loads`) toward the routes'
/// `weights`, the largest miners first: each stays on its route while the
/// route has room for it, else goes to the route with the most room when
/// that is clearly more (by half its weight, so a split within a miner of
/// the weights stays as it is). The largest first, so a large miner is
/// placed before the small ones fill the gaps around it (moving only from
/// the route most over could leave a large miner alone on a small route).
/// The miners of a route with no weight now (a pool without a job: they
/// mine the node's jobs meanwhile) stay on it, out of the reckoning, and
/// go back to its pool's jobs when it has one; with no route to the node
/// (`lends` false) they move to the routes with work instead. At most
/// [`MOST_MOVED`] of the other miners move. Returns how many moved.
fn move_miners(entries: &[Entry], loads: &[f64], weights: &[f64], lends: bool) -> usize {
    let count = weights.len();
    if weights.iter().all(|w| *w <= 0.0) {
        return 0;
    }
    let route_of = |i: usize| {
        entries[i]
            .state
            .route
            .load(Ordering::Relaxed)
            .min(count - 1)
    };
    // Lent to the node's jobs while their pool has none, when the node
    // has a route; without one (the operator wants no solo mining) they
    // go to the pools that have work, whatever the budget.
    let placed: Vec<usize> = (0..entries.len())
        .filter(|&i| weights[route_of(i)] > 0.0 || !lends)
        .collect();
    let total: f64 = placed.iter().map(|&i| loads[i]).sum();
    let mut room: Vec<f64> = weights.iter().map(|w| w * total).collect();
    let mut order = placed;
    order.sort_by(|&a, &b| loads[b].total_cmp(&loads[a]));
    let budget = ((entries.len() as f64 * MOST_MOVED).ceil() as usize).max(1);
    let (mut moved, mut rebalanced) = (0, 0);
    for i in order {
        let (load, own) = (loads[i], route_of(i));
        let best = (0..count)
            .filter(|&r| weights[r] > 0.0)
            .max_by(|&a, &b| room[a].total_cmp(&room[b]).then(b.cmp(&a)))
            .expect("a route has weight");
        let forced = weights[own] <= 0.0;
        let wanted = !forced
            && best != own
            && room[own] < load
            && room[best] > room[own] + load / 2.0
            && rebalanced < budget;
        let to = if forced || wanted { best } else { own };
        if to != own {
            entries[i].state.route.store(to, Ordering::Relaxed);
            moved += 1;
            rebalanced += usize::from(wanted);
        }
        room[to] -= load;
    }
    moved
}

#[cfg(test)]
mod tests;
