//! An upstream pool's jobs for every group, while no node serves; and
//! the routes by weight, while one does.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::{Feed, Group, PayoutGroups};
use crate::stratum::method::JobId;
use crate::work::lanes::Lanes;
use crate::work::pool::{PoolJobError, PoolWork};
use crate::work::routes::Routes;
use crate::work::Job;

impl<F: Feed> PayoutGroups<F> {
    /// The job miners mine for a pool's connection's `from`, under a new id.
    pub fn pool_job(&self, from: &PoolWork) -> Result<Arc<Job>, PoolJobError> {
        let id = JobId(self.next_id.fetch_add(1, Ordering::Relaxed));
        Ok(Arc::new(Job::from_pool(
            id,
            from,
            self.config.extranonce2_size,
        )?))
    }

    /// Gives every group (and any joined until the next publish) a pool's
    /// jobs ([`PayoutGroups::pool_job`]), one per connection to it: a
    /// pool's job pays the pool, so they are the same for every group, and
    /// each channel mines its own lane's. Returns what the groups were given.
    pub fn publish_pool(&self, lanes: Lanes) -> Arc<Job> {
        let job = Arc::new(Job::over_lanes(lanes));
        let live: Vec<Arc<Group<F>>> = {
            let mut shared = self.shared();
            shared.work = None;
            shared.pool = Some(job.clone());
            self.withdrawn.store(false, Ordering::Relaxed);
            shared.groups.retain(|_, group| group.strong_count() > 0);
            shared.groups.values().filter_map(Weak::upgrade).collect()
        };
        for group in live {
            group.feed.publish(job.clone());
        }
        job
    }

    /// Miners given a node's job mine as `routes` send them (once, at
    /// start: a later call is ignored).
    pub fn set_routes(&self, routes: Arc<Routes>) {
        let _ = self.routes.set(routes);
    }

    pub fn routes(&self) -> Option<&Arc<Routes>> {
        self.routes.get()
    }

    /// Wakes every group's connections on the job they have (none while
    /// the work is withdrawn): each channel looks again at which of its
    /// route's jobs it mines ([`Routes`]).
    pub fn nudge(&self) {
        let live: Vec<Arc<Group<F>>> = {
            let shared = self.shared();
            shared.groups.values().filter_map(Weak::upgrade).collect()
        };
        for group in live {
            group.feed.nudge();
        }
    }
}
