//! A share judged against the job it names, with the channel's history
//! (stale, duplicate, whose address the job pays) around the pure
//! [`validate`].

use std::sync::Arc;

use super::{Channel, Event, Feed, Now, Worker};
use crate::chain::Target;
use crate::share::{validate, Reject, ShareContext};
use crate::stratum::method::Submit;
use crate::work::payout::Payout;
use crate::FoundBlock;

impl<F: Feed> Channel<F> {
    /// Judges `submit` after the wire's own checks (`ready`: SV1's handshake
    /// phase); reports the share (and a block) in `events`. Accepted: the
    /// difficulty vardiff now wants announced, if any.
    pub fn submit(
        &mut self,
        submit: &Submit,
        ready: Result<(), Reject>,
        now: Now,
        events: &mut Vec<Event>,
    ) -> Result<Option<f64>, Reject> {
        // By index: the payout is borrowed, never cloned (in `fixed` mode
        // every connection shares its script, and its count would be a
        // contended atomic on every share).
        let found = self.workers.iter().position(|w| *w.name == *submit.worker);
        let worker = found.map(|i| self.workers[i].name.clone());
        let judged = ready.and_then(|()| self.judge(submit, worker.as_ref(), found, now, events));
        match judged {
            Ok(()) => Ok(self.after_share(now, events)),
            Err(reject) => {
                events.push(Event::Share {
                    worker,
                    difficulty: 0.0,
                    verdict: Err(reject),
                });
                Err(reject)
            }
        }
    }

    /// Checks a submission; on success records the share (and block) events
    /// (the accepted share event carries the credited difficulty).
    fn judge(
        &mut self,
        submit: &Submit,
        worker: Option<&Arc<str>>,
        index: Option<usize>,
        now: Now,
        events: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let worker = worker.ok_or(Reject::Unauthorized)?;
        let job_id = submit.job_id.ok_or(Reject::JobNotFound)?;
        let payout = index.and_then(|i| self.workers[i].payout.as_ref());
        let (tip, work_source) = (self.tip, self.work_source);
        let sent_difficulty = self.sent_difficulty;
        let sent = self
            .jobs
            .iter_mut()
            .rev()
            .find(|sent| sent.job.id == job_id)
            .ok_or(Reject::JobNotFound)?;
        let stale = Some(*sent.job.prev_hash()) != tip || super::source(&sent.job) != work_source;
        // The job pays this worker's address, or the share is not its (a
        // block on it is still submitted: it pays an address of this
        // connection's, and a block is never thrown away).
        // A pool's job pays the pool, whoever mines it.
        let pool = sent.job.pool.clone();
        let other_payout = pool.is_none()
            && payout.is_some_and(|payout| {
                !Arc::ptr_eq(&payout.script, &sent.job.payout.script)
                    && payout.script != sent.job.payout.script
            });
        // A share on a job whose tip was just replaced is stale as a share,
        // but if it meets the network target it is still submitted as a
        // block (as ckpool does): it may win the race for its height.
        let network = *sent.job.network_target();
        let (difficulty, target) = match sent_difficulty {
            _ if stale => (0.0, network),
            // A miner may apply a lowered difficulty at once: accept the easier target.
            Some(lower) if lower < sent.difficulty => (lower, Target::from_difficulty(lower)),
            _ => (sent.difficulty, sent.target),
        };
        let context = ShareContext {
            extranonce1: &self.extranonce1,
            extranonce2_size: self.config.extranonce2_size,
            version_mask: self.config.version_mask,
            target: &target,
            now_unix: now.unix,
        };
        let accepted = match validate(&sent.job, submit, &context) {
            Err(_) if stale => return Err(Reject::Stale),
            judged => judged?,
        };
        // Not this worker's share, and not a block: nothing to remember,
        // so the worker whose address it pays may still send it.
        if other_payout && !accepted.is_block {
            return Err(Reject::OtherPayout);
        }
        let key = u128::from_le_bytes(accepted.hash.0[..16].try_into().expect("16 of 32 bytes"));
        if !sent.accepted.insert(key) {
            return Err(if stale {
                Reject::Stale
            } else {
                Reject::Duplicate
            });
        }
        let mut recorded = false;
        if !stale && !other_payout {
            // The address's figures, when the connection mines for it now
            // (a share on an earlier worker's job counts for the pool alone).
            if let Some(mining) = &self.group {
                let group = mining.group();
                if pool.is_some() || Arc::ptr_eq(&group.payout.script, &sent.job.payout.script) {
                    group.record_share(difficulty, accepted.is_block, now.instant);
                    recorded = true;
                }
            }
            events.push(Event::Share {
                worker: Some(worker.clone()),
                difficulty,
                verdict: Ok(accepted.achieved),
            });
            if let Some(ticket) = &self.ticket {
                ticket.credit(difficulty);
            }
        }
        // A stale share gets here only when it meets the network's target
        // (a block, on a pool's job the pool's block): it still goes to the
        // pool, which judges whether its job still stands.
        if let Some(pool) = pool.filter(|pool| pool.target.is_met_by(&accepted.hash)) {
            let version = u32::from_le_bytes(
                accepted.header[..4]
                    .try_into()
                    .expect("an 80-byte header starts with its 4-byte version"),
            );
            events.push(Event::Forward(Box::new(super::Forward {
                pool: pool.pool,
                lane: pool.lane,
                connection: pool.connection,
                share: pool.share(&self.extranonce1.0, submit, version),
                worker: worker.clone(),
                difficulty,
                pool_difficulty: pool.target.difficulty(),
            })));
        }
        if accepted.is_block {
            // A block counts for the address it pays, whoever sent it.
            let paid = &sent.job.payout;
            if !recorded {
                let group = self
                    .manager
                    .as_ref()
                    .and_then(|m| m.group_paying(&paid.script));
                if let Some(group) = group {
                    group.record_block();
                }
            }
            let worker = if other_payout {
                paid_worker(&self.workers, paid)
            } else {
                worker.clone()
            };
            events.push(Event::Block(Box::new(FoundBlock {
                job: sent.job.clone(),
                header: accepted.header,
                hash: accepted.hash,
                extranonce1: self.extranonce1,
                extranonce2: submit.extranonce2,
                worker,
                received: now.instant,
            })));
        }
        if stale {
            return Err(Reject::Stale);
        }
        if other_payout {
            return Err(Reject::OtherPayout);
        }
        Ok(())
    }
}

/// Who a block on a job paying `paid` is recorded for (the journal, the
/// notifications, the blocks list), when another worker sent it: the
/// connection's latest worker of that address, or the address itself
/// (a resumed session's parked job, or an earlier worker's renamed).
fn paid_worker(workers: &[Worker], paid: &Payout) -> Arc<str> {
    workers
        .iter()
        .rev()
        .find(|w| w.payout.as_ref().is_some_and(|p| p.script == paid.script))
        .map_or_else(|| paid.address.clone(), |w| w.name.clone())
}
