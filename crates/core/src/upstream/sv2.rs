//! The client side of Stratum V2's Mining Protocol for one connection to
//! an upstream pool (`stratum2+tcp://`): [`Sv2Upstream`] is the SV2 twin
//! of [`UpstreamSession`](super::UpstreamSession). It opens one extended
//! channel, whose extranonce prefix and size are what a Stratum V1 pool's
//! extranonce1 and extranonce2 size are, and turns the pool's jobs, new
//! prev hashes and targets into the same [`Event`]s, so the rest of NDAS
//! (each miner's slice of the extranonce, the lanes, the crediting) does
//! not know which wire a pool speaks.
//!
//! Synchronous and free of I/O: the caller runs the Noise handshake, turns
//! frames into [`FromPool`] and [`ToPool`] into frames (the server's
//! `sv2::wire`), and feeds each message and the time. Every field the pool
//! sends is checked and bounded here.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use super::{
    paced, Event, Now, Refusal, SubmitCounts, UpstreamSettings, MAX_EXTRANONCE2_SIZE,
    REQUESTED_VERSION_MASK,
};
use crate::bucket::TokenBucket;
use crate::chain::target::Target;

mod answers;
mod coinbase;
mod jobs;
mod message;
#[cfg(test)]
mod order_tests;
#[cfg(test)]
mod tests;

use jobs::{PoolJob, Tip};
use message::message_channel;
pub use message::{FromPool, ToPool};

/// `SetupConnection`'s flag for the Mining Protocol: the client needs the
/// pool to allow version rolling on every job (ASIC firmware rolls).
pub const REQUIRES_VERSION_ROLLING: u32 = 0b100;
/// `SetupConnection.Success`'s flag for the Mining Protocol: the pool
/// takes no rolled version bits.
pub const REQUIRES_FIXED_VERSION: u32 = 0b1;
/// How long a submit waits for its answer, at least: pools may answer
/// shares in batches (the Stratum Reference Implementation's sample
/// configuration: every 10 shares, at 6 a minute).
pub const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(300);
/// The most bytes of an extranonce, prefix and client's part together
/// (the spec's bound).
const MAX_EXTRANONCE_BYTES: usize = 32;
/// How long a prev hash's job may be awaited: miners are on the last
/// tip's work meanwhile, whose shares the pool would call stale.
pub const NAMED_JOB_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// The request id of the one channel NDAS opens on a connection.
const OPEN_REQUEST_ID: u32 = 1;
/// The longest text kept of a pool's error code or host.
const MAX_TEXT_CHARS: usize = 255;

/// Where the connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `SetupConnection` sent.
    Setup,
    /// The channel asked for.
    Opening,
    /// The channel is open: shares may be submitted.
    Open,
    Refused,
}

/// The channel the pool opened.
#[derive(Clone, Debug)]
struct Opened {
    id: u32,
    group: u32,
    prefix: Vec<u8>,
    size: usize,
}

/// One connection to an SV2 pool, with one extended channel. `T` is the
/// caller's tag for a share's sender, handed back with the pool's answer.
#[derive(Debug)]
pub struct Sv2Upstream<T> {
    settings: UpstreamSettings,
    /// Where the pool is, for `SetupConnection`.
    endpoint: (String, u16),
    nominal_hash_rate: f32,
    /// The easiest target NDAS lets the pool set (little-endian): its
    /// miners' floor difficulty.
    max_target: [u8; 32],
    phase: Phase,
    started: Option<Instant>,
    channel: Option<Opened>,
    difficulty: Option<f64>,
    changes: Option<TokenBucket>,
    /// An easier target the pool set: it applies to jobs sent after it
    /// (spec 5.3.21; the pool judges a share by its job's target), so it
    /// reaches miners with the next job.
    easier: Option<f64>,
    tip: Option<Tip>,
    /// Jobs not mined yet: future ones (and an active one before any prev
    /// hash), newest last, bounded.
    waiting: VecDeque<PoolJob>,
    /// The job the current prev hash named, when it has not come yet, and
    /// since when.
    named: Option<(u32, Instant)>,
    /// Jobs shares may be sent on (mined), and their version.
    minable: VecDeque<(u32, u32)>,
    version_mask: u32,
    in_flight: BTreeMap<u32, (Instant, T)>,
    next_sequence: u32,
    counts: SubmitCounts,
}

impl<T> Sv2Upstream<T> {
    /// A connection whose Noise handshake is done, to the pool at
    /// `endpoint`. The pool sets its first target by `nominal_hash_rate`
    /// (H/s), never easier than `min_difficulty` (NDAS's miners' floor: a
    /// pool's vardiff takes an idle channel's target down, and a miner's
    /// difficulty is capped at the pool's). Submits are given up after
    /// [`ANSWER_WAIT`] at least: pools may answer them in batches.
    pub fn new(
        mut settings: UpstreamSettings,
        endpoint: (String, u16),
        nominal_hash_rate: f32,
        min_difficulty: f64,
    ) -> Sv2Upstream<T> {
        let limits = &mut settings.limits;
        limits.submit_timeout = limits.submit_timeout.max(ANSWER_WAIT);
        let mut max_target = Target::from_difficulty(min_difficulty).to_be_bytes();
        max_target.reverse();
        Sv2Upstream {
            settings,
            endpoint,
            nominal_hash_rate,
            max_target,
            phase: Phase::Setup,
            started: None,
            channel: None,
            difficulty: None,
            changes: None,
            easier: None,
            tip: None,
            waiting: VecDeque::new(),
            named: None,
            minable: VecDeque::new(),
            version_mask: REQUESTED_VERSION_MASK,
            in_flight: BTreeMap::new(),
            next_sequence: 0,
            counts: SubmitCounts::default(),
        }
    }

