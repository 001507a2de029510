//! Each upstream pool's status as the operator sees it (`/api/stats`
//! `upstreams`, the page): written by its connection (`crate::upstream`)
//! and by the job stage's events (which pool miners mine).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use ndas_core::clock::unix_now;
use ndas_core::rates::Rates;
use ndas_core::sync::LockAnyway;
use ndas_core::work::lanes::Seats;

/// One upstream pool as the operator sees it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UpstreamStatus {
    pub name: String,
    /// `connecting`, `ready` (subscribed and authorized), `refused` (the
    /// pool cannot be used: `reason` says why) or `down` (unreachable or
    /// gone).
    pub state: &'static str,
    pub reason: Option<String>,
    /// The pool's share difficulty for NDAS.
    pub difficulty: Option<f64>,
    /// From the handshake sent to the pool's authorize answer.
    pub handshake_ms: Option<f64>,
    pub extranonce2_size: Option<usize>,
    /// Unix seconds of the last change of state.
    pub since: u64,
    /// Miners' shares sent to the pool, and its answers.
    pub shares_sent: u64,
    pub shares_accepted: u64,
    pub shares_rejected: u64,
    /// From a share sent to the pool's answer, the last one.
    pub latency_ms: Option<f64>,
    /// Whether miners mine its jobs now (no node serves).
    pub mining: bool,
    /// Its connections that are ready: one per `miners_per_connection`
    /// miners on it (one while none is).
    pub connections: usize,
    /// NDAS's miners on its jobs now.
    pub miners: usize,
    /// The hashrate the pool credits NDAS with: the difficulty of the
    /// shares it accepted, over 1 minute, 5 minutes and 1 hour.
    pub hashrate: Hashrate,
}

/// Hashes per second over each window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Hashrate {
    #[serde(rename = "1m")]
    pub m1: f64,
    #[serde(rename = "5m")]
    pub m5: f64,
    #[serde(rename = "1h")]
    pub h1: f64,
}

/// Every upstream's status, in the config's order, the seats on its
/// connections and the difficulty it accepted.
#[derive(Default)]
pub struct Upstreams(Vec<Upstream>);

struct Upstream {
    status: Mutex<UpstreamStatus>,
    seats: Arc<Seats>,
    accepted: Mutex<Rates>,
}

impl Upstreams {
    /// The upstreams `pools` (each a name and its seats), in the config's
    /// order, connecting.
    pub fn new(pools: &[(String, Arc<Seats>)]) -> Arc<Upstreams> {
        Arc::new(Upstreams(
            pools
                .iter()
                .map(|(name, seats)| Upstream {
                    status: Mutex::new(UpstreamStatus {
                        name: name.clone(),
                        state: "connecting",
                        since: unix_now(),
                        ..UpstreamStatus::default()
                    }),
                    seats: seats.clone(),
                    accepted: Mutex::new(Rates::new(Instant::now())),
                })
                .collect(),
        ))
    }

    /// Every upstream's status now.
    pub fn snapshot(&self) -> Vec<UpstreamStatus> {
        let now = Instant::now();
        self.0
            .iter()
            .map(|upstream| {
                let [m1, m5, h1] = upstream.accepted.lock_anyway().hashrates(now);
                UpstreamStatus {
                    miners: upstream.seats.seated(),
                    hashrate: Hashrate { m1, m5, h1 },
                    ..upstream.status.lock_anyway().clone()
                }
            })
            .collect()
    }

    /// Which upstream miners mine on now, if any.
    pub fn mining_on(&self, name: Option<&str>) {
        for upstream in &self.0 {
            let mut status = upstream.status.lock_anyway();
            status.mining = name == Some(status.name.as_str());
        }
    }

    /// A share of `difficulty` upstream `index` accepted.
    pub fn credit(&self, index: usize, difficulty: f64) {
        self.0[index]
            .accepted
            .lock_anyway()
            .add(difficulty, Instant::now());
    }

    /// Changes upstream `index`'s status; a change of state is dated.
    pub fn set(&self, index: usize, change: impl FnOnce(&mut UpstreamStatus)) {
        let mut status = self.0[index].status.lock_anyway();
        let before = status.state;
        change(&mut status);
        if status.state != before {
            status.since = unix_now();
        }
    }
}

/// One `[[route]]`'s figures in `/api/stats` `routes`, as of the last plan
/// (every 30 s).
#[derive(Clone, Debug, Serialize)]
pub struct RouteStatus {
    /// `node`, or the upstream's name.
    pub to: String,
    /// Its part of the configured weights.
    pub weight: f64,
    /// Its part of the routes' accepted difficulty over 5 minutes.
    pub share: f64,
    /// A pool's route: whether the pool has a job (its miners mine for the
    /// node meanwhile).
    pub available: bool,
    pub miners: usize,
    /// From the difficulty its miners had accepted.
    pub hashrate: Hashrate,
}

/// Each route of `routes` (upstreams named by `names`), in the config's order.
pub fn routes(routes: &ndas_core::work::routes::Routes, names: &[String]) -> Vec<RouteStatus> {
    use ndas_core::work::routes::RouteTo;
    routes
        .figures()
        .into_iter()
        .map(|figure| RouteStatus {
            to: match figure.to {
                RouteTo::Node => "node".to_owned(),
                RouteTo::Pool(pool) => names.get(pool).cloned().unwrap_or_default(),
            },
            weight: figure.weight,
            share: figure.share,
            available: figure.available,
            miners: figure.miners,
            hashrate: Hashrate {
                m1: figure.hashrate[0],
                m5: figure.hashrate[1],
                h1: figure.hashrate[2],
            },
        })
        .collect()
}
