//! The upstream side of the start: the connections to each `[[upstream]]`
//! pool and the routes by weight (`[[route]]`).

use std::sync::Arc;

use super::Stage;
use crate::config::Config;
use crate::upstream::links::Forwarders;
use crate::work::{self, JobManager};
use ndas_core::work::routes::Routes;

impl Stage<'_> {
    /// A connection to each upstream pool, kept and watched (their status
    /// for `/api/stats`), and the routes by weight (`[[route]]`), which
    /// `manager`'s groups follow. Returns each pool's jobs and the routing
    /// for the job stage, and where miners' connections send their shares.
    pub fn upstream_side(
        &self,
        config: &Config,
        manager: &JobManager,
    ) -> (
        (work::Pools, Option<work::Routing>),
        Option<Arc<Forwarders>>,
    ) {
        // The easiest difficulty any port gives its miners: an SV2 pool's
        // target is never let below it.
        let floor = config
            .ports()
            .iter()
            .map(|p| p.min)
            .fold(f64::INFINITY, f64::min);
        let (feeds, forwarders) = crate::upstream::start(
            &config.upstream,
            (config.stratum.extranonce2_size, floor),
            self.stats,
            self.tasks,
            self.shutdown,
        );
        let names: Vec<String> = config.upstream.iter().map(|u| u.name.clone()).collect();
        let routes = Routes::new(&config.routes());
        if let Some(routes) = &routes {
            manager.groups().set_routes(routes.clone());
            let _ = self.stats.routes.set((routes.clone(), names.clone()));
            for route in crate::stats::upstreams::routes(routes, &names) {
                self.stats.metrics.scraped.route_configured(&route.to);
            }
        }
        let routing = work::Routing::new(routes, &feeds, &names);
        let pools = work::Pools::for_config(config, feeds);
        (
            (pools, routing),
            (!config.upstream.is_empty()).then_some(forwarders),
        )
    }
}