    /// `SetupConnection`, once per connection; the channel is asked for
    /// when the pool takes it.
    pub fn start(&mut self, now: Now) -> Vec<ToPool> {
        if self.started.is_some() {
            return Vec::new();
        }
        self.started = Some(now.instant);
        vec![ToPool::Setup {
            flags: REQUIRES_VERSION_ROLLING,
            host: self.endpoint.0.clone(),
            port: self.endpoint.1,
            agent: self.settings.agent.clone(),
        }]
    }

    /// Whether the pool refused the connection (it is to be dropped).
    pub fn is_refused(&self) -> bool {
        self.phase == Phase::Refused
    }

    /// Submits waiting for an answer.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// How the pool answered the shares sent so far.
    pub fn counts(&self) -> SubmitCounts {
        self.counts
    }

    /// Handles one message from the pool; what to send back, if anything
    /// (the channel's request once the setup is taken). After a refusal,
    /// messages are ignored.
    pub fn handle(
        &mut self,
        message: FromPool,
        now: Now,
        events: &mut Vec<Event<T>>,
    ) -> Vec<ToPool> {
        if self.phase == Phase::Refused {
            return Vec::new();
        }
        match self.receive(message, now, events) {
            Ok(out) => out,
            Err(refusal) => {
                self.refuse(refusal, now, events);
                Vec::new()
            }
        }
    }

    fn receive(
        &mut self,
        message: FromPool,
        now: Now,
        events: &mut Vec<Event<T>>,
    ) -> Result<Vec<ToPool>, Refusal> {
        if let Some(channel) = message_channel(&message) {
            let ours = self.channel.as_ref();
            if !ours.is_some_and(|c| c.id == channel || c.group == channel) {
                return Err(protocol(format!(
                    "a message for channel {channel}, which is not NDAS's"
                )));
            }
        }
        match message {
            FromPool::SetupSuccess { flags } if self.phase == Phase::Setup => {
                self.phase = Phase::Opening;
                if flags & REQUIRES_FIXED_VERSION != 0 {
                    return Err(protocol(
                        "the pool takes no rolled version bits (REQUIRES_FIXED_VERSION); \
                         NDAS's miners roll them, and the pool would refuse their shares",
                    ));
                }
                let size = u16::try_from(self.settings.min_extranonce2).unwrap_or(u16::MAX);
                return Ok(vec![ToPool::OpenExtended {
                    request_id: OPEN_REQUEST_ID,
                    user: self.settings.user.clone(),
                    nominal_hash_rate: self.nominal_hash_rate,
                    max_target: self.max_target,
                    min_extranonce_size: size,
                }]);
            }
            FromPool::SetupError { code } => {
                return Err(Refusal::Unsubscribed(format!(
                    "SetupConnection.Error {}",
                    bounded(&code)
                )))
            }
            FromPool::OpenSuccess {
                request_id: OPEN_REQUEST_ID,
                channel_id,
                target,
                extranonce_prefix,
                extranonce_size,
                group_channel_id,
            } if self.phase == Phase::Opening => self.opened(
                Opened {
                    id: channel_id,
                    group: group_channel_id,
                    prefix: extranonce_prefix,
                    size: usize::from(extranonce_size),
                },
                target,
                now,
                events,
            )?,
            FromPool::OpenError { code, .. } => {
                return Err(Refusal::Unauthorized(format!(
                    "OpenMiningChannel.Error {}",
                    bounded(&code)
                )))
            }
            FromPool::NewJob {
                job_id,
                min_ntime,
                version,
                version_rolling_allowed,
                merkle_path,
                coinbase_prefix,
                coinbase_suffix,
                ..
            } => {
                if !version_rolling_allowed {
                    self.version_mask = 0;
                    events.push(Event::VersionMask(0));
                    return Ok(Vec::new());
                }
                let job = self.job(
                    job_id,
                    min_ntime,
                    version,
                    merkle_path,
                    &coinbase_prefix,
                    &coinbase_suffix,
                )?;
                self.new_job(job, events);
            }
            FromPool::PrevHash {
                job_id,
                prev_hash,
                min_ntime,
                nbits,
                ..
            } => self.new_tip(job_id, prev_hash, min_ntime, nbits, now, events),
            FromPool::SetTarget { target, .. } => self.set_target(target, now, events)?,
            FromPool::SubmitSuccess {
                last_sequence_number,
                ..
            } => self.accepted_up_to(last_sequence_number, now, events),
            FromPool::SubmitError {
                sequence_number,
                code,
                ..
            } => self.rejected(sequence_number, &code, now, events),
            FromPool::SetExtranoncePrefix { channel_id, prefix } => {
                let Some(channel) = self.channel.as_mut().filter(|c| c.id == channel_id) else {
                    return Err(protocol("SetExtranoncePrefix for no channel of NDAS's"));
                };
                if prefix.len() + channel.size > MAX_EXTRANONCE_BYTES {
                    return Err(protocol(format!(
                        "SetExtranoncePrefix: an extranonce over {MAX_EXTRANONCE_BYTES} bytes"
                    )));
                }
                channel.prefix = prefix.clone();
                // Every job sent before it was cut for the old prefix.
                self.minable.clear();
                self.waiting.clear();
                self.named = None;
                events.push(Event::Extranonce {
                    extranonce1: prefix,
                    extranonce2_size: channel.size,
                });
            }
            FromPool::CloseChannel { code, .. } => {
                return Err(protocol(format!(
                    "the pool closed NDAS's channel: {}",
                    bounded(&code)
                )))
            }
            FromPool::Reconnect { host, port } => {
                let host = (!host.is_empty()).then(|| bounded(&host));
                events.push(Event::Reconnect {
                    host,
                    port: (port != 0).then_some(port),
                    wait: std::time::Duration::ZERO,
                });
            }
            FromPool::SetupSuccess { .. } | FromPool::OpenSuccess { .. } => {
                return Err(protocol("an answer to nothing NDAS asked"))
            }
            FromPool::SetGroupChannel { group, channels } => {
                if let Some(channel) = self.channel.as_mut() {
                    if channels.contains(&channel.id) {
                        channel.group = group;
                    }
                }
            }
            FromPool::Other(_) => {}
        }
        Ok(Vec::new())
    }

