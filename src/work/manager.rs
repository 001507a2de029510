//! Publishes jobs to every connection through one `watch` channel.
//!
//! A connection that falls behind sees only the newest job, which is the only
//! one worth mining; it compares the job's previous-block hash with the last it
//! sent to decide `clean_jobs`, so a skipped tip change is never missed.

use std::sync::Arc;

use tokio::sync::watch;

use super::job::{Job, JobConfig};
use crate::chain::coinbase::CoinbaseError;
use crate::node::template::Template;
use crate::stratum::method::JobId;

/// The receiving end every connection holds.
pub type JobReceiver = watch::Receiver<Option<Arc<Job>>>;

/// Builds jobs from templates and publishes them.
pub struct JobManager {
    config: JobConfig,
    next_id: u64,
    sender: watch::Sender<Option<Arc<Job>>>,
}

impl JobManager {
    /// Job ids start from `first_id`; give each process start a new range
    /// (e.g. from the clock) so a miner's share for a job of an earlier run is
    /// answered "job not found", never judged against another job.
    pub fn new(config: JobConfig, first_id: u64) -> (JobManager, JobReceiver) {
        let (sender, receiver) = watch::channel(None);
        let manager = JobManager {
            config,
            next_id: first_id.max(1),
            sender,
        };
        (manager, receiver)
    }

    /// Builds the job for `template` and hands it to every connection.
    pub fn publish(&mut self, template: Template) -> Result<Arc<Job>, CoinbaseError> {
        let job = Arc::new(Job::build(
            JobId(self.next_id),
            Arc::new(template),
            &self.config,
        )?);
        self.next_id += 1;
        self.sender.send_replace(Some(job.clone()));
        Ok(job)
    }

    /// The job miners have now.
    pub fn current(&self) -> Option<Arc<Job>> {
        self.sender.borrow().clone()
    }

    /// Another receiver, for a new listener or the stats.
    pub fn subscribe(&self) -> JobReceiver {
        self.sender.subscribe()
    }
}
