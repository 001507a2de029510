//! Each upstream pool's status as the operator sees it (`/api/stats`
//! `upstreams`, the page): written by its connection (`crate::upstream`)
//! and by the job stage's events (which pool miners mine).

use std::sync::{Arc, Mutex};

use serde::Serialize;

use ndas_core::clock::unix_now;
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
}

/// Every upstream's status, in the config's order, and the seats on its
/// connections.
#[derive(Default)]
pub struct Upstreams(Vec<(Mutex<UpstreamStatus>, Arc<Seats>)>);

impl Upstreams {
    /// The upstreams `pools` (each a name and its seats), in the config's
    /// order, connecting.
    pub fn new(pools: &[(String, Arc<Seats>)]) -> Arc<Upstreams> {
        Arc::new(Upstreams(
            pools
                .iter()
                .map(|(name, seats)| {
                    let status = Mutex::new(UpstreamStatus {
                        name: name.clone(),
                        state: "connecting",
                        since: unix_now(),
                        ..UpstreamStatus::default()
                    });
                    (status, seats.clone())
                })
                .collect(),
        ))
    }

    /// Every upstream's status now.
    pub fn snapshot(&self) -> Vec<UpstreamStatus> {
        self.0
            .iter()
            .map(|(status, seats)| UpstreamStatus {
                miners: seats.seated(),
                ..status.lock_anyway().clone()
            })
            .collect()
    }

    /// Which upstream miners mine on now, if any.
    pub fn mining_on(&self, name: Option<&str>) {
        for (status, _) in &self.0 {
            let mut status = status.lock_anyway();
            status.mining = name == Some(status.name.as_str());
        }
    }

    /// Changes upstream `index`'s status; a change of state is dated.
    pub fn set(&self, index: usize, change: impl FnOnce(&mut UpstreamStatus)) {
        let mut status = self.0[index].0.lock_anyway();
        let before = status.state;
        change(&mut status);
        if status.state != before {
            status.since = unix_now();
        }
    }
}
