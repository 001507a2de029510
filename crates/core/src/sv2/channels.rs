//! Opening, updating and closing a connection's mining channels.

use std::collections::VecDeque;
use std::sync::Arc;

use super::message::Open as OpenRequest;
use super::{GroupKey, Open, Outbound, Output, Sv2Session, EXTENDED_GROUP, STANDARD_GROUP};
use crate::chain::Target;
use crate::channel::{Channel, Event, Now};
use crate::stratum::method::worker_name_issue;
use crate::work::groups::Feed;

/// 2^32: hashes per unit of difficulty.
const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;

/// Refuses an open: the error the client is sent, the event the operator
/// counts.
pub(super) fn refuse<R>(out: &mut Output<R>, request_id: u32, refusal: OpenRefusal) {
    out.messages.push(Outbound::OpenError {
        request_id,
        code: refusal.code(),
    });
    out.events.push(Event::ChannelRefused {
        reason: refusal.code(),
    });
}

/// The difficulty a little-endian target asks for.
pub(super) fn difficulty_of(target: &[u8; 32]) -> f64 {
    Target::from_le_bytes(target).difficulty()
}

/// A difficulty's target, little-endian as Stratum V2 sends it.
pub(super) fn target_le(difficulty: f64) -> [u8; 32] {
    let mut bytes = Target::from_difficulty(difficulty).to_be_bytes();
    bytes.reverse();
    bytes
}

/// Why a channel was not opened: the `OpenMiningChannel.Error` code, and
/// the `reason` label of `ndas_channel_refusals_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenRefusal {
    /// The connection's channels, or all connections' together, are at
    /// their bound; or no extranonce1 is free.
    ChannelLimit,
    /// The `user_identity` cannot be a worker's name.
    InvalidUsername,
    /// Its name cannot be paid, or a payout group bound is reached.
    UnknownUser,
    /// It rolls more extranonce than the port gives.
    MinExtranonceSize,
    /// Its `max_target` asks for more than the port's greatest difficulty.
    MaxTargetOutOfRange,
    /// An extended channel after a setup for standard jobs only.
    ChannelFlags,
}

impl OpenRefusal {
    crate::labels! {
        /// Every code [`OpenRefusal::code`] gives.
        CODES;
        /// The code sent, and the metric label.
        fn code;
        OpenRefusal::ChannelLimit => "channel-limit-reached",
        OpenRefusal::InvalidUsername => "invalid-username",
        OpenRefusal::UnknownUser => "unknown-user",
        OpenRefusal::MinExtranonceSize => "unsupported-min-extranonce-size",
        OpenRefusal::MaxTargetOutOfRange => "max-target-out-of-range",
        OpenRefusal::ChannelFlags => "unsupported-channel-flags",
    }
}

