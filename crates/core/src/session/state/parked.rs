//! What a session leaves when its connection ends, and takes back when
//! its miner returns with the session id (see [`crate::session::resume`]).

use super::*;

/// What a session that ended leaves for its miner's return: the jobs it was
/// sent on the last tip, with the shares accepted on each.
#[derive(Default)]
pub struct Parked {
    jobs: VecDeque<SentJob>,
    tip: Option<Hash256>,
    /// Vardiff's choice when the session ended (0 when unknown: the floor).
    difficulty: f64,
}

impl Parked {
    /// The jobs it keeps alive, for the parked memory's count.
    pub fn jobs(&self) -> impl Iterator<Item = &Arc<Job>> {
        self.jobs.iter().map(|sent| &sent.job)
    }
}

impl<F: Feed> Session<F> {
    /// Ends the session: an authorized one parks the jobs it was sent on
    /// the last tip for its miner's return, then its extranonce1 is freed.
    pub fn retire(mut self, now: Instant) {
        let Some(resumptions) = self.resumptions.take() else {
            return;
        };
        if self.phase != Phase::Authorized || self.jobs.is_empty() {
            return;
        }
        let tip = self.tip;
        let jobs: VecDeque<SentJob> = std::mem::take(&mut self.jobs)
            .into_iter()
            .filter(|sent| Some(*sent.job.prev_hash()) == tip)
            .collect();
        let parked = Parked {
            jobs,
            tip,
            difficulty: self.difficulty,
        };
        // Parked before the lease is dropped: a quick return finds its jobs.
        resumptions.park(self.extranonce1, parked, now);
    }

    /// Takes back a recent session's extranonce1 and jobs, if it may.
    pub(super) fn resume(&mut self, previous: Extranonce1, now: Now, out: &mut Output) {
        let Some(resumptions) = &self.resumptions else {
            return;
        };
        let Some((lease, parked)) = resumptions.resume(previous, now.instant) else {
            return;
        };
        // The lease allocated at accept is dropped, and so freed.
        self.extranonce1 = lease.extranonce1;
        self.lease = Some(lease);
        self.jobs = parked.jobs;
        // Same tip: the first job goes out without clean_jobs, and the
        // miner keeps the work it had; unless a worker authorized before
        // this subscribe mines for another address than the parked jobs
        // pay (as `authorize` does on a switch): then it drops them.
        let other = self.group.as_ref().is_some_and(|mining| {
            let script = &mining.group().payout.script;
            self.jobs
                .iter()
                .any(|sent| sent.job.payout.script != *script)
        });
        self.tip = parked.tip.filter(|_| !other);
        self.difficulty = self.bounded(parked.difficulty);
        out.events.push(Event::Resumed);
    }
}
