//! What the rest of NDAS holds of the upstream connections: each pool's
//! newest job per connection ("lane", [`ndas_core::work::lanes`]) for the
//! job stage, the seats miners take on its lanes, and a queue per lane for
//! the shares miners find on its jobs.

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, watch};

use ndas_core::channel::Forward;
use ndas_core::work::lanes::Seats;
use ndas_core::work::pool::PoolWork;

/// Shares queued for one upstream connection at most: a pool answers in
/// milliseconds, and past this the connection is not keeping up.
pub const QUEUED_SHARES: usize = 4096;

/// A pool's lanes' newest jobs, by lane (none while a lane has no usable
/// job, or is closed).
pub type LaneWork = Vec<Option<Arc<PoolWork>>>;

/// One upstream's jobs as the job stage reads them, and its seats.
#[derive(Clone)]
pub struct PoolFeed {
    pub work: watch::Receiver<LaneWork>,
    pub seats: Arc<Seats>,
}

/// Where miners' connections send shares for each upstream's lanes.
pub struct Forwarders {
    /// By pool, then lane: set when the lane's task starts.
    queues: Vec<Box<[OnceLock<mpsc::Sender<Forward>>]>>,
    names: Vec<String>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Forwarders {
    /// Hands `forward` to its lane's connection; a share for a lane whose
    /// queue is full (or that never opened) is counted `dropped`, never
    /// waited on.
    pub fn send(&self, forward: &Forward) {
        let Some(lanes) = self.queues.get(forward.pool) else {
            return;
        };
        let sent = lanes
            .get(forward.lane)
            .and_then(OnceLock::get)
            .is_some_and(|queue| queue.try_send(forward.clone()).is_ok());
        if !sent {
            self.metrics
                .upstreams
                .share(&self.names[forward.pool], "dropped");
        }
    }

    /// The receiving end of lane `lane` of pool `pool`'s queue, made now;
    /// none if it was made before or is past the pool's lanes.
    pub(super) fn open(&self, pool: usize, lane: usize) -> Option<mpsc::Receiver<Forward>> {
        let (queue, shares) = mpsc::channel(QUEUED_SHARES);
        self.queues[pool].get(lane)?.set(queue).ok()?;
        Some(shares)
    }
}

/// The links of `pools` (each a name and its seats), in order: the job
/// stage's feeds, the connections' forwarders, and each pool's sending
/// end of its lanes' jobs.
pub fn links(
    pools: &[(String, Arc<Seats>)],
    metrics: Arc<crate::metrics::Metrics>,
) -> (Vec<PoolFeed>, Arc<Forwarders>, Vec<watch::Sender<LaneWork>>) {
    let mut feeds = Vec::new();
    let mut senders = Vec::new();
    for (_, seats) in pools {
        let (work, feed) = watch::channel(Vec::new());
        feeds.push(PoolFeed {
            work: feed,
            seats: seats.clone(),
        });
        senders.push(work);
    }
    let forwarders = Arc::new(Forwarders {
        queues: pools
            .iter()
            .map(|(_, seats)| (0..seats.max_lanes()).map(|_| OnceLock::new()).collect())
            .collect(),
        names: pools.iter().map(|(name, _)| name.clone()).collect(),
        metrics,
    });
    (feeds, forwarders, senders)
}
