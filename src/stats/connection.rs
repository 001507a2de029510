//! One connection's link to the pool stats: the single place where session
//! events become metrics, worker figures and block records.

use std::sync::Arc;
use std::time::Instant;

use super::registry::Joined;
use super::{Stats, Worker};
use crate::metrics::PortMetrics;
use ndas_core::session::Event;
use ndas_core::share::Reject;

/// Held by a connection for its lifetime; counts it open until dropped.
pub struct ConnectionStats {
    stats: Arc<Stats>,
    /// The series of the port the miner came in on.
    port: PortMetrics,
    /// The names this connection authorized (at most 32, the session's bound).
    workers: Vec<Named>,
    difficulty: f64,
}

/// A name authorized on this connection. It joins the pool-wide registry
/// with its first accepted share; what it was refused before waits here.
struct Named {
    name: Arc<str>,
    entry: Option<Arc<Worker>>,
    rejected: u64,
    stale: u64,
    /// The registry was full of connected workers when it tried to join.
    refused: bool,
    /// Its number in the fleet history's sessions, once it joined.
    session: Option<u64>,
}

impl ConnectionStats {
    pub fn open(stats: Arc<Stats>, port: PortMetrics) -> ConnectionStats {
        port.connections.inc();
        port.connections_total.inc();
        ConnectionStats {
            stats,
            port,
            workers: Vec::new(),
            difficulty: 0.0,
        }
    }

    fn named(&mut self, name: &Arc<str>) -> Option<&mut Named> {
        self.workers.iter_mut().find(|n| Arc::ptr_eq(&n.name, name))
    }

    /// The registry entry for `name`, joining with this accepted share.
    fn earned(
        &mut self,
        name: &Arc<str>,
        user_agent: Option<&str>,
        now: Instant,
    ) -> Option<&Arc<Worker>> {
        let index = self
            .workers
            .iter()
            .position(|n| Arc::ptr_eq(&n.name, name))?;
        if self.workers[index].entry.is_none() {
            self.join(index, user_agent, now);
        }
        self.workers[index].entry.as_ref()
    }

    /// Enters the registry for the name at `index`, with what it was refused before.
    fn join(&mut self, index: usize, user_agent: Option<&str>, now: Instant) {
        let (stats, difficulty) = (&self.stats, self.difficulty);
        let named = &mut self.workers[index];
        match stats.workers.join(&named.name, now) {
            Joined::Entry(entry, evicted) => {
                if evicted.is_some() {
                    stats.metrics.workers_evicted_total.inc();
                }
                entry.connected(user_agent, difficulty);
                entry.rejected_before_joining(named.rejected, named.stale);
                named.entry = Some(entry);
                let protocol = crate::config::PROTOCOLS
                    .get(self.port.protocol)
                    .copied()
                    .unwrap_or("stratum");
                named.session = stats.sessions.start(&named.name, user_agent, protocol);
            }
            Joined::Full => {
                if !std::mem::replace(&mut named.refused, true) {
                    stats.metrics.workers_refused_total.inc();
                }
            }
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Records one event (blocks are also handed to the submitter by the caller).
    pub fn record(&mut self, event: &Event, user_agent: Option<&str>) {
        let metrics = &self.stats.metrics;
        match event {
            Event::Subscribed => metrics.subscribes_total.inc(),
            Event::Resumed => metrics.sessions_resumed_total.inc(),
            Event::Authorized { worker } => {
                metrics.authorizes_total.inc();
                self.workers.push(Named {
                    name: worker.clone(),
                    entry: None,
                    rejected: 0,
                    stale: 0,
                    refused: false,
                    session: None,
                });
            }
            Event::FellBack { worker, why } => self.stats.fell_back(worker, why),
            Event::ChannelRefused { reason } => metrics
                .channel_refusals_total
                .with_label_values(&[reason])
                .inc(),
            Event::PayoutRefused { reason } => metrics
                .payouts
                .refusals_total
                .with_label_values(&[reason])
                .inc(),
            Event::Difficulty {
                difficulty,
                vardiff,
            } => {
                self.difficulty = *difficulty;
                if *vardiff {
                    metrics.vardiff_retargets_total.inc();
                }
                for entry in self.workers.iter().filter_map(|n| n.entry.as_ref()) {
                    entry.set_difficulty(*difficulty);
                }
            }
            Event::Share {
                worker,
                difficulty,
                verdict,
            } => match verdict {
                Ok(achieved) => {
                    let now = Instant::now();
                    self.port.accepted.inc();
                    self.port.accepted_difficulty.inc_by(*difficulty);
                    self.stats
                        .add_pool_share(*difficulty, now, self.port.protocol);
                    let entry = worker
                        .as_ref()
                        .and_then(|name| self.earned(name, user_agent, now));
                    if let Some(entry) = entry {
                        entry.accepted(*difficulty, *achieved, now);
                    }
                }
                Err(reject) => {
                    self.port.rejected(reject.reason()).inc();
                    let stale = *reject == Reject::Stale;
                    let named = worker.as_ref().and_then(|name| self.named(name));
                    match named {
                        Some(Named {
                            entry: Some(entry), ..
                        }) => entry.rejected(stale),
                        Some(named) => {
                            named.rejected += 1;
                            named.stale += u64::from(stale);
                        }
                        None => {}
                    }
                }
            },
            // Listed and told by the submitter, for the first block of a
            // parent only: a flood of siblings must not push real blocks out.
            Event::Block(_) => metrics.blocks.found_total.inc(),
            // Counted by the upstream's connection, with the pool's answer.
            Event::Forward(_) => {}
            Event::JobSent { created } => metrics
                .templates
                .notify_delay_seconds
                .observe(created.elapsed().as_secs_f64()),
        }
    }
}

impl Drop for ConnectionStats {
    fn drop(&mut self) {
        let now = Instant::now();
        for named in &self.workers {
            if let Some(entry) = &named.entry {
                entry.disconnected(now);
                self.stats.workers.leave(&named.name);
            }
            if let Some(seq) = named.session {
                self.stats.sessions.end(seq);
            }
        }
        // Last: whoever sees the connection gone sees its workers quiet.
        self.port.connections.dec();
    }
}
