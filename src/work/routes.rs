//! The job stage's side of `[[route]]` while a node serves
//! ([`ndas_core::work::routes`]): each routed pool's lanes kept in the
//! core's [`Routes`] (paced as when no node serves), the planner run every
//! [`PLAN_EVERY`], and every group's connections woken when either changes
//! what their miners mine. A node's job reaches them as ever; the channels
//! on a pool's route mine its lanes instead.

use std::sync::Arc;

use tokio::time::Instant;

use super::pools::{changed, Paced, Pacer};
use super::JobManager;
use crate::upstream::links::PoolFeed;
use ndas_core::work::routes::{Planner, Routes, PLAN_EVERY};

/// The routed pools' lanes and the plans.
pub struct Routing {
    routes: Arc<Routes>,
    pools: Vec<Routed>,
    feeds: Vec<PoolFeed>,
    planner: Planner,
    next_plan: Instant,
    /// When a routed pool's change waiting its turn is due.
    held: Option<Instant>,
}

/// One routed pool.
struct Routed {
    pool: usize,
    name: String,
    pacer: Pacer,
    /// Whether its lanes are in the routes now.
    has: bool,
}

impl Routing {
    /// The routing of `routes` (none: no `[[route]]`), over the
    /// upstreams' `feeds` and `names` in the config's order.
    pub fn new(
        routes: Option<Arc<Routes>>,
        feeds: &[PoolFeed],
        names: &[String],
    ) -> Option<Routing> {
        let routes = routes?;
        let mut pools: Vec<usize> = routes.pools().collect();
        pools.sort_unstable();
        pools.dedup();
        let now = Instant::now();
        Some(Routing {
            feeds: pools.iter().map(|&pool| feeds[pool].clone()).collect(),
            pools: pools
                .into_iter()
                .map(|pool| Routed {
                    pool,
                    name: names[pool].clone(),
                    pacer: Pacer::default(),
                    has: false,
                })
                .collect(),
            planner: Planner::new(routes.clone(), now.into_std()),
            routes,
            next_plan: now + PLAN_EVERY,
            held: None,
        })
    }

    /// Until a routed pool's lanes change, a change waiting its turn is
    /// due, or the next plan.
    pub async fn wait(&mut self) {
        let due = self
            .held
            .map_or(self.next_plan, |at| at.min(self.next_plan));
        tokio::select! {
            _ = changed(&mut self.feeds) => {}
            _ = tokio::time::sleep_until(due) => {}
        }
    }

    /// No node serves: the routed pools' lanes are taken out of the routes
    /// and their pacing forgotten, so that when one serves again the pools'
    /// lanes as they are then go in at once ([`Routing::update`]), before
    /// the node's jobs send miners to them.
    pub fn pause(&mut self) {
        for routed in &mut self.pools {
            routed.pacer.forget();
            routed.has = false;
            self.routes.set_lanes(routed.pool, None);
        }
    }

    /// Puts each routed pool's newest lanes in the routes (none while it
    /// has no job: its miners mine the node's meanwhile) and plans when
    /// due; wakes the groups' connections when their miners' work changed.
    pub fn update(&mut self, manager: &JobManager) {
        let now = Instant::now();
        let mut changed = false;
        self.held = None;
        for (routed, feed) in self.pools.iter_mut().zip(&mut self.feeds) {
            let held = loop {
                let works = routed.pacer.usable(feed);
                if works.is_empty() {
                    if std::mem::take(&mut routed.has) {
                        tracing::warn!(upstream = %routed.name, "the routed upstream pool has no job: its route's miners mine for the node until it has");
                        self.routes.set_lanes(routed.pool, None);
                        routed.pacer.forget();
                        changed = true;
                    }
                    break None;
                }
                let seats = feed.seats.clone();
                match routed
                    .pacer
                    .pace(manager, (routed.pool, &routed.name, &seats), works, now)
                {
                    Paced::Publish { lanes, first, held } => {
                        if first {
                            tracing::info!(upstream = %routed.name, "the routed upstream pool has a job: its route's miners mine it");
                        }
                        self.routes.set_lanes(routed.pool, Some(Arc::new(lanes)));
                        routed.has = true;
                        changed = true;
                        break held;
                    }
                    Paced::Held(at) => break at,
                    // Marked unusable: its other lanes, if any.
                    Paced::Unusable => continue,
                }
            };
            self.held = self.held.into_iter().chain(held).min();
        }
        if now >= self.next_plan {
            self.next_plan = now + PLAN_EVERY;
            let moved = self.planner.plan(now.into_std());
            if moved > 0 {
                tracing::info!(moved, "miners moved between routes toward their weights");
                changed = true;
            }
        }
        if changed {
            manager.groups().nudge();
        }
    }
}
