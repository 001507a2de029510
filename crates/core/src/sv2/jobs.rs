//! A channel's jobs and targets as Stratum V2 messages, and its shares
//! judged.

use std::sync::Arc;

use super::channels::target_le;
use super::message::Submitted;
use super::{Open, Outbound, Output, Sv2Session};
use crate::chain::merkle::root_from_branch;
use crate::channel::{Event, Now, MAX_JOBS};
use crate::share::Reject;
use crate::stratum::method::{Extranonce2, Submit};
use crate::work::groups::Feed;
use crate::work::Job;

/// The `SubmitShares.Error` code of a rejected share: the spec's where it
/// has one, ckpool's otherwise (clients show it; none acts on it).
pub fn error_code(reject: Reject) -> &'static str {
    match reject {
        Reject::Unauthorized | Reject::NotSubscribed => "unauthorized-worker",
        Reject::JobNotFound => "invalid-job-id",
        Reject::Stale => "stale-share",
        Reject::Duplicate => "duplicate-share",
        Reject::LowDifficulty { .. } => "difficulty-too-low",
        Reject::Extranonce2Size { .. } => "invalid-extranonce-size",
        Reject::NtimeTooOld | Reject::NtimeTooNew | Reject::NtimeOutsideBits => "invalid-ntime",
        Reject::VersionBits => "invalid-version",
        Reject::OtherPayout => "other-payout",
    }
}

impl<F: Feed> Open<F> {
    /// Sends a new difficulty as `SetTarget`, then `job`: a future job and
    /// the `SetNewPrevHash` naming it when it starts a new tip (`clean`)
    /// or is the channel's first, a job with `min_ntime` otherwise.
    pub(super) fn send(
        &mut self,
        difficulty: Option<f64>,
        job: Option<(&Arc<Job>, bool)>,
        messages: &mut Vec<Outbound>,
    ) {
        if let Some(difficulty) = difficulty {
            messages.push(Outbound::SetTarget {
                channel_id: self.id,
                target: target_le(difficulty),
            });
        }
        let Some((job, clean)) = job else {
            return;
        };
        let job_id = self.next_job_id;
        // Sequential ids: ESP-Miner keeps its jobs in `job_id % 8` slots.
        self.next_job_id = self.next_job_id.wrapping_add(1).max(1);
        if self.ids.len() == MAX_JOBS {
            self.ids.pop_front();
        }
        self.ids.push_back((job_id, job.id));
        let future = clean || !self.primed;
        let min_ntime = (!future).then_some(job.template.cur_time);
        messages.push(if self.standard {
            let extranonce1 = self.channel.extranonce1();
            let extranonce2 = vec![0; self.channel.config().extranonce2_size];
            let coinbase = job.coinbase.txid(&extranonce1.0, &extranonce2);
            Outbound::NewMiningJob {
                channel_id: self.id,
                job_id,
                min_ntime,
                version: job.version,
                merkle_root: root_from_branch(&coinbase, &job.branch).0,
            }
        } else {
            Outbound::NewExtendedJob {
                channel_id: self.id,
                job_id,
                min_ntime,
                job: job.clone(),
            }
        });
        if future {
            self.primed = true;
            messages.push(Outbound::SetNewPrevHash {
                channel_id: self.id,
                job_id,
                prev_hash: job.prev_hash().0,
                min_ntime: job.template.cur_time,
                nbits: job.template.bits,
            });
        }
    }
}

impl<F: Feed> Sv2Session<F> {
    /// `SubmitSharesStandard` (`extended` false) or `SubmitSharesExtended`.
    pub(super) fn submit(
        &mut self,
        submitted: Submitted,
        extended: bool,
        now: Now,
        out: &mut Output<F::Receiver>,
    ) {
        let (channel_id, sequence_number) = (submitted.channel_id, submitted.sequence_number);
        let error = |code| Outbound::SubmitError {
            channel_id,
            sequence_number,
            code,
        };
        let open = self.channels.iter_mut().find(|o| o.id == channel_id);
        let Some(open) = open.filter(|o| o.standard != extended) else {
            out.messages.push(error("invalid-channel-id"));
            return;
        };
        let job_id = open
            .ids
            .iter()
            .rev()
            .find(|(id, _)| *id == submitted.job_id)
            .map(|(_, job)| *job);
        let extranonce2 = if extended {
            // Longer than any channel rolls: judged as the wrong size.
            submitted
                .extranonce
                .unwrap_or_else(|| Extranonce2::from_bytes(&[]).expect("an empty extranonce fits"))
        } else {
            let zeros = [0u8; 16];
            let size = open.channel.config().extranonce2_size;
            Extranonce2::from_bytes(&zeros[..size]).expect("extranonce2_size is at most 16")
        };
        let submit = Submit {
            worker: open.user.clone(),
            job_id,
            extranonce2,
            ntime: submitted.ntime,
            nonce: submitted.nonce,
            // The whole version: the share check takes it as such.
            version_bits: Some(submitted.version),
        };
        match open.channel.submit(&submit, Ok(()), now, &mut out.events) {
            Ok(difficulty) => {
                let credited = out.events.iter().rev().find_map(|event| match event {
                    Event::Share {
                        verdict: Ok(_),
                        difficulty,
                        ..
                    } => Some(*difficulty),
                    _ => None,
                });
                out.messages.push(Outbound::SubmitSuccess {
                    channel_id,
                    last_sequence_number: sequence_number,
                    accepted: 1,
                    shares_sum: credited.map_or(1, |d| d.ceil().max(1.0) as u64),
                });
                open.send(difficulty, None, &mut out.messages);
            }
            Err(reject) => out.messages.push(error(error_code(reject))),
        }
    }
}