    /// The channel: its extranonce must leave a slice per miner.
    fn opened(
        &mut self,
        channel: Opened,
        target: [u8; 32],
        now: Now,
        events: &mut Vec<Event<T>>,
    ) -> Result<(), Refusal> {
        let needed = self.settings.min_extranonce2;
        if channel.size > MAX_EXTRANONCE2_SIZE {
            return Err(protocol(format!(
                "an extranonce size of {} (at most {MAX_EXTRANONCE2_SIZE})",
                channel.size
            )));
        }
        if channel.size < needed {
            let given = channel.size;
            return Err(Refusal::ExtranonceTooSmall { given, needed });
        }
        if channel.prefix.len() + channel.size > MAX_EXTRANONCE_BYTES {
            return Err(protocol(format!(
                "an extranonce over {MAX_EXTRANONCE_BYTES} bytes"
            )));
        }
        self.phase = Phase::Open;
        events.push(Event::Ready {
            extranonce1: channel.prefix.clone(),
            extranonce2_size: channel.size,
            version_mask: self.version_mask,
        });
        self.channel = Some(channel);
        self.set_target(target, now, events)
    }

    /// The pool's target, as the difficulty NDAS's jobs carry: a hair
    /// above the exact one, so a share NDAS forwards always meets the
    /// pool's integer target.
    fn set_target(
        &mut self,
        target: [u8; 32],
        now: Now,
        events: &mut Vec<Event<T>>,
    ) -> Result<(), Refusal> {
        let target = Target::from_le_bytes(&target);
        let difficulty = target.difficulty() * (1.0 + 1e-9);
        if !difficulty.is_finite() || difficulty <= 0.0 {
            return Err(protocol("SetTarget: a target of zero"));
        }
        if self.easier.unwrap_or(self.difficulty.unwrap_or(f64::NAN)) == difficulty {
            return Ok(());
        }
        let per_minute = self.settings.limits.difficulty_changes_per_minute;
        if self.difficulty.is_some() && !paced(&mut self.changes, per_minute, now) {
            return Err(Refusal::FloodsDifficulty(per_minute));
        }
        match self.difficulty {
            // Easier: for the jobs the pool sends from now on.
            Some(current) if difficulty < current => self.easier = Some(difficulty),
            _ => {
                self.easier = None;
                self.difficulty = Some(difficulty);
                events.push(Event::Difficulty(difficulty));
            }
        }
        Ok(())
    }

    /// `UpdateChannel` telling the pool the hashrate the channel carries
    /// now, once it is open: the pool sets its target by it.
    pub fn update(&mut self, nominal_hash_rate: f32) -> Option<ToPool> {
        let channel = self
            .channel
            .as_ref()
            .filter(|_| self.phase == Phase::Open)?;
        self.nominal_hash_rate = nominal_hash_rate;
        Some(ToPool::UpdateChannel {
            channel_id: channel.id,
            nominal_hash_rate,
            maximum_target: self.max_target,
        })
    }
}

fn protocol(what: impl Into<String>) -> Refusal {
    Refusal::Protocol(what.into())
}

fn bounded(text: &str) -> String {
    text.chars().take(MAX_TEXT_CHARS).collect()
}
