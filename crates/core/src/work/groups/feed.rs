//! Where a payout group's newest job is put for its connections.
//!
//! The core builds a job and puts it in the group's feed; what wakes the
//! connections is the runtime's business. The server's feed is a `watch`
//! channel that each connection's loop waits on; the core's own, [`Latest`],
//! only keeps the job, for the state machine's tests and the fuzz bodies,
//! which hand jobs to their sessions themselves.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use crate::sync::LockAnyway;
use crate::work::Job;

/// A group's newest job, as its connections read it.
pub trait Feed: Default + Debug + Send + Sync + 'static {
    /// A connection's end: what its loop waits on for the next job.
    type Receiver: Send + 'static;
    /// The group's new job: from now on the only one worth mining.
    fn publish(&self, job: Arc<Job>);
    /// No job any more: the work is withdrawn (no node serves), and its
    /// connections are to be closed.
    fn withdraw(&self);
    /// Wakes the connections on the job they have, if there is one (a
    /// route's pool has new work, or miners were moved between routes).
    fn nudge(&self);
    /// A new receiver, and the job that was current when it was made: the
    /// receiver brings every job after that one, so none is missed between.
    fn subscribe(&self) -> (Self::Receiver, Option<Arc<Job>>);
}

/// A feed that keeps the newest job and wakes nobody.
#[derive(Debug, Default)]
pub struct Latest(Mutex<Option<Arc<Job>>>);

impl Feed for Latest {
    /// Nothing to wait on: whoever holds the session hands it its jobs.
    type Receiver = ();

    fn publish(&self, job: Arc<Job>) {
        *self.0.lock_anyway() = Some(job);
    }

    fn withdraw(&self) {
        *self.0.lock_anyway() = None;
    }

    fn nudge(&self) {}

    fn subscribe(&self) -> ((), Option<Arc<Job>>) {
        ((), self.0.lock_anyway().clone())
    }
}
