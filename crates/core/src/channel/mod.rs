//! A channel: the part of one miner's connection that no wire protocol
//! owns. The workers it mines for and their payout group, the jobs it was
//! sent with each one's target, its difficulty (vardiff, the miner's floor,
//! the user agent table), the judging of its shares, and its extranonce1.
//!
//! A wire's state machine holds one and speaks for it: Stratum V1's
//! [`crate::session::Session`] parses lines, keeps its handshake's phase
//! and turns what the channel returns into lines (an [`Announce`] into
//! `mining.set_difficulty` and `mining.notify`, a verdict into an answer).
//! A second wire (Stratum V2's mining channels) is a second state machine
//! around the same channel. Synchronous and free of I/O: every call takes
//! the time and appends what happened to the caller's events.

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::chain::{Hash256, Target};
use crate::share::Reject;
use crate::vardiff::{AgentDifficulty, Vardiff, VardiffConfig};
use crate::work::groups::{Feed, Group, Latest, Mining};
use crate::work::lanes::{Lanes, Seat};
use crate::work::payout::Payout;
use crate::work::routes::Ticket;
use crate::work::PayoutGroups;
use crate::work::{Extranonce1, Job};
use crate::FoundBlock;

mod authorize;
mod difficulty;
mod judge;
mod parked;

pub use authorize::{Authorized, Refused};
pub use parked::Parked;

/// Jobs a connection remembers; older ones answer "job not found".
pub(crate) const MAX_JOBS: usize = 16;
/// Worker names one connection may authorize.
pub(crate) const MAX_WORKERS: usize = 32;

/// Settings shared by every connection of a port.
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

/// A share for an upstream pool, and who sent it.
#[derive(Clone, Debug)]
pub struct Forward {
    /// The upstream's place in the config, the lane, and its connection then.
    pub pool: usize,
    pub lane: usize,
    pub connection: u64,
    pub share: crate::upstream::UpstreamShare,
    pub worker: Arc<str>,
    /// The difficulty the miner is credited with for it.
    pub difficulty: f64,
    /// The pool's difficulty on the job it is on: what the pool credits
    /// it at, when it takes it.
    pub pool_difficulty: f64,
}

/// What a connection reports besides what it sends.
#[derive(Debug)]
pub enum Event {
    /// A share was judged; `difficulty` is what it is credited with when accepted.
    Share {
        worker: Option<Arc<str>>,
        difficulty: f64,
        verdict: Result<f64, Reject>,
    },
    Block(Box<FoundBlock>),
    /// A share on a pool's job that meets the pool's target: to be sent
    /// to the pool ([`crate::work::pool`]).
    Forward(Box<Forward>),
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
    /// A mining channel was not opened (Stratum V2), for `reason` (an
    /// [`crate::sv2::OpenRefusal`] code).
    ChannelRefused {
        reason: &'static str,
    },
    /// A new difficulty was sent; `vardiff` when vardiff chose it.
    Difficulty {
        difficulty: f64,
        vardiff: bool,
    },
    /// A new job was broadcast to this miner; `created` is when it was built.
    JobSent {
        created: Instant,
    },
}

/// What a wire sends its miner, in this order. It borrows the job from
/// the channel's sent jobs: the broadcast path takes no reference count
/// of its own (every miner of a group shares the job's count).
#[derive(Debug, Default)]
#[must_use = "the miner is sent this"]
pub struct Announce<'a> {
    /// A new share difficulty.
    pub difficulty: Option<f64>,
    /// A job, and whether the miner drops what it had (`clean_jobs`).
    pub job: Option<(&'a Job, bool)>,
}

/// A job sent, with the target it was sent at.
pub(crate) struct SentJob {
    pub(crate) job: Arc<Job>,
    pub(crate) difficulty: f64,
    pub(crate) target: Target,
    /// Leading bytes of accepted share hashes, to refuse duplicates.
    pub(crate) accepted: HashSet<u128>,
}

/// A worker name the connection authorized, and the address it is paid
/// to (the group itself is held only while the connection mines for it, so
/// a connection keeps one group alive, not one per name).
pub(crate) struct Worker {
    pub(crate) name: Arc<str>,
    payout: Option<Payout>,
}

