//! What the rest of NDAS holds of the upstream connections: each pool's
//! newest job for the job stage (a `watch` channel per upstream, none
//! while it has no usable job), and a queue per upstream for the shares
//! miners find on its jobs.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use ndas_core::channel::Forward;
use ndas_core::work::pool::PoolWork;

/// Shares queued for one upstream connection at most: a pool answers in
/// milliseconds, and past this the connection is not keeping up.
pub const QUEUED_SHARES: usize = 4096;

/// One upstream's newest job, as the job stage reads it.
pub type PoolFeed = watch::Receiver<Option<Arc<PoolWork>>>;

/// The sending ends, kept by each upstream's task.
pub struct UpstreamEnds {
    pub work: watch::Sender<Option<Arc<PoolWork>>>,
    pub shares: mpsc::Receiver<Forward>,
}

/// Where miners' connections send shares for each upstream.
pub struct Forwarders {
    queues: Vec<mpsc::Sender<Forward>>,
    names: Vec<String>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Forwarders {
    /// Hands `forward` to its upstream's connection; a share for an
    /// upstream whose queue is full is counted `dropped`, never waited on.
    pub fn send(&self, forward: &Forward) {
        let Some(queue) = self.queues.get(forward.pool) else {
            return;
        };
        if queue.try_send(forward.clone()).is_err() {
            self.metrics
                .upstreams
                .share(&self.names[forward.pool], "dropped");
        }
    }
}

/// The links of `names`, in order: the job stage's feeds, the
/// connections' forwarders, and each upstream task's ends.
pub fn links(
    names: &[String],
    metrics: Arc<crate::metrics::Metrics>,
) -> (Vec<PoolFeed>, Arc<Forwarders>, Vec<UpstreamEnds>) {
    let mut feeds = Vec::new();
    let mut queues = Vec::new();
    let mut ends = Vec::new();
    for _ in names {
        let (work, feed) = watch::channel(None);
        let (queue, shares) = mpsc::channel(QUEUED_SHARES);
        feeds.push(feed);
        queues.push(queue);
        ends.push(UpstreamEnds { work, shares });
    }
    let forwarders = Arc::new(Forwarders {
        queues,
        names: names.to_vec(),
        metrics,
    });
    (feeds, forwarders, ends)
}
