//! The client side of Stratum V1 for one connection to an upstream pool
//! (issue 24: when its nodes fail, NDAS mines for a pool and its miners
//! mine through it). [`UpstreamSession`] is the pool's view of NDAS as
//! one miner: it sends the handshake, decodes what the pool sends into
//! [`Event`]s, and turns the shares NDAS's miners find into `mining.submit`
//! lines whose answers are credited back to whoever sent them.
//!
//! Synchronous and free of I/O, like [`crate::session`] and [`crate::sv2`]:
//! the caller connects, writes the lines returned, feeds each line read
//! (bounded in length by the caller) and the time, and acts on the events.
//! A pool is another party's server: every field it sends is checked and
//! bounded here, and a pool that breaks the protocol, refuses NDAS or cannot
//! give each miner a slice of its extranonce2 ends in [`Event::Refused`],
//! after which the caller drops the connection and tries the next pool.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::bucket::TokenBucket;
use crate::client::Work;
use crate::secret::Secret;
pub use crate::session::Now;

mod answers;
mod jobs;
mod notices;
#[cfg(test)]
mod submit_tests;
pub mod sv2;
#[cfg(test)]
mod tests;
mod wire;

use jobs::Jobs;
pub use wire::PoolError;

/// The version bits NDAS asks to roll (BIP310's usual mask, the one every
/// ASIC firmware rolls within).
pub const REQUESTED_VERSION_MASK: u32 = 0x1fff_e000;
/// A job id longer than this is refused: ids are echoed in every submit and
/// kept per job, and pools send short hex ids.
pub const MAX_JOB_ID_CHARS: usize = 64;
/// A merkle branch of more steps is refused: 32 steps is a block of four
/// billion transactions.
pub const MAX_BRANCH_STEPS: usize = 32;
/// Each coinbase half is refused past this size: a coinbase is at most a
/// block's weight, and no pool's is near it.
pub const MAX_COINBASE_PART_BYTES: usize = 100_000;
/// An extranonce1 longer than this is refused: pools give 4 to 8 bytes.
pub const MAX_EXTRANONCE1_BYTES: usize = 32;
/// An extranonce2 size past this is refused: it must fit in a coinbase's
/// 100-byte scriptSig beside the height and extranonce1.
pub const MAX_EXTRANONCE2_SIZE: usize = 32;
/// A `client.reconnect` wait is cut to this, so a pool cannot park NDAS.
pub const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(600);

/// The ids of the pipelined handshake; submits are numbered after them.
const CONFIGURE_ID: u64 = 1;
const SUBSCRIBE_ID: u64 = 2;
const AUTHORIZE_ID: u64 = 3;
const FIRST_SUBMIT_ID: u64 = 4;

/// Who NDAS is to the pool, and how much it takes from it.
#[derive(Clone, Debug)]
pub struct UpstreamSettings {
    /// The pool account (and worker) every share is credited to.
    pub user: String,
    pub password: Secret,
    /// `mining.subscribe`'s user agent, e.g. `NDAS/0.1`: pools pick a
    /// starting difficulty by it.
    pub agent: String,
    /// The extranonce2 bytes NDAS needs to give each miner a slice: its
    /// extranonce1 per miner (4 bytes) and the miners' extranonce2 size.
    pub min_extranonce2: usize,
    pub limits: UpstreamLimits,
}

/// The bounds on what a pool may make NDAS keep or do.
#[derive(Clone, Debug)]
pub struct UpstreamLimits {
    /// Recent job ids kept for submits; older ones are stale.
    pub max_jobs: usize,
    /// Submits sent and not yet answered; past it shares are refused
    /// locally rather than queued for a pool that does not answer.
    pub max_in_flight: usize,
    /// `mining.set_difficulty` changes a pool may send in a minute (also
    /// the burst): past it the pool floods and is dropped.
    pub difficulty_changes_per_minute: u32,
    /// A submit unanswered this long is given up ([`Event::Unanswered`]).
    pub submit_timeout: Duration,
    /// From [`UpstreamSession::start`] to [`State::Ready`], at most.
    pub handshake_timeout: Duration,
}