impl<F: Feed> Sv2Session<F> {
    /// Opens a channel: standard when `extended` is `None`, else extended
    /// with the least extranonce size its client rolls.
    pub(super) fn open(
        &mut self,
        request: OpenRequest,
        extended: Option<u16>,
        now: Now,
        out: &mut Output<F::Receiver>,
    ) {
        let request_id = request.request_id;
        let refuse = |out: &mut Output<F::Receiver>, refusal: OpenRefusal| {
            refuse(out, request_id, refusal);
        };
        if self.channels.len() >= self.limits.max_channels {
            return refuse(out, OpenRefusal::ChannelLimit);
        }
        // Bound and printable as a Stratum V1 username must be: it is the
        // worker's name in the registry, the logs and the page.
        if worker_name_issue(&request.user_identity).is_some() {
            return refuse(out, OpenRefusal::InvalidUsername);
        }
        let extranonce2_size = self.config.extranonce2_size;
        if extended.is_some_and(|min| usize::from(min) > extranonce2_size) {
            return refuse(out, OpenRefusal::MinExtranonceSize);
        }
        // The easiest target the client takes is a floor on its difficulty.
        let floor = difficulty_of(&request.max_target);
        if floor.is_nan() || floor > self.config.vardiff.max {
            return refuse(out, OpenRefusal::MaxTargetOutOfRange);
        }
        let Some(slot) = self.limits.budget.take() else {
            return refuse(out, OpenRefusal::ChannelLimit);
        };
        let Some(lease) = self.extranonces.allocate() else {
            return refuse(out, OpenRefusal::ChannelLimit);
        };
        let mut channel = Channel::new(self.config.clone(), lease.extranonce1, now);
        if let Some(manager) = &self.manager {
            channel = channel.with_payouts(manager.clone());
        }
        if let Some(source) = self.source {
            channel = channel.from_source(source);
        }
        channel.start_for_agent(self.user_agent.as_deref());
        // Its stated hashrate starts it near one share per vardiff's
        // interval; vardiff corrects a wrong one.
        let hashrate = f64::from(request.nominal_hash_rate);
        if hashrate.is_finite() && hashrate > 0.0 {
            let interval = self.config.vardiff.target_share_seconds;
            channel.suggest_difficulty(hashrate * interval / HASHES_PER_DIFFICULTY, now);
        }
        if floor > self.config.vardiff.min {
            channel.set_floor(floor, false, now);
        }
        let user = request.user_identity;
        if channel
            .authorize(user.clone(), false, &mut out.events)
            .is_err()
        {
            // Its name cannot be paid, or a payout group bound is reached
            // (the event says which).
            return refuse(out, OpenRefusal::UnknownUser);
        }
        let _ = channel.take_moved();
        let mut group = None;
        if let Some((receiver, current)) = channel.jobs() {
            let key = channel
                .group()
                .map_or(0, |g| Arc::as_ptr(g) as *const () as GroupKey);
            if !self.channels.iter().any(|o| o.group == Some(key)) {
                out.subscribe.push((key, receiver));
            }
            group = Some(key);
            if let Some(job) = current {
                channel.set_latest(job);
            }
        }
        let id = self.next_channel_id;
        self.next_channel_id = self
            .next_channel_id
            .wrapping_add(1)
            .max(super::FIRST_CHANNEL_ID);
        let announce = channel.start(now, &mut out.events);
        let (announced, started) = (announce.difficulty, announce.job.is_some());
        let difficulty = announced
            .or(channel.sent_difficulty())
            .unwrap_or(self.config.vardiff.start);
        // What it mines: of a pool's lanes, its own lane's job.
        let first = channel.latest().cloned().filter(|_| started);
        let extranonce1 = lease.extranonce1.0.to_vec();
        let target = target_le(difficulty);
        out.messages.push(match extended {
            None => Outbound::OpenStandardSuccess {
                request_id,
                channel_id: id,
                target,
                // A standard channel rolls no extranonce: its prefix is
                // the whole of it, the rolled part zeros.
                extranonce_prefix: [extranonce1, vec![0; extranonce2_size]].concat(),
                group_channel_id: STANDARD_GROUP,
            },
            Some(_) => Outbound::OpenExtendedSuccess {
                request_id,
                channel_id: id,
                target,
                extranonce_size: extranonce2_size as u16,
                extranonce_prefix: extranonce1,
                group_channel_id: EXTENDED_GROUP,
            },
        });
        let mut open = Open {
            id,
            standard: extended.is_none(),
            channel,
            _lease: lease,
            _slot: slot,
            group,
            user,
            ids: VecDeque::new(),
            next_job_id: 1,
            primed: false,
        };
        // The first job after the open: a future job and the
        // `SetNewPrevHash` naming it.
        if let Some(job) = first {
            open.send(None, Some((&job, true)), &mut out.messages);
        }
        // And its target once more, as ckpool does: a proxy that set its
        // miners' difficulty from its own settings takes the pool's now
        // (the reference translator does with its vardiff off).
        out.messages.push(Outbound::SetTarget {
            channel_id: id,
            target,
        });
        self.channels.push(open);
    }

    /// `UpdateChannel`: its maximum target is a floor on the channel's
    /// difficulty; the channel's target is sent back either way.
    pub(super) fn update(
        &mut self,
        channel_id: u32,
        maximum_target: &[u8; 32],
        now: Now,
        out: &mut Output<F::Receiver>,
    ) {
        let max = self.config.vardiff.max;
        let Some(open) = self.channels.iter_mut().find(|o| o.id == channel_id) else {
            out.messages.push(Outbound::UpdateChannelError {
                channel_id,
                code: "invalid-channel-id",
            });
            return;
        };
        let floor = difficulty_of(maximum_target);
        if floor.is_nan() || floor > max {
            out.messages.push(Outbound::UpdateChannelError {
                channel_id,
                code: "max-target-out-of-range",
            });
            return;
        }
        open.channel.set_floor(floor, false, now);
        let difficulty = open
            .channel
            .difficulty_to_send(false, &mut out.events)
            .or(open.channel.sent_difficulty());
        if let Some(difficulty) = difficulty {
            out.messages.push(Outbound::SetTarget {
                channel_id,
                target: target_le(difficulty),
            });
        }
    }

    /// `CloseChannel`: its extranonce1 is free again; its group's jobs are
    /// no longer waited on when no other channel mines for it.
    pub(super) fn close_channel(&mut self, channel_id: u32, out: &mut Output<F::Receiver>) {
        let Some(index) = self.channels.iter().position(|o| o.id == channel_id) else {
            return;
        };
        let closed = self.channels.swap_remove(index);
        if let Some(key) = closed.group {
            if !self.channels.iter().any(|o| o.group == Some(key)) {
                out.unsubscribe.push(key);
            }
        }
    }
}
