//! The session state machine: `Connected → Subscribed → Authorized`.
//!
//! Synchronous and free of I/O: every method takes the current time and
//! appends what to send and what happened to an [`Output`].

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::resume::Resumptions;
use crate::chain::{Hash256, Target};
use crate::share::{validate, Reject, ShareContext};
use crate::stratum::message::{error, result};
use crate::stratum::method::{Authorize, Configure, Submit, Subscribe};
use crate::stratum::{ErrorCode, Method, Request, StratumError};
use crate::vardiff::{AgentDifficulty, Vardiff, VardiffConfig};
use crate::work::groups::{Feed, Group, Latest, Mining};
use crate::work::payout::Payout;
use crate::work::PayoutGroups;
use crate::work::{Extranonce1, Job, Lease};
use crate::FoundBlock;

/// Jobs a connection remembers; older ones answer "job not found".
const MAX_JOBS: usize = 16;
/// Worker names one connection may authorize.
const MAX_WORKERS: usize = 32;
/// Unparseable lines tolerated before the connection is closed.
const MAX_BAD_LINES: u32 = 16;

/// Settings shared by every session.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionConfig {
    pub extranonce2_size: usize,
    /// Version bits miners may roll (BIP310), e.g. `0x1fffe000`.
    pub version_mask: u32,
    /// This port's difficulty bounds and start.
    pub vardiff: VardiffConfig,
    /// Starting difficulty by user agent family; the first match counts.
    pub agents: Vec<AgentDifficulty>,
}

/// The time, given by the caller so tests control it.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub instant: Instant,
    /// Seconds since the Unix epoch.
    pub unix: u32,
}

impl Now {
    /// The real clock.
    pub fn system() -> Now {
        let unix = u32::try_from(crate::clock::unix_now()).unwrap_or(u32::MAX);
        Now {
            instant: Instant::now(),
            unix,
        }
    }
}

/// What a session reports besides its answers.
#[derive(Debug)]
pub enum Event {
    /// A share was judged; `difficulty` is what it is credited with when accepted.
    Share {
        worker: Option<Arc<str>>,
        difficulty: f64,
        verdict: Result<f64, Reject>,
    },
    Block(Box<FoundBlock>),
    Subscribed,
    /// The subscribe took back a recent session's extranonce1 and jobs.
    Resumed,
    Authorized {
        worker: Arc<str>,
    },
    /// An authorize refused: its name cannot be paid, or a payout group
    /// bound is reached (a [`crate::work::groups::JoinError`] label).
    PayoutRefused {
        reason: &'static str,
    },
    /// `username_fallback`: the worker just authorized mines for the
    /// fallback address, because its name is not an address (`why`).
    FellBack {
        worker: Arc<str>,
        why: Arc<str>,
    },
    /// `mining.set_difficulty` was sent; `vardiff` when vardiff chose it.
    Difficulty {
        difficulty: f64,
        vardiff: bool,
    },
    /// A new job was broadcast to this miner; `created` is when it was built.
    JobSent {
        created: Instant,
    },
}

/// Lines to send and events to report, filled by each session call.
#[derive(Debug, Default)]
pub struct Output {
    pub lines: Vec<Bytes>,
    pub events: Vec<Event>,
    /// The connection should be closed after sending `lines`.
    pub close: bool,
    /// The session now mines for another payout group: its jobs come from
    /// [`Session::take_moved`]'s receiver from now on.
    pub moved: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connected,
    Subscribed,
    Authorized,
}

struct SentJob {
    job: Arc<Job>,
    difficulty: f64,
    target: Target,
    /// Leading bytes of accepted share hashes, to refuse duplicates.
    accepted: HashSet<u128>,
}

/// A worker name the connection authorized, and the address it is paid
/// to (the group itself is held only while the connection mines for it, so
/// a connection keeps one group alive, not one per name).
struct Worker {
    name: Arc<str>,
    payout: Option<Payout>,
}

/// One miner's protocol state.
pub struct Session<F: Feed = Latest> {
    config: Arc<SessionConfig>,
    phase: Phase,
    extranonce1: Extranonce1,
    version_mask: u32,
    user_agent: Option<String>,
    workers: Vec<Worker>,
    /// Where the groups are joined (none in unit tests: no payout checks).
    manager: Option<Arc<PayoutGroups<F>>>,
    /// The miner's network address (an IPv6 host's /64), which new payout
    /// groups are bounded by (none in unit tests).
    source: Option<IpAddr>,
    /// The group whose jobs this connection is sent: its latest worker's.
    group: Option<Mining<F>>,
    /// The new group's receiver, subscribed when its current job was read,
    /// until the connection's loop takes it ([`Output::moved`]).
    moved_to: Option<F::Receiver>,
    /// Vardiff's current choice, before the network cap.
    difficulty: f64,
    /// The least difficulty this miner asked for (BIP310
    /// `minimum-difficulty`, or `d=N` in its password), within the pool's bounds.
    floor: Option<f64>,
    /// The miner asked for a starting difficulty (suggested one, or `d=N`):
    /// the user agent table does not override it.
    asked: bool,
    /// The difficulty last sent with `mining.set_difficulty`.
    sent_difficulty: Option<f64>,
    latest: Option<Arc<Job>>,
    /// Previous-block hash of the last job sent: jobs on another are stale.
    tip: Option<Hash256>,
    jobs: VecDeque<SentJob>,
    vardiff: Vardiff,
    bad_lines: u32,
    /// The extranonce1 held for this connection (none in unit tests).
    lease: Option<Lease>,
    /// Where ended sessions are parked and resumed.
    resumptions: Option<Arc<Resumptions>>,
}