impl Default for UpstreamLimits {
    fn default() -> Self {
        UpstreamLimits {
            max_jobs: 16,
            max_in_flight: 256,
            difficulty_changes_per_minute: 30,
            submit_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(30),
        }
    }
}

/// Where the connection stands.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// The handshake is sent; the subscribe answer has not come.
    Connecting,
    /// Subscribed; the authorize answer has not come.
    Subscribed,
    /// Subscribed and authorized: shares may be submitted.
    Ready,
    /// The pool cannot be used: drop the connection, try the next one.
    Refused(Refusal),
}

/// Why a pool cannot be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("the pool refused the subscription: {0}")]
    Unsubscribed(String),
    #[error("the pool refused authorization: {0}")]
    Unauthorized(String),
    #[error(
        "the pool's extranonce2 is {given} bytes; NDAS needs {needed} to give each miner a slice"
    )]
    ExtranonceTooSmall { given: usize, needed: usize },
    #[error("the pool floods set_difficulty: more than {0} changes a minute")]
    FloodsDifficulty(u32),
    #[error("the pool was not ready within {0:?}")]
    Timeout(Duration),
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// What the pool's lines, or the passing of time, made happen.
#[derive(Clone, Debug)]
pub enum Event<T> {
    /// Subscribed and authorized: jobs may be mined, shares submitted.
    Ready {
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
        /// The version bits the pool lets miners roll; 0 for none.
        version_mask: u32,
    },
    /// The connection must be dropped (the state says the same).
    Refused { reason: Refusal },
    /// A job; on `clean`, every earlier one is stale.
    Job { work: Work, clean: bool },
    /// The pool's share difficulty, changed.
    Difficulty(f64),
    /// The version bits miners may roll, changed (a late configure answer
    /// or `mining.set_version_mask`).
    VersionMask(u32),
    /// `mining.set_extranonce`: a new extranonce1; every earlier job is
    /// invalid and the pool's next job is the first to mine.
    Extranonce {
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
    },
    /// The pool asks NDAS to connect again, after `wait`: to `host:port`,
    /// or where it is when none is given. Following it is the caller's
    /// choice (a pool may name any host).
    Reconnect {
        host: Option<String>,
        port: Option<u16>,
        wait: Duration,
    },
    /// `client.show_message`'s text (bounded), for the operator's log.
    Message(String),
    /// The pool answered the submit sent with `tag`.
    Answered {
        tag: T,
        accepted: bool,
        /// The pool's reason when it rejected the share.
        reason: Option<PoolError>,
        latency: Duration,
    },
    /// The submit sent with `tag` will not be answered: too old, or the
    /// connection was refused while it was in flight.
    Unanswered { tag: T, waited: Duration },
}

/// A share found on a pool's job, as the pool's `mining.submit` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamShare {
    pub job_id: String,
    /// The pool's whole extranonce2: NDAS's slice for the miner, then the
    /// miner's own extranonce2.
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    /// The version bits rolled, within the pool's mask (BIP310).
    pub version_bits: Option<u32>,
}

/// Why a share was not sent (no line: the pool would reject it, or it
/// cannot take more).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotSent {
    #[error("the pool connection is not ready")]
    NotReady,
    #[error("job {0} is unknown or stale")]
    UnknownJob(String),
    #[error("{0} submits are already waiting for the pool's answer")]
    TooManyInFlight(usize),
    #[error("extranonce2 is {given} bytes; the pool takes {expected}")]
    Extranonce2Size { given: usize, expected: usize },
    #[error("version bits {bits:08x} are outside the pool's mask {mask:08x}")]
    VersionBits { bits: u32, mask: u32 },
}

/// How the pool answered the shares sent on this connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubmitCounts {
    pub accepted: u64,
    pub rejected: u64,
    pub unanswered: u64,
}

