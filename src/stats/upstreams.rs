//! Each upstream pool's status as the operator sees it (`/api/stats`
//! `upstreams`, the page): written by its connection (`crate::upstream`)
//! and by the job stage's events (which pool miners mine).

use std::sync::{Arc, Mutex};

use serde::Serialize;

use ndas_core::clock::unix_now;
use ndas_core::sync::LockAnyway;

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
}

/// Every upstream's status, in the config's order.
#[derive(Default)]
pub struct Upstreams(Vec<Mutex<UpstreamStatus>>);

impl Upstreams {
    /// The upstreams named `names`, in the config's order, connecting.
    pub fn new(names: &[String]) -> Arc<Upstreams> {
        Arc::new(Upstreams(
            names
                .iter()
                .map(|name| {
                    Mutex::new(UpstreamStatus {
                        name: name.clone(),
                        state: "connecting",
                        since: unix_now(),
                        ..UpstreamStatus::default()
                    })
                })
                .collect(),
        ))
    }

    /// Every upstream's status now.
    pub fn snapshot(&self) -> Vec<UpstreamStatus> {
        self.0.iter().map(|s| s.lock_anyway().clone()).collect()
    }

    /// Which upstream miners mine on now, if any.
    pub fn mining_on(&self, name: Option<&str>) {
        for status in &self.0 {
            let mut status = status.lock_anyway();
            status.mining = name == Some(status.name.as_str());
        }
    }

    /// Changes upstream `index`'s status; a change of state is dated.
    pub fn set(&self, index: usize, change: impl FnOnce(&mut UpstreamStatus)) {
        let mut status = self.0[index].lock_anyway();
        let before = status.state;
        change(&mut status);
        if status.state != before {
            status.since = unix_now();
        }
    }
}
