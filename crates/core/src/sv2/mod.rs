//! Stratum V2's Mining Protocol: one connection's state machine, a second
//! wire around the same [`Channel`]s that Stratum V1's
//! [`crate::session::Session`] holds one of.
//!
//! A connection is set up once (`SetupConnection`), then opens mining
//! channels, each a [`Channel`] with an extranonce1 lease of its own
//! (unique across replicas, as Stratum V1's): standard channels (header-only
//! miners such as ESP-Miner: NDAS computes each job's merkle root with the
//! channel's whole extranonce) and extended channels (proxies such as the
//! Stratum Reference Implementation's translator: the coinbase halves and
//! merkle path, the channel rolling `extranonce2_size` bytes after its
//! prefix). Jobs go out as a future job and the `SetNewPrevHash` naming
//! it on a new tip, as a job with `min_ntime` otherwise; difficulty as
//! `SetTarget`; shares are judged by the channel as Stratum V1's are.
//!
//! Synchronous and free of I/O, like the V1 session: the server's loop
//! reads frames, turns them into [`Inbound`] and sends the [`Outbound`]s.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::channel::{Channel, Event, Now, SessionConfig};
use crate::stratum::method::JobId;
use crate::work::extranonce::{ExtranonceAllocator, Lease};
use crate::work::groups::{Feed, Latest};
use crate::work::Job;
use crate::work::PayoutGroups;

mod channels;
mod jobs;
#[cfg(test)]
mod lane_tests;
#[cfg(test)]
mod limit_tests;
pub mod message;
#[cfg(test)]
mod tests;

pub use channels::OpenRefusal;
use message::{flags, Setup, MINING_PROTOCOL, PROTOCOL_VERSION};
pub use message::{Inbound, Outbound};

/// The group every standard channel belongs to (no `SetGroupChannel` is
/// sent: jobs go to each channel); channel ids start after the groups'.
pub const STANDARD_GROUP: u32 = 0;
/// The group every extended channel belongs to.
pub const EXTENDED_GROUP: u32 = 1;
const FIRST_CHANNEL_ID: u32 = 2;
/// The `SetupConnection.vendor` the Stratum Reference Implementation's
/// roles send.
const REFERENCE_VENDOR: &str = "SRI";

/// A payout group, told apart by its address in memory while one of the
/// connection's channels mines for it (and so keeps it alive).
pub type GroupKey = usize;

/// What bounds one connection besides the port's settings.
#[derive(Clone, Debug)]
pub struct Sv2Limits {
    /// Channels one connection may hold open (a translating proxy opens
    /// one per miner behind it).
    pub max_channels: usize,
    /// Channels open across every connection.
    pub budget: Arc<ChannelBudget>,
}

/// The channels open across every Stratum V2 connection, within a bound:
/// each holds an extranonce1 lease from the space Stratum V1's connections
/// lease theirs from, so a few connections of many channels cannot take it.
#[derive(Debug)]
pub struct ChannelBudget {
    open: AtomicUsize,
    max: usize,
}

/// One open channel's place in the [`ChannelBudget`], given back on drop.
#[derive(Debug)]
struct ChannelSlot(Arc<ChannelBudget>);

impl ChannelBudget {
    pub fn new(max: usize) -> Arc<ChannelBudget> {
        Arc::new(ChannelBudget {
            open: AtomicUsize::new(0),
            max,
        })
    }

    /// Channels open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn take(self: &Arc<Self>) -> Option<ChannelSlot> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            });
        taken.ok().map(|_| ChannelSlot(self.clone()))
    }
}

impl Drop for ChannelSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a turn of the state machine produced.
#[derive(Debug)]
pub struct Output<R> {
    /// Messages to send, in order.
    pub messages: Vec<Outbound>,
    pub events: Vec<Event>,
    /// The connection is to be closed once `messages` are sent.
    pub close: bool,
    /// Payout groups the connection now waits on the jobs of.
    pub subscribe: Vec<(GroupKey, R)>,
    /// Payout groups no channel of the connection mines for any more.
    pub unsubscribe: Vec<GroupKey>,
}

impl<R> Default for Output<R> {
    fn default() -> Self {
        Output {
            messages: Vec::new(),
            events: Vec::new(),
            close: false,
            subscribe: Vec::new(),
            unsubscribe: Vec::new(),
        }
    }
}