impl<F: Feed> Session<F> {
    /// A session holding `lease`, parking into and resuming from `resumptions`.
    pub fn leased(
        config: Arc<SessionConfig>,
        lease: Lease,
        resumptions: Arc<Resumptions>,
        now: Now,
    ) -> Session<F> {
        let mut session = Session::new(config, lease.extranonce1, now);
        session.lease = Some(lease);
        session.resumptions = Some(resumptions);
        session
    }

    /// Workers of this session are paid as `manager`'s groups say, and
    /// each share counts only on a job of its worker's group.
    pub fn with_payouts(mut self, manager: Arc<PayoutGroups<F>>) -> Session<F> {
        self.group = manager.starting_group().map(Mining::new);
        self.manager = Some(manager);
        self
    }

    /// The session's miner connects from `source` (already grouped as the
    /// connection bounds group it: an IPv6 host by its /64).
    pub fn from_source(mut self, source: IpAddr) -> Session<F> {
        self.source = Some(source);
        self
    }

    /// The jobs this session is sent now: its group's (none before a
    /// `username` mode worker is authorized).
    /// A new receiver of them, and the job current when it was made (the
    /// later ones come through it).
    pub fn jobs(&self) -> Option<(F::Receiver, Option<Arc<Job>>)> {
        self.group
            .as_ref()
            .map(|mining| mining.group().feed.subscribe())
    }

    /// The group whose jobs this session is sent now.
    pub fn group(&self) -> Option<&Arc<Group<F>>> {
        self.group.as_ref().map(Mining::group)
    }

    /// After [`Output::moved`]: the receiver of the new group's jobs, which
    /// replaces the one the connection waited on.
    pub fn take_moved(&mut self) -> Option<F::Receiver> {
        self.moved_to.take()
    }

    pub fn new(config: Arc<SessionConfig>, extranonce1: Extranonce1, now: Now) -> Session<F> {
        let vardiff = Vardiff::new(config.vardiff, now.instant);
        Session {
            difficulty: config.vardiff.start,
            floor: None,
            asked: false,
            config,
            phase: Phase::Connected,
            extranonce1,
            version_mask: 0,
            user_agent: None,
            workers: Vec::new(),
            manager: None,
            source: None,
            group: None,
            moved_to: None,
            sent_difficulty: None,
            latest: None,
            tip: None,
            jobs: VecDeque::with_capacity(MAX_JOBS),
            vardiff,
            bad_lines: 0,
            lease: None,
            resumptions: None,
        }
    }

    pub fn extranonce1(&self) -> Extranonce1 {
        self.extranonce1
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    pub fn is_authorized(&self) -> bool {
        self.phase == Phase::Authorized
    }

    /// Handles one line from the miner.
    pub fn handle_line(&mut self, line: &str, now: Now, out: &mut Output) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let request = match Request::parse(line) {
            Ok(request) => request,
            Err(_) => {
                out.lines.push(error(
                    &Value::Null,
                    &StratumError::other("invalid JSON-RPC request"),
                ));
                return self.strike(out);
            }
        };
        let method = match Method::parse(&request) {
            Ok(method) => method,
            Err(e) => {
                out.lines.push(error(&request.id, &e));
                return self.strike(out);
            }
        };
        let id = &request.id;
        match method {
            Method::Subscribe(subscribe) => self.subscribe(id, subscribe, now, out),
            Method::Authorize(authorize) => self.authorize(id, authorize, now, out),
            Method::Configure(configure) => self.configure(id, &configure, now, out),
            Method::Submit(submit) => self.submit(id, &submit, now, out),
            Method::SuggestDifficulty(suggested) => {
                self.asked = true;
                self.difficulty = self.bounded(suggested.difficulty);
                self.vardiff.reset(now.instant);
                out.lines.push(result(id, true));
                if self.phase == Phase::Authorized {
                    self.send_difficulty(false, out);
                }
            }
            Method::ExtranonceSubscribe => out.lines.push(result(id, true)),
            Method::Unknown(name) => {
                out.lines.push(error(
                    id,
                    &StratumError::other(format!("Unknown method {name}")),
                ));
            }
        }
    }

