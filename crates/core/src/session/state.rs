//! The Stratum V1 session state machine: `Connected → Subscribed →
//! Authorized`, around the wire-agnostic [`Channel`] (workers, jobs,
//! difficulty, share judging, extranonce1): this file parses lines, keeps
//! the handshake and turns what the channel returns into lines.
//!
//! Synchronous and free of I/O: every method takes the current time and
//! appends what to send and what happened to an [`Output`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::resume::Resumptions;
use crate::channel::{Announce, Channel};
pub use crate::channel::{Event, Now, Parked, SessionConfig};
use crate::share::Reject;
use crate::stratum::message::{error, result};
use crate::stratum::method::{Authorize, Configure, Submit, Subscribe};
use crate::stratum::notify::set_difficulty;
use crate::stratum::{ErrorCode, Method, Request, StratumError};
use crate::work::groups::{Feed, Group, Latest};
use crate::work::PayoutGroups;
use crate::work::{Extranonce1, Job, Lease};

/// Unparseable lines tolerated before the connection is closed.
const MAX_BAD_LINES: u32 = 16;

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

/// One miner's Stratum V1 protocol state around its [`Channel`].
pub struct Session<F: Feed = Latest> {
    phase: Phase,
    /// The version bits this miner negotiated (BIP310), for its answer.
    version_mask: u32,
    user_agent: Option<String>,
    bad_lines: u32,
    /// The extranonce1 held for this connection (none in unit tests).
    lease: Option<Lease>,
    /// Where ended sessions are parked and resumed.
    resumptions: Option<Arc<Resumptions>>,
    /// What any wire would keep: workers, jobs, difficulty, judging.
    pub(crate) channel: Channel<F>,
}

/// Puts `announce` on the wire: the difficulty first, then the job.
fn send(announce: Announce<'_>, out: &mut Output) {
    if let Some(difficulty) = announce.difficulty {
        out.lines.push(set_difficulty(difficulty));
    }
    if let Some((job, clean)) = announce.job {
        out.lines.push(job.notify(clean));
    }
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
        self.channel = self.channel.with_payouts(manager);
        self
    }

    /// The session's miner connects from `source` (already grouped as the
    /// connection bounds group it: an IPv6 host by its /64).
    pub fn from_source(mut self, source: IpAddr) -> Session<F> {
        self.channel = self.channel.from_source(source);
        self
    }

    /// The jobs this session is sent now: its group's (none before a
    /// `username` mode worker is authorized).
    /// A new receiver of them, and the job current when it was made (the
    /// later ones come through it).
    pub fn jobs(&self) -> Option<(F::Receiver, Option<Arc<Job>>)> {
        self.channel.jobs()
    }

    /// The group whose jobs this session is sent now.
    pub fn group(&self) -> Option<&Arc<Group<F>>> {
        self.channel.group()
    }

    /// After [`Output::moved`]: the receiver of the new group's jobs, which
    /// replaces the one the connection waited on.
    pub fn take_moved(&mut self) -> Option<F::Receiver> {
        self.channel.take_moved()
    }

    pub fn new(config: Arc<SessionConfig>, extranonce1: Extranonce1, now: Now) -> Session<F> {
        Session {
            phase: Phase::Connected,
            version_mask: 0,
            user_agent: None,
            bad_lines: 0,
            lease: None,
            resumptions: None,
            channel: Channel::new(config, extranonce1, now),
        }
    }

    pub fn extranonce1(&self) -> Extranonce1 {
        self.channel.extranonce1()
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
                self.channel.suggest_difficulty(suggested.difficulty, now);
                out.lines.push(result(id, true));
                self.announce_difficulty(out);
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
        self.channel.set_config(config, now);
        self.announce_difficulty(out);
    }

    /// A new job from the job manager.
    pub fn on_job(&mut self, job: Arc<Job>, now: Now, out: &mut Output) {
        if self.phase == Phase::Authorized {
            send(self.channel.broadcast(job, now, &mut out.events), out);
        } else {
            self.channel.set_latest(job);
        }
    }

    /// A changed difficulty to a mining miner (not vardiff's choice).
    fn announce_difficulty(&mut self, out: &mut Output) {
        if self.phase == Phase::Authorized {
            let difficulty = self.channel.difficulty_to_send(false, &mut out.events);
            let announce = Announce {
                difficulty,
                job: None,
            };
            send(announce, out);
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
        self.channel.start_for_agent(self.user_agent.as_deref());
        out.events.push(Event::Subscribed);
        if let Some(previous) = subscribe.session_id {
            self.resume(Extranonce1(previous), now, out);
        }
        let subscription = self.channel.extranonce1().to_hex();
        let answer = json!([
            [
                ["mining.set_difficulty", subscription],
                ["mining.notify", subscription]
            ],
            subscription,
            self.channel.config().extranonce2_size
        ]);
        out.lines.push(result(id, answer));
        // Authorized before subscribing (old proxies do; ckpool accepts it):
        // the work follows the subscription.
        if self.channel.has_workers() {
            self.start_work(now, out);
        }
    }

    /// Enters `Authorized`: difficulty and the current job go out.
    fn start_work(&mut self, now: Now, out: &mut Output) {
        self.phase = Phase::Authorized;
        send(self.channel.start(now, &mut out.events), out);
    }

    fn configure(&mut self, id: &Value, configure: &Configure, now: Now, out: &mut Output) {
        let mut answer = Map::new();
        if let Some(rolling) = configure.version_rolling {
            self.version_mask = rolling.mask & self.channel.config().version_mask;
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
            self.channel.set_floor(minimum, false, now);
            self.announce_difficulty(out);
        }
    }

    /// `mining.submit`: the share judged by the channel, answered.
    fn submit(&mut self, id: &Value, submit: &Submit, now: Now, out: &mut Output) {
        let ready = match self.phase {
            Phase::Connected => Err(Reject::NotSubscribed),
            Phase::Subscribed => Err(Reject::Unauthorized),
            Phase::Authorized => Ok(()),
        };
        match self.channel.submit(submit, ready, now, &mut out.events) {
            Ok(difficulty) => {
                out.lines.push(result(id, true));
                let announce = Announce {
                    difficulty,
                    job: None,
                };
                send(announce, out);
            }
            Err(reject) => out.lines.push(error(id, &reject.to_stratum())),
        }
    }
}

mod authorize;
mod parked;

#[cfg(test)]
mod firmware_tests;
#[cfg(test)]
mod payout_tests;
#[cfg(test)]
mod pool_tests;
#[cfg(test)]
mod tests;
