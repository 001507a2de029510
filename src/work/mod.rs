//! The job stage: each template the node side publishes ([`run`] reads
//! the watcher's channel) is built into one job per payout group (the
//! core's [`PayoutGroups`]) and put in the group's `watch` channel, which
//! wakes its connections; the template itself then goes out on a channel
//! of its own for what follows the tip rather than a group's jobs (the
//! journal, ZMQ's silence check, the submitter).

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::node::watcher::JobsIn;
use ndas_core::events::{Events, JobEvent};

use ndas_core::chain::coinbase::CoinbaseError;
use ndas_core::template::Template;
use ndas_core::work::groups::{Feed, Payouts};
use ndas_core::work::{Job, JobConfig, PayoutGroups};

/// Groups whose jobs are built on the caller's thread; more are built on
/// the blocking pool ([`JobManager::publish_off_runtime`]). One group's job
/// takes 1.4–2 µs beyond the template's shared work (about 380 µs on a
/// 3,500-transaction template), and the hop to the pool about 150 µs
/// (BENCHMARKS.md): past 256 groups the runtime thread would be held for
/// twice what `fixed` mode holds it.
pub const INLINE_GROUPS: usize = 256;

/// The receiving end of one group's jobs.
pub type JobReceiver = watch::Receiver<Option<Arc<Job>>>;
/// The newest template, for what follows the tip rather than a group's jobs
/// (the journal, ZMQ's silence check, the submitter's stale check).
pub type TemplateReceiver = watch::Receiver<Option<Arc<Template>>>;

/// A group's jobs as a `watch` channel: a connection that falls behind
/// sees only the newest.
#[derive(Debug)]
pub struct JobFeed(watch::Sender<Option<Arc<Job>>>);

impl Default for JobFeed {
    fn default() -> JobFeed {
        JobFeed(watch::channel(None).0)
    }
}

impl Feed for JobFeed {
    type Receiver = JobReceiver;

    fn publish(&self, job: Arc<Job>) {
        self.0.send_replace(Some(job));
    }

    fn withdraw(&self) {
        self.0.send_replace(None);
    }

    fn nudge(&self) {
        self.0.send_if_modified(|job| job.is_some());
    }

    fn subscribe(&self) -> (JobReceiver, Option<Arc<Job>>) {
        let mut jobs = self.0.subscribe();
        let current = jobs.borrow_and_update().clone();
        (jobs, current)
    }
}

/// The payout groups whose connections are woken by a channel.
pub type Groups = PayoutGroups<JobFeed>;

/// Builds jobs from templates and publishes them, group by group.
pub struct JobManager {
    groups: Arc<Groups>,
    templates: watch::Sender<Option<Arc<Template>>>,
}

impl JobManager {
    /// See [`PayoutGroups::new`].
    pub fn new(config: JobConfig, first_id: u64, payouts: Payouts) -> Arc<JobManager> {
        Arc::new(JobManager {
            groups: PayoutGroups::new(config, first_id, payouts),
            templates: watch::channel(None).0,
        })
    }

    /// The payout groups, which sessions join.
    pub fn groups(&self) -> &Arc<Groups> {
        &self.groups
    }

    /// [`JobManager::publish`], on the blocking pool when there are more
    /// than [`INLINE_GROUPS`] groups: building thousands of jobs would hold
    /// a runtime thread (and the connections on it) for milliseconds.
    pub async fn publish_off_runtime(
        self: &Arc<Self>,
        template: Arc<Template>,
    ) -> Result<Option<Arc<Job>>, CoinbaseError> {
        if self.groups.group_count() <= INLINE_GROUPS {
            return self.publish(template);
        }
        let manager = self.clone();
        match tokio::task::spawn_blocking(move || manager.publish(template)).await {
            Ok(published) => published,
            // Only a panic in publish, passed on as if it ran here.
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    /// Builds the jobs of `template` for every group with miners on it (and
    /// the fixed one), hands each to its group, then the template to its
    /// channel; returns the first job.
    pub fn publish(&self, template: Arc<Template>) -> Result<Option<Arc<Job>>, CoinbaseError> {
        let first = self.groups.publish(template.clone())?;
        self.templates.send_replace(Some(template));
        Ok(first)
    }

    /// The newest template, whatever the groups.
    pub fn templates(&self) -> TemplateReceiver {
        self.templates.subscribe()
    }
}

/// Builds and publishes the jobs of each new template the node side hands
/// over, and says which one it has built, until `shutdown`. When the node
/// side says no node serves, miners mine the first upstream pool with a
/// job ([`Pools`]), or are closed when there is none. While one serves,
/// `routing` (`[[route]]`) keeps its pools' lanes and plans.
pub async fn run(
    manager: Arc<JobManager>,
    jobs_in: JobsIn,
    (mut pools, mut routing): (Pools, Option<Routing>),
    events: Events,
    shutdown: CancellationToken,
) {
    let JobsIn {
        mut templates,
        built,
    } = jobs_in;
    // Whether the node side handed over something not read yet.
    let mut pending = false;
    loop {
        if !std::mem::take(&mut pending) {
            let routed = async {
                match routing.as_mut() {
                    Some(routing) => routing.wait().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = templates.changed() => if changed.is_err() { return },
                _ = routed => {
                    if let Some(routing) = routing.as_mut() {
                        routing.update(&manager);
                    }
                    continue;
                }
            }
        }
        let Some(new) = templates.borrow_and_update().clone() else {
            // No node serves: the pools' jobs until a template comes, or
            // every group's work goes, which closes its connections.
            if let Some(routing) = routing.as_mut() {
                routing.pause();
            }
            if !on_pools(&manager, &mut templates, &mut pools, &events, &shutdown).await {
                return;
            }
            // The routed pools' lanes as they are now, before the node's
            // jobs send miners to them.
            if let Some(routing) = routing.as_mut() {
                routing.update(&manager);
            }
            pending = true;
            continue;
        };
        let template = &new.template;
        let (height, transactions, prev_hash) =
            (template.height, template.tx_count, template.prev_hash);
        match manager.publish_off_runtime(new.template.clone()).await {
            Ok(job) => {
                let job = job.map_or_else(|| "none".to_owned(), |job| job.id.to_string());
                let tip_to_job = new.new_tip.then(|| new.noticed.elapsed().as_secs_f64());
                events.job(JobEvent::Published {
                    height,
                    transactions,
                    prev_hash: prev_hash.to_string(),
                    tip_to_job,
                });
                tracing::info!(
                    height,
                    transactions,
                    job,
                    groups = manager.groups.group_count(),
                    clean = new.new_tip,
                    fetch_ms = new.noticed.elapsed().as_millis() as u64,
                    "new job"
                );
            }
            Err(error) => tracing::error!(%error, height, "cannot build a job from the template"),
        }
        built.send_replace(new.seq);
    }
}

mod pools;
mod routes;

use pools::on_pools;
pub use pools::{Pools, LANE_LAG, MIN_POOL_JOB_INTERVAL, URGENT_GATHER};
pub use routes::Routing;

#[cfg(test)]
mod tests;