/// One miner's channel.
pub struct Channel<F: Feed = Latest> {
    config: Arc<SessionConfig>,
    extranonce1: Extranonce1,
    pub(crate) workers: Vec<Worker>,
    /// Where the groups are joined (none in unit tests: no payout checks).
    manager: Option<Arc<PayoutGroups<F>>>,
    /// The miner's network address (an IPv6 host's /64), which new payout
    /// groups are bounded by (none in unit tests).
    source: Option<IpAddr>,
    /// The group whose jobs this connection is sent: its latest worker's.
    group: Option<Mining<F>>,
    /// The new group's receiver, subscribed when its current job was read,
    /// until the connection's loop takes it.
    moved_to: Option<F::Receiver>,
    /// Vardiff's current choice, before the network cap.
    pub(crate) difficulty: f64,
    /// The least difficulty this miner asked for (BIP310
    /// `minimum-difficulty`, or `d=N` in its password), within the pool's bounds.
    floor: Option<f64>,
    /// The miner asked for a starting difficulty (suggested one, or `d=N`):
    /// the user agent table does not override it.
    asked: bool,
    /// The difficulty last sent.
    sent_difficulty: Option<f64>,
    /// The difficulty sent changed for another reason than vardiff (a
    /// cap moved): vardiff's window starts again at the next share.
    window_stale: bool,
    latest: Option<Arc<Job>>,
    /// Previous-block hash of the last job sent: jobs on another are stale.
    tip: Option<Hash256>,
    /// The upstream pool connection the last job came from (none: a
    /// node's): jobs of another source are stale even on the same tip.
    work_source: Option<(usize, u64)>,
    /// Its place on a pool's lane while it mines a pool's job
    /// ([`crate::work::lanes`]).
    seat: Option<Seat>,
    /// Its route, while it mines and `[[route]]`s are configured
    /// ([`crate::work::routes`]).
    pub(crate) ticket: Option<Ticket>,
    pub(crate) jobs: VecDeque<SentJob>,
    vardiff: Vardiff,
}

impl<F: Feed> Channel<F> {
    pub fn new(config: Arc<SessionConfig>, extranonce1: Extranonce1, now: Now) -> Channel<F> {
        let vardiff = Vardiff::new(config.vardiff, now.instant);
        Channel {
            difficulty: config.vardiff.start,
            floor: None,
            asked: false,
            config,
            extranonce1,
            workers: Vec::new(),
            manager: None,
            source: None,
            group: None,
            moved_to: None,
            sent_difficulty: None,
            window_stale: false,
            latest: None,
            tip: None,
            work_source: None,
            seat: None,
            ticket: None,
            jobs: VecDeque::with_capacity(MAX_JOBS),
            vardiff,
        }
    }

    /// Workers of this channel are paid as `manager`'s groups say, and
    /// each share counts only on a job of its worker's group.
    pub fn with_payouts(mut self, manager: Arc<PayoutGroups<F>>) -> Channel<F> {
        self.group = manager.starting_group().map(Mining::new);
        self.manager = Some(manager);
        self
    }

    /// The miner connects from `source` (already grouped as the
    /// connection bounds group it: an IPv6 host by its /64).
    pub fn from_source(mut self, source: IpAddr) -> Channel<F> {
        self.source = Some(source);
        self
    }

    pub fn config(&self) -> &Arc<SessionConfig> {
        &self.config
    }

    pub fn extranonce1(&self) -> Extranonce1 {
        self.extranonce1
    }

    /// The difficulty last announced to the miner.
    pub fn sent_difficulty(&self) -> Option<f64> {
        self.sent_difficulty
    }

    /// Whether a worker was authorized.
    pub fn has_workers(&self) -> bool {
        !self.workers.is_empty()
    }

    /// A new receiver of the jobs this channel is sent now (its group's;
    /// none before a `username` mode worker is authorized), and the job
    /// current when it was made (the later ones come through it).
    pub fn jobs(&self) -> Option<(F::Receiver, Option<Arc<Job>>)> {
        self.group
            .as_ref()
            .map(|mining| mining.group().feed.subscribe())
    }

    /// The group whose jobs this channel is sent now.
    pub fn group(&self) -> Option<&Arc<Group<F>>> {
        self.group.as_ref().map(Mining::group)
    }

    /// After an authorize moved the channel to another group: the receiver
    /// of the new group's jobs, which replaces the one the connection
    /// waited on.
    pub fn take_moved(&mut self) -> Option<F::Receiver> {
        self.moved_to.take()
    }

    /// New settings from a config reload: difficulty bounds apply at once
    /// (the caller announces [`Channel::difficulty_to_send`] when mining).
    pub fn set_config(&mut self, config: Arc<SessionConfig>, now: Now) {
        self.vardiff = Vardiff::new(config.vardiff, now.instant);
        self.config = config;
        self.difficulty = self.bounded(self.difficulty);
    }

    /// The newest job the channel was given.
    pub fn latest(&self) -> Option<&Arc<Job>> {
        self.latest.as_ref()
    }

    /// The newest job of the channel's group, sent when it starts mining
    /// ([`Channel::start`]), which is when it takes a pool lane's seat.
    pub fn set_latest(&mut self, job: Arc<Job>) {
        self.latest = Some(job);
    }

