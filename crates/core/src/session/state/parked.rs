//! What a session leaves when its connection ends, and takes back when
//! its miner returns with the session id (see [`crate::session::resume`]).

use super::*;

impl<F: Feed> Session<F> {
    /// Ends the session: an authorized one parks the jobs it was sent on
    /// the last tip for its miner's return, then its extranonce1 is freed.
    pub fn retire(mut self, now: Instant) {
        let Some(resumptions) = self.resumptions.take() else {
            return;
        };
        if self.phase != Phase::Authorized {
            return;
        }
        let Some(parked) = self.channel.park() else {
            return;
        };
        // Parked before the lease is dropped: a quick return finds its jobs.
        resumptions.park(self.channel.extranonce1(), parked, now);
    }

    /// Takes back a recent session's extranonce1 and jobs, if it may.
    pub(super) fn resume(&mut self, previous: Extranonce1, now: Now, out: &mut Output) {
        let Some(resumptions) = &self.resumptions else {
            return;
        };
        let Some((lease, parked)) = resumptions.resume(previous, now.instant) else {
            return;
        };
        self.channel.resume(lease.extranonce1, parked);
        // The lease allocated at accept is dropped, and so freed.
        self.lease = Some(lease);
        out.events.push(Event::Resumed);
    }
}