    /// New settings from a config reload: difficulty bounds apply at once and
    /// a changed difficulty is announced now, for the jobs that follow.
    pub fn set_config(&mut self, config: Arc<SessionConfig>, now: Now, out: &mut Output) {
        self.vardiff = Vardiff::new(config.vardiff, now.instant);
        self.config = config;
        self.difficulty = self.bounded(self.difficulty);
        if self.phase == Phase::Authorized {
            self.send_difficulty(false, out);
        }
    }

    /// A new job from the job manager.
    pub fn on_job(&mut self, job: Arc<Job>, now: Now, out: &mut Output) {
        self.latest = Some(job.clone());
        if self.phase == Phase::Authorized {
            let retarget = self.vardiff.on_tick(self.difficulty, now.instant);
            if let Some(next) = retarget {
                self.difficulty = self.bounded(next);
            }
            // Fan-out is timed for broadcasts only, not a late joiner's first job.
            out.events.push(Event::JobSent {
                created: job.created,
            });
            self.send_job(job, retarget.is_some(), out);
        }
    }

    fn strike(&mut self, out: &mut Output) {
        self.bad_lines += 1;
        if self.bad_lines >= MAX_BAD_LINES {
            out.close = true;
        }
    }

    fn subscribe(&mut self, id: &Value, subscribe: Subscribe, now: Now, out: &mut Output) {
        if self.phase != Phase::Connected {
            out.lines
                .push(error(id, &StratumError::other("Already subscribed")));
            return;
        }
        self.phase = Phase::Subscribed;
        self.user_agent = subscribe.user_agent;
        self.start_for_agent();
        out.events.push(Event::Subscribed);
        if let Some(previous) = subscribe.session_id {
            self.resume(Extranonce1(previous), now, out);
        }
        let subscription = self.extranonce1.to_hex();
        let answer = json!([
            [
                ["mining.set_difficulty", subscription],
                ["mining.notify", subscription]
            ],
            subscription,
            self.config.extranonce2_size
        ]);
        out.lines.push(result(id, answer));
        // Authorized before subscribing (old proxies do; ckpool accepts it):
        // the work follows the subscription.
        if !self.workers.is_empty() {
            self.start_work(now, out);
        }
    }

    /// Enters `Authorized`: difficulty and the current job go out.
    fn start_work(&mut self, now: Now, out: &mut Output) {
        self.phase = Phase::Authorized;
        self.vardiff.reset(now.instant);
        if let Some(job) = self.latest.clone() {
            self.send_job(job, false, out);
        } else {
            self.send_difficulty(false, out);
        }
    }

    fn configure(&mut self, id: &Value, configure: &Configure, now: Now, out: &mut Output) {
        let mut answer = Map::new();
        if let Some(rolling) = configure.version_rolling {
            self.version_mask = rolling.mask & self.config.version_mask;
            answer.insert("version-rolling".into(), Value::Bool(true));
            answer.insert(
                "version-rolling.mask".into(),
                Value::String(format!("{:08x}", self.version_mask)),
            );
        }
        if configure.minimum_difficulty.is_some() {
            answer.insert("minimum-difficulty".into(), Value::Bool(true));
        }
        for name in &configure.unsupported {
            answer.insert(name.clone(), Value::Bool(false));
        }
        out.lines.push(result(id, Value::Object(answer)));
        // After the answer: the difficulty the floor raised, if mining.
        if let Some(minimum) = configure.minimum_difficulty {
            self.set_floor(minimum, false, now, out);
        }
    }

    fn send_job(&mut self, job: Arc<Job>, vardiff: bool, out: &mut Output) {
        // A new tip, or new bits at the same tip (testnet's 20-minute rule:
        // blocks are easy from now, so miners drop what they have queued;
        // the old job's shares are still taken).
        let last_bits = self.jobs.back().map(|sent| sent.job.template.bits);
        let clean = self.tip != Some(*job.prev_hash())
            || last_bits.is_some_and(|bits| bits != job.template.bits);
        self.send_difficulty(vardiff, out);
        let difficulty = self.sent_difficulty.unwrap_or(self.difficulty);
        out.lines.push(job.notify(clean));
        self.tip = Some(*job.prev_hash());
        let target = Target::from_difficulty(difficulty);
        // A job sent again (a resumed session's) keeps the shares accepted on it.
        if let Some(sent) = self.jobs.iter_mut().find(|sent| sent.job.id == job.id) {
            (sent.difficulty, sent.target) = (difficulty, target);
            return;
        }
        if self.jobs.len() == MAX_JOBS {
            self.jobs.pop_front();
        }
        self.jobs.push_back(SentJob {
            job,
            difficulty,
            target,
            accepted: HashSet::new(),
        });
    }
}

mod authorize;
mod difficulty;
mod parked;
mod shares;

pub use parked::Parked;

#[cfg(test)]
mod firmware_tests;
#[cfg(test)]
mod payout_tests;
#[cfg(test)]
mod tests;