    /// The job this channel mines of what its group was given: its lane's
    /// of a pool's lanes (taking a seat on one), or the job itself; a
    /// node's job gives back the seat, unless the channel's route is a
    /// pool's with a job, whose lanes it then mines.
    fn resolve(&mut self, job: Arc<Job>) -> Arc<Job> {
        match (&job.lanes, &job.pool) {
            (Some(lanes), _) => lanes.pick(&mut self.seat),
            (None, None) => match self.routed() {
                Some(lanes) => lanes.pick(&mut self.seat),
                None => {
                    self.seat = None;
                    job
                }
            },
            (None, Some(_)) => job,
        }
    }

    /// The lanes of the pool this channel's route sends it to, when
    /// routes are configured and its route's pool has a job; it joins a
    /// route the first time it is given a node's job.
    fn routed(&mut self) -> Option<Arc<Lanes>> {
        let routes = self.manager.as_ref()?.routes()?;
        let ticket = self.ticket.get_or_insert_with(|| routes.join());
        routes.lanes_for(ticket)
    }

    /// The lane this channel mines on, while it mines a pool's job.
    pub fn lane(&self) -> Option<usize> {
        self.seat.as_ref().map(Seat::lane)
    }

    /// A new job broadcast to a mining channel: vardiff's periodic retarget
    /// first, then the job. A pool's lanes published again with this
    /// channel's lane's job unchanged send no job.
    pub fn broadcast(&mut self, job: Arc<Job>, now: Now, events: &mut Vec<Event>) -> Announce<'_> {
        let job = self.resolve(job);
        let unchanged = self
            .latest
            .as_ref()
            .is_some_and(|latest| Arc::ptr_eq(latest, &job));
        self.latest = Some(job.clone());
        self.restart_stale_window(now);
        let retarget = self.vardiff.on_tick(self.mined_at(), now.instant);
        if let Some(next) = retarget {
            self.difficulty = self.bounded(next);
        }
        if unchanged {
            return Announce {
                difficulty: self.difficulty_to_send(retarget.is_some(), events),
                job: None,
            };
        }
        // Fan-out is timed for broadcasts only, not a late joiner's first job.
        events.push(Event::JobSent {
            created: job.created,
        });
        self.send_job(job, retarget.is_some(), events)
    }

    /// The channel starts mining: the current job with its difficulty, or
    /// the difficulty alone before the first job.
    pub fn start(&mut self, now: Now, events: &mut Vec<Event>) -> Announce<'_> {
        self.vardiff.reset(now.instant);
        match self.latest.clone() {
            Some(job) => self.send_job(job, false, events),
            None => Announce {
                difficulty: self.difficulty_to_send(false, events),
                job: None,
            },
        }
    }

    /// `job` to the miner (of a pool's lanes, its own lane's), at the
    /// difficulty it is to mine it at.
    pub(crate) fn send_job(
        &mut self,
        job: Arc<Job>,
        vardiff: bool,
        events: &mut Vec<Event>,
    ) -> Announce<'_> {
        let job = self.resolve(job);
        self.latest = Some(job.clone());
        // A new tip, or new bits at the same tip (testnet's 20-minute rule:
        // blocks are easy from now, so miners drop what they have queued;
        // the old job's shares are still taken).
        let last_bits = self.jobs.back().map(|sent| sent.job.template.bits);
        // Or another pool (or a pool's new connection): its shares go
        // nowhere else.
        let source = source(&job);
        let clean = self.tip != Some(*job.prev_hash())
            || self.work_source != source
            || last_bits.is_some_and(|bits| bits != job.template.bits);
        let announced = self.difficulty_to_send(vardiff, events);
        let difficulty = self.sent_difficulty.unwrap_or(self.difficulty);
        self.tip = Some(*job.prev_hash());
        self.work_source = source;
        let target = Target::from_difficulty(difficulty);
        // A job sent again (a resumed session's) keeps the shares accepted on it.
        let index = match self.jobs.iter().position(|sent| sent.job.id == job.id) {
            Some(index) => {
                let sent = &mut self.jobs[index];
                (sent.difficulty, sent.target) = (difficulty, target);
                index
            }
            None => {
                if self.jobs.len() == MAX_JOBS {
                    self.jobs.pop_front();
                }
                self.jobs.push_back(SentJob {
                    job,
                    difficulty,
                    target,
                    accepted: HashSet::new(),
                });
                self.jobs.len() - 1
            }
        };
        Announce {
            difficulty: announced,
            job: Some((&self.jobs[index].job, clean)),
        }
    }
}

/// The upstream pool connection `job` came from; none for a node's.
fn source(job: &Job) -> Option<(usize, u64)> {
    job.pool.as_ref().map(|pool| (pool.pool, pool.connection))
}
