//! One connection's link to the pool stats: the single place where session
//! events become metrics, worker figures and block records.

use std::sync::Arc;
use std::time::Instant;

use super::{Stats, Worker};
use crate::metrics::PortMetrics;
use crate::session::share::Reject;
use crate::session::Event;

/// Held by a connection for its lifetime; counts it open until dropped.
pub struct ConnectionStats {
    stats: Arc<Stats>,
    /// The series of the port the miner came in on.
    port: PortMetrics,
    workers: Vec<(Arc<str>, Arc<Worker>)>,
    difficulty: f64,
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

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn worker(&self, name: &Arc<str>) -> Option<&Arc<Worker>> {
        self.workers
            .iter()
            .find(|(n, _)| Arc::ptr_eq(n, name))
            .map(|(_, w)| w)
    }

    /// Records one event (blocks are also handed to the submitter by the caller).
    pub fn record(&mut self, event: &Event, user_agent: Option<&str>) {
        let metrics = &self.stats.metrics;
        match event {
            Event::Subscribed => metrics.subscribes_total.inc(),
            Event::Resumed => metrics.sessions_resumed_total.inc(),
            Event::Authorized { worker } => {
                metrics.authorizes_total.inc();
                let entry = self.stats.worker(worker);
                entry.connected(user_agent, self.difficulty);
                self.workers.push((worker.clone(), entry));
            }
            Event::Difficulty {
                difficulty,
                vardiff,
            } => {
                self.difficulty = *difficulty;
                if *vardiff {
                    metrics.vardiff_retargets_total.inc();
                }
                for (_, worker) in &self.workers {
                    worker.set_difficulty(*difficulty);
                }
            }
            Event::Share {
                worker,
                difficulty,
                verdict,
            } => {
                let entry = worker.as_ref().and_then(|name| self.worker(name));
                match verdict {
                    Ok(achieved) => {
                        let now = Instant::now();
                        self.port.accepted.inc();
                        self.port.accepted_difficulty.inc_by(*difficulty);
                        self.stats.add_pool_share(*difficulty, now);
                        if let Some(entry) = entry {
                            entry.accepted(*difficulty, *achieved, now);
                        }
                    }
                    Err(reject) => {
                        self.port.rejected(reject.reason()).inc();
                        if let Some(entry) = entry {
                            entry.rejected(*reject == Reject::Stale);
                        }
                    }
                }
            }
            Event::Block(block) => self.stats.block_found(
                block.job.template.height,
                block.hash.to_string(),
                &block.worker,
            ),
            Event::JobSent { created } => metrics
                .notify_delay_seconds
                .observe(created.elapsed().as_secs_f64()),
        }
    }
}

impl Drop for ConnectionStats {
    fn drop(&mut self) {
        self.port.connections.dec();
        let now = Instant::now();
        for (_, worker) in &self.workers {
            worker.disconnected(now);
        }
    }
}