/// Whether a change of the pool's difficulty may be taken now: at most
/// `per_minute` a minute (also the burst). Each reaches every miner's
/// vardiff and the share path; past it the pool floods.
fn paced(changes: &mut Option<TokenBucket>, per_minute: u32, now: Now) -> bool {
    let rate = f64::from(per_minute) / 60.0;
    changes
        .get_or_insert_with(|| TokenBucket::full(rate, f64::from(per_minute), now.instant))
        .take(now.instant)
}

/// A submit waiting for its answer.
#[derive(Debug)]
struct InFlight<T> {
    sent: Instant,
    tag: T,
}

/// One connection to an upstream pool. `T` is the caller's tag for a
/// share's sender, handed back with the pool's answer.
#[derive(Debug)]
pub struct UpstreamSession<T> {
    settings: UpstreamSettings,
    state: State,
    /// When the handshake was sent, for its timeout.
    started: Option<Instant>,
    /// The authorize answer was `true` (Ready waits for the subscribe too).
    authorized: bool,
    /// The configure answer came: a later one is ignored.
    configured: bool,
    /// extranonce1 and extranonce2 size, once subscribed.
    extranonce: Option<(Vec<u8>, usize)>,
    version_mask: u32,
    difficulty: Option<f64>,
    /// Paces difficulty changes; made at the first one.
    changes: Option<TokenBucket>,
    jobs: Jobs,
    /// By request id, oldest first (for expiry).
    in_flight: BTreeMap<u64, InFlight<T>>,
    next_id: u64,
    counts: SubmitCounts,
}

impl<T> UpstreamSession<T> {
    /// A connection not yet started: [`UpstreamSession::start`] gives the
    /// handshake to send once the socket is open.
    pub fn new(settings: UpstreamSettings) -> UpstreamSession<T> {
        let jobs = Jobs::new(settings.limits.max_jobs);
        UpstreamSession {
            settings,
            state: State::Connecting,
            started: None,
            authorized: false,
            configured: false,
            extranonce: None,
            version_mask: 0,
            difficulty: None,
            changes: None,
            jobs,
            in_flight: BTreeMap::new(),
            next_id: FIRST_SUBMIT_ID,
            counts: SubmitCounts::default(),
        }
    }

    /// The handshake, pipelined: `mining.configure` (version rolling),
    /// `mining.subscribe`, `mining.authorize`, with ids 1, 2, 3. Once per
    /// connection; a second call returns nothing.
    pub fn start(&mut self, now: Now) -> Vec<Bytes> {
        if self.started.is_some() {
            return Vec::new();
        }
        self.started = Some(now.instant);
        let rolling = json!({
            "version-rolling.mask": format!("{REQUESTED_VERSION_MASK:08x}"),
            "version-rolling.min-bit-count": 2,
        });
        let password = self.settings.password.expose();
        vec![
            wire::request(
                CONFIGURE_ID,
                "mining.configure",
                json!([["version-rolling"], rolling]),
            ),
            wire::request(
                SUBSCRIBE_ID,
                "mining.subscribe",
                json!([self.settings.agent]),
            ),
            wire::request(
                AUTHORIZE_ID,
                "mining.authorize",
                json!([self.settings.user, password]),
            ),
        ]
    }

    /// Where the connection stands; on [`State::Refused`] it is to be dropped.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// extranonce1 and extranonce2 size, once subscribed.
    pub fn extranonce(&self) -> Option<(&[u8], usize)> {
        self.extranonce.as_ref().map(|(e1, size)| (&e1[..], *size))
    }

    /// The version bits the pool lets miners roll now; 0 for none.
    pub fn version_mask(&self) -> u32 {
        self.version_mask
    }

    /// The pool's share difficulty, once it sent one.
    pub fn difficulty(&self) -> Option<f64> {
        self.difficulty
    }

    /// How the pool answered the shares sent so far.
    pub fn counts(&self) -> SubmitCounts {
        self.counts
    }