/// One open mining channel.
struct Open<F: Feed> {
    id: u32,
    standard: bool,
    channel: Channel<F>,
    /// Frees the channel's extranonce1 and its place in the budget when
    /// the channel closes.
    _lease: Lease,
    _slot: ChannelSlot,
    /// Its payout group's key (none without payout groups: unit tests).
    group: Option<GroupKey>,
    /// The worker name shares are judged for: the `user_identity`.
    user: String,
    /// Job ids sent on this channel and the jobs they name, oldest first.
    ids: VecDeque<(u32, JobId)>,
    next_job_id: u32,
    /// A `SetNewPrevHash` was sent: later jobs on its tip carry `min_ntime`.
    primed: bool,
}

/// One Stratum V2 connection.
pub struct Sv2Session<F: Feed = Latest> {
    config: Arc<SessionConfig>,
    limits: Sv2Limits,
    extranonces: Arc<ExtranonceAllocator>,
    manager: Option<Arc<PayoutGroups<F>>>,
    source: Option<IpAddr>,
    /// The `SetupConnection` flags, once set up.
    flags: Option<u32>,
    /// `vendor/firmware` of the setup, matched against the user agent table.
    user_agent: Option<String>,
    /// The setup's vendor is the Stratum Reference Implementation, whose
    /// roles (its translator 0.6.0) panic on `Reconnect`.
    reference_client: bool,
    channels: Vec<Open<F>>,
    next_channel_id: u32,
}

impl<F: Feed> Sv2Session<F> {
    pub fn new(
        config: Arc<SessionConfig>,
        limits: Sv2Limits,
        extranonces: Arc<ExtranonceAllocator>,
    ) -> Sv2Session<F> {
        Sv2Session {
            config,
            limits,
            extranonces,
            manager: None,
            source: None,
            flags: None,
            user_agent: None,
            reference_client: false,
            channels: Vec::new(),
            next_channel_id: FIRST_CHANNEL_ID,
        }
    }

    /// Channels are paid as `manager`'s groups say.
    pub fn with_payouts(mut self, manager: Arc<PayoutGroups<F>>) -> Sv2Session<F> {
        self.manager = Some(manager);
        self
    }

    /// The client connects from `source` (an IPv6 host by its /64).
    pub fn from_source(mut self, source: IpAddr) -> Sv2Session<F> {
        self.source = Some(source);
        self
    }

    /// Whether `SetupConnection` was answered with success.
    pub fn is_set_up(&self) -> bool {
        self.flags.is_some()
    }

    /// `vendor/firmware` of the setup.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// Channels open now.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Handles one message from the client.
    pub fn handle(&mut self, message: Inbound, now: Now, out: &mut Output<F::Receiver>) {
        let Some(setup_flags) = self.flags else {
            match message {
                Inbound::SetupConnection(setup) => self.setup(setup, out),
                // Nothing is served before the connection is set up.
                _ => out.close = true,
            }
            return;
        };
        match message {
            // Set up once: a second setup is a broken client.
            Inbound::SetupConnection(_) => out.close = true,
            Inbound::OpenStandard(open) => self.open(open, None, now, out),
            Inbound::OpenExtended {
                open,
                min_extranonce_size,
            } => {
                if setup_flags & flags::REQUIRES_STANDARD_JOBS != 0 {
                    // It said it takes standard jobs only.
                    let refusal = OpenRefusal::ChannelFlags;
                    channels::refuse(out, open.request_id, refusal);
                } else {
                    self.open(open, Some(min_extranonce_size), now, out);
                }
            }
            Inbound::UpdateChannel {
                channel_id,
                maximum_target,
                ..
            } => self.update(channel_id, &maximum_target, now, out),
            Inbound::CloseChannel { channel_id } => self.close_channel(channel_id, out),
            Inbound::SubmitStandard(submitted) => self.submit(submitted, false, now, out),
            Inbound::SubmitExtended(submitted) => self.submit(submitted, true, now, out),
            // Group and custom-job messages, or another protocol's: not
            // a mining client's to send, and nothing to answer.
            Inbound::Unsupported(_) => {}
        }
    }

