//! Shares sent to an SV2 pool and its answers: each credited to the tag
//! it was sent with, by sequence number, or given up.

use std::time::Instant;

use super::{bounded, Phase, Sv2Upstream, ToPool, NAMED_JOB_WAIT};
use crate::upstream::{Event, NotSent, Now, PoolError, Refusal, UpstreamShare};

impl<T> Sv2Upstream<T> {
    /// The `SubmitSharesExtended` for `share`, remembered under `tag` until
    /// the pool answers; or why it is not sent.
    pub fn submit(&mut self, share: &UpstreamShare, tag: T, now: Now) -> Result<ToPool, NotSent> {
        let Some(channel) = self.channel.as_ref().filter(|_| self.phase == Phase::Open) else {
            return Err(NotSent::NotReady);
        };
        let job = share.job_id.parse::<u32>().ok();
        let Some(&(job_id, version)) = job.and_then(|id| self.minable.iter().find(|j| j.0 == id))
        else {
            return Err(NotSent::UnknownJob(share.job_id.clone()));
        };
        if share.extranonce2.len() != channel.size {
            let (given, expected) = (share.extranonce2.len(), channel.size);
            return Err(NotSent::Extranonce2Size { given, expected });
        }
        let mask = self.version_mask;
        let version = match share.version_bits {
            Some(bits) if bits & !mask != 0 => return Err(NotSent::VersionBits { bits, mask }),
            Some(bits) => (version & !mask) | bits,
            None => version,
        };
        if self.in_flight.len() >= self.settings.limits.max_in_flight {
            return Err(NotSent::TooManyInFlight(self.in_flight.len()));
        }
        let sequence_number = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.in_flight.insert(sequence_number, (now.instant, tag));
        Ok(ToPool::SubmitExtended {
            channel_id: channel.id,
            sequence_number,
            job_id,
            nonce: share.nonce,
            ntime: share.ntime,
            version,
            extranonce: share.extranonce2.clone(),
        })
    }

    /// `SubmitShares.Success` answers every submit up to its sequence
    /// number that was not refused on its own.
    pub(super) fn accepted_up_to(&mut self, last: u32, now: Now, events: &mut Vec<Event<T>>) {
        let answered: Vec<u32> = self.in_flight.range(..=last).map(|(s, _)| *s).collect();
        for sequence in answered {
            self.answer(sequence, true, None, now, events);
        }
    }

    pub(super) fn rejected(
        &mut self,
        sequence: u32,
        code: &str,
        now: Now,
        events: &mut Vec<Event<T>>,
    ) {
        let reason = PoolError {
            code: None,
            message: bounded(code),
        };
        self.answer(sequence, false, Some(reason), now, events);
    }

    fn answer(
        &mut self,
        sequence: u32,
        accepted: bool,
        reason: Option<PoolError>,
        now: Now,
        events: &mut Vec<Event<T>>,
    ) {
        let Some((sent, tag)) = self.in_flight.remove(&sequence) else {
            return;
        };
        if accepted {
            self.counts.accepted += 1;
        } else {
            self.counts.rejected += 1;
        }
        events.push(Event::Answered {
            tag,
            accepted,
            reason,
            latency: now.instant.saturating_duration_since(sent),
        });
    }

    /// The passing of time: a handshake past its timeout is refused, and
    /// submits past theirs are given up. Call it every few seconds.
    pub fn tick(&mut self, now: Now, events: &mut Vec<Event<T>>) {
        if self.phase == Phase::Refused {
            return;
        }
        let waited = |since: Instant| now.instant.saturating_duration_since(since);
        let limit = self.settings.limits.handshake_timeout;
        if self.phase != Phase::Open && self.started.is_some_and(|at| waited(at) >= limit) {
            return self.refuse(Refusal::Timeout(limit), now, events);
        }
        if let Some((job, since)) = self.named.filter(|(_, at)| waited(*at) >= NAMED_JOB_WAIT) {
            let why = format!(
                "the pool's prev hash named job {job}, which did not come within {:?}",
                waited(since)
            );
            return self.refuse(Refusal::Protocol(why), now, events);
        }
        let limit = self.settings.limits.submit_timeout;
        let expired: Vec<u32> = self
            .in_flight
            .iter()
            .filter(|(_, (sent, _))| waited(*sent) >= limit)
            .map(|(sequence, _)| *sequence)
            .collect();
        for sequence in expired {
            self.give_up(sequence, now, events);
        }
    }

    pub(super) fn refuse(&mut self, reason: Refusal, now: Now, events: &mut Vec<Event<T>>) {
        if self.phase == Phase::Refused {
            return;
        }
        self.phase = Phase::Refused;
        events.push(Event::Refused { reason });
        let all: Vec<u32> = self.in_flight.keys().copied().collect();
        for sequence in all {
            self.give_up(sequence, now, events);
        }
    }

    fn give_up(&mut self, sequence: u32, now: Now, events: &mut Vec<Event<T>>) {
        if let Some((sent, tag)) = self.in_flight.remove(&sequence) {
            self.counts.unanswered += 1;
            let waited = now.instant.saturating_duration_since(sent);
            events.push(Event::Unanswered { tag, waited });
        }
    }
}