    /// Submits waiting for an answer.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Handles one line from the pool. After a refusal, lines are ignored.
    pub fn handle_line(&mut self, line: &str, now: Now, events: &mut Vec<Event<T>>) {
        if matches!(self.state, State::Refused(_)) {
            return;
        }
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let handled = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(message)) => match message.get("method") {
                Some(Value::String(method)) => {
                    let params = message.get("params").unwrap_or(&Value::Null);
                    self.notice(method, params, now, events)
                }
                _ => self.answer(&message, now, events),
            },
            Ok(_) => Err(Refusal::Protocol("a line that is not a JSON object".into())),
            Err(e) => Err(Refusal::Protocol(format!("a line that is not JSON ({e})"))),
        };
        if let Err(refusal) = handled {
            self.refuse(refusal, now, events);
        }
    }

    /// The `mining.submit` line for `share`, remembered under `tag` until the
    /// pool answers; or why it is not sent.
    pub fn submit(&mut self, share: &UpstreamShare, tag: T, now: Now) -> Result<Bytes, NotSent> {
        let Some((_, size)) = self.extranonce else {
            return Err(NotSent::NotReady);
        };
        if self.state != State::Ready {
            return Err(NotSent::NotReady);
        }
        if !self.jobs.contains(&share.job_id) {
            return Err(NotSent::UnknownJob(share.job_id.clone()));
        }
        if share.extranonce2.len() != size {
            let given = share.extranonce2.len();
            return Err(NotSent::Extranonce2Size {
                given,
                expected: size,
            });
        }
        if let Some(bits) = share.version_bits {
            if bits & !self.version_mask != 0 {
                let mask = self.version_mask;
                return Err(NotSent::VersionBits { bits, mask });
            }
        }
        if self.in_flight.len() >= self.settings.limits.max_in_flight {
            return Err(NotSent::TooManyInFlight(self.in_flight.len()));
        }
        let id = self.next_id;
        self.next_id += 1;
        let sent = now.instant;
        self.in_flight.insert(id, InFlight { sent, tag });
        let params = wire::submit_params(&self.settings.user, share);
        Ok(wire::request(id, "mining.submit", params))
    }

    /// The passing of time: a handshake past its timeout is refused, and
    /// submits past theirs are given up. Call it every few seconds.
    pub fn tick(&mut self, now: Now, events: &mut Vec<Event<T>>) {
        if matches!(self.state, State::Refused(_)) {
            return;
        }
        let limit = self.settings.limits.handshake_timeout;
        let waited = |since: Instant| now.instant.saturating_duration_since(since);
        if self.state != State::Ready && self.started.is_some_and(|at| waited(at) >= limit) {
            return self.refuse(Refusal::Timeout(limit), now, events);
        }
        let limit = self.settings.limits.submit_timeout;
        let expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, submit)| waited(submit.sent) >= limit)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.give_up(id, now, events);
        }
    }

    /// Enters [`State::Refused`] once: the refusal, then every submit in
    /// flight given up.
    fn refuse(&mut self, reason: Refusal, now: Now, events: &mut Vec<Event<T>>) {
        if matches!(self.state, State::Refused(_)) {
            return;
        }
        self.state = State::Refused(reason.clone());
        events.push(Event::Refused { reason });
        let ids: Vec<u64> = self.in_flight.keys().copied().collect();
        for id in ids {
            self.give_up(id, now, events);
        }
    }

    fn give_up(&mut self, id: u64, now: Now, events: &mut Vec<Event<T>>) {
        if let Some(submit) = self.in_flight.remove(&id) {
            self.counts.unanswered += 1;
            let waited = now.instant.saturating_duration_since(submit.sent);
            let tag = submit.tag;
            events.push(Event::Unanswered { tag, waited });
        }
    }

    /// Enters [`State::Ready`] once both the subscribe and the authorize
    /// answers came, in either order.
    fn ready_if_done(&mut self, events: &mut Vec<Event<T>>) {
        let Some((extranonce1, extranonce2_size)) = self.extranonce.clone() else {
            return;
        };
        if !self.authorized || self.state == State::Ready {
            return;
        }
        self.state = State::Ready;
        events.push(Event::Ready {
            extranonce1,
            extranonce2_size,
            version_mask: self.version_mask,
        });
    }
}