    fn setup(&mut self, setup: Setup, out: &mut Output<F::Receiver>) {
        let error = if setup.protocol != MINING_PROTOCOL {
            Some((0, "unsupported-protocol"))
        } else if !(setup.min_version..=setup.max_version).contains(&PROTOCOL_VERSION) {
            Some((0, "protocol-version-mismatch"))
        } else if setup.flags & !flags::SERVED != 0 {
            // Every flag not served, as the spec asks.
            Some((setup.flags & !flags::SERVED, "unsupported-feature-flags"))
        } else {
            None
        };
        if let Some((flags, code)) = error {
            out.messages.push(Outbound::SetupError { flags, code });
            out.close = true;
            return;
        }
        let agent = [setup.vendor.as_str(), setup.firmware.as_str()]
            .iter()
            .filter(|part| !part.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        self.user_agent = (!agent.is_empty()).then_some(agent);
        self.reference_client = setup.vendor == REFERENCE_VENDOR;
        self.flags = Some(setup.flags);
        // Neither REQUIRES_FIXED_VERSION (every client may roll) nor
        // REQUIRES_EXTENDED_CHANNELS (both kinds are served).
        out.messages.push(Outbound::SetupSuccess {
            used_version: PROTOCOL_VERSION,
            flags: 0,
        });
    }

    /// NDAS is stopping: the client is told to connect again (to this
    /// server, once it is back), as Stratum V1 miners are told with
    /// `client.reconnect`. Not the reference implementation's roles: its
    /// translator 0.6.0 panics on `Reconnect` (`todo!()`), and the closed
    /// connection sends it to its next upstream all the same.
    pub fn shutdown(&mut self, out: &mut Output<F::Receiver>) {
        self.reconnect_to("", 0, out);
    }

    /// The client is told to connect to `new_host:new_port` (an empty
    /// host: to this server again), as [`Sv2Session::shutdown`] tells it,
    /// before its connection is closed.
    pub fn reconnect_to(&mut self, new_host: &str, new_port: u16, out: &mut Output<F::Receiver>) {
        if self.is_set_up() && !self.reference_client {
            out.messages.push(Outbound::Reconnect {
                new_host: new_host.to_owned(),
                new_port,
            });
        }
    }

    /// Nothing was sent for a while: every channel is sent its newest job
    /// again, under a new id with `min_ntime` (the same work), so a client
    /// that drops a silent connection keeps this one (ESP-Miner gives up
    /// after 180 s without a frame; ckpool sends every 30 s).
    pub fn keepalive(&mut self, out: &mut Output<F::Receiver>) {
        for open in &mut self.channels {
            if let Some(job) = open.channel.latest().cloned() {
                open.send(None, Some((&job, false)), &mut out.messages);
            }
        }
    }

    /// A new job of group `key`, to every channel mining for it.
    pub fn on_job(
        &mut self,
        key: GroupKey,
        job: Arc<Job>,
        now: Now,
        out: &mut Output<F::Receiver>,
    ) {
        for open in self.channels.iter_mut().filter(|o| o.group == Some(key)) {
            // Its own lane's of a pool's jobs (or its route's pool's), or
            // none when that is unchanged.
            let announce = open.channel.broadcast(job.clone(), now, &mut out.events);
            let difficulty = announce.difficulty;
            let Some((_, clean)) = announce.job else {
                open.send(difficulty, None, &mut out.messages);
                continue;
            };
            // The group's job as it is, unless the channel mines another
            // (a lane's of a pool's jobs, or its route's pool's).
            let own = open
                .channel
                .latest()
                .is_some_and(|latest| Arc::ptr_eq(latest, &job));
            if own {
                open.send(difficulty, Some((&job, clean)), &mut out.messages);
            } else {
                let lane = open.channel.latest().cloned();
                let sent = lane.as_ref().map(|lane| (lane, clean));
                open.send(difficulty, sent, &mut out.messages);
            }
        }
    }

    /// New settings from a config reload; a difficulty they move is sent.
    pub fn set_config(
        &mut self,
        config: Arc<SessionConfig>,
        now: Now,
        out: &mut Output<F::Receiver>,
    ) {
        for open in &mut self.channels {
            open.channel.set_config(config.clone(), now);
            let difficulty = open.channel.difficulty_to_send(false, &mut out.events);
            open.send(difficulty, None, &mut out.messages);
        }
        self.config = config;
    }
}
