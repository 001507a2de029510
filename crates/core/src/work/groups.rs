//! The payout groups, and their jobs built from each template.
//!
//! A group is every connection whose coinbase pays one address: in `fixed`
//! mode there is one, held for the life of the process; in `username` mode
//! one per address that has a miner authorized on it, gone with its last
//! connection. A template is turned once into the parts every job shares
//! ([`Work`]: merkle branch, notify fields), then into one coinbase and one
//! pair of notify lines per live group, never per connection.
//!
//! Each group's newest job is put in its [`Feed`]: the server's feed is a
//! channel that wakes the group's connections, the core's own ([`Latest`])
//! only keeps the job. A connection that falls behind sees only its group's
//! newest job, which is the only one worth mining; it compares the job's
//! previous-block hash with the last it sent to decide `clean_jobs`, so a
//! skipped tip change is never missed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use super::job::{Job, JobConfig, Work};
use super::payout::Payout;
use crate::chain::address::AddressError;
use crate::chain::coinbase::CoinbaseError;
use crate::chain::Network;
use crate::rates::Rates;
use crate::stratum::method::JobId;
use crate::sync::LockAnyway;
use crate::template::Template;
pub use feed::{Feed, Latest};
use slots::{Place, Slots};

mod feed;
mod pools;
mod slots;
mod snapshot;

/// The connections whose blocks pay one address. Held (as `Arc<Group>`) by
/// each connection mining for it; the manager keeps only a weak reference.
#[derive(Debug)]
pub struct Group<F = Latest> {
    pub payout: Payout,
    /// Where its newest job is put for its connections.
    pub feed: F,
    /// Its shares and blocks, in `username` mode (in `fixed` mode the
    /// pool's own figures are the one address's: nothing is counted twice).
    figures: Option<Mutex<Figures>>,
    /// Connections whose jobs are this group's now.
    mining: AtomicUsize,
    /// Its place among the groups `max_payout_groups` bounds, given back
    /// when it goes (none for the fixed group, which never does).
    place: Option<Place>,
}

/// A connection mining a group's jobs, counted while it does.
#[derive(Debug)]
pub struct Mining<F: Feed = Latest>(Arc<Group<F>>);

impl<F: Feed> Mining<F> {
    pub fn new(group: Arc<Group<F>>) -> Mining<F> {
        group.mining.fetch_add(1, Ordering::Relaxed);
        Mining(group)
    }

    pub fn group(&self) -> &Arc<Group<F>> {
        &self.0
    }
}

impl<F: Feed> Drop for Mining<F> {
    fn drop(&mut self) {
        self.0.mining.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one payout address's miners did while it had any.
#[derive(Debug)]
struct Figures {
    rates: Rates,
    accepted: u64,
    blocks: u64,
}

impl<F: Feed> Group<F> {
    fn new(payout: Payout, counted: bool, place: Option<Place>) -> Group<F> {
        Group {
            payout,
            feed: F::default(),
            mining: AtomicUsize::new(0),
            place,
            figures: counted.then(|| {
                Mutex::new(Figures {
                    rates: Rates::new(Instant::now()),
                    accepted: 0,
                    blocks: 0,
                })
            }),
        }
    }

    /// An accepted share of `difficulty` (and whether it was a block): the
    /// work that proves the group (see [`slots`]).
    pub fn record_share(&self, difficulty: f64, block: bool, now: Instant) {
        if let Some(place) = &self.place {
            place.prove();
        }
        if let Some(figures) = &self.figures {
            let mut figures = figures.lock_anyway();
            figures.rates.add(difficulty, now);
            figures.accepted += 1;
            figures.blocks += u64::from(block);
        }
    }

    /// Its miners' hashrate over 5 minutes (0 for `fixed` mode's group,
    /// the only one there).
    fn hashrate(&self, now: Instant) -> f64 {
        let Some(figures) = &self.figures else {
            return 0.0;
        };
        let figures = figures.lock_anyway();
        figures.rates.hashrates(now)[1]
    }

    /// A block on one of its jobs, sent by a connection that mines for
    /// another address: counted here, as the share was not.
    pub fn record_block(&self) {
        if let Some(figures) = &self.figures {
            figures.lock_anyway().blocks += 1;
        }
    }

    /// The job this group's miners have now.
    pub fn current(&self) -> Option<Arc<Job>> {
        self.feed.subscribe().1
    }
}

/// A payout group that could not be joined.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    #[error(
        "{max} payout addresses are being mined for already (mining.max_payout_groups): try later"
    )]
    Full { max: usize },
    #[error(
        "{max} new payout addresses wait for their first accepted share already (mining.max_payout_groups): try later"
    )]
    Waiting { max: usize },
    #[error(
        "{max} new payout addresses from this network address wait for their first accepted share (mining.max_new_payout_groups_per_ip): mine on one of them, or try later"
    )]
    FromSource { max: usize },
    #[error("{0}; this pool pays the address a username starts with (address.worker)")]
    NotAnAddress(AddressError),
}

impl JoinError {
    /// Every label of `ndas_payout_refusals_total{reason=…}`.
    pub const LABELS: [&'static str; 4] = [
        "max_payout_groups",
        "waiting_for_a_share",
        "max_new_payout_groups_per_ip",
        "not_an_address",
    ];

    /// Its label: the bound it is over, or why the name cannot be paid.
    pub fn label(&self) -> &'static str {
        match self {
            JoinError::Full { .. } => "max_payout_groups",
            JoinError::Waiting { .. } => "waiting_for_a_share",
            JoinError::FromSource { .. } => "max_new_payout_groups_per_ip",
            JoinError::NotAnAddress(_) => "not_an_address",
        }
    }
}

/// The group a worker name mines for.
#[derive(Debug)]
pub struct Resolved<F = Latest> {
    pub group: Arc<Group<F>>,
    /// In `username` mode, why the name is not an address the pool can
    /// pay, when it mines for the fallback address instead: a customer's
    /// typo pays the operator, and the operator should hear of it.
    pub fallback: Option<AddressError>,
}

/// Who the groups pay.
#[derive(Clone, Debug)]
pub struct Payouts {
    /// Paid by every connection (`fixed` mode), or by usernames that are
    /// not addresses (`username` mode's fallback).
    pub fixed: Option<Payout>,
    /// `username` mode: the username's first part is the address, on this network.
    pub by_username: Option<Network>,
    /// Most groups proven by an accepted share at once, and most waiting
    /// for one (`mining.max_payout_groups`).
    pub max_groups: usize,
    /// Most groups waiting for their first accepted share made from one
    /// source address (`mining.max_new_payout_groups_per_ip`).
    pub max_new_per_source: usize,
}

/// The live groups and the template they are built from.
struct Shared<F> {
    work: Option<Arc<Work>>,
    /// The upstream pool's job every group mines instead, while no node
    /// serves ([`PayoutGroups::publish_pool`]).
    pool: Option<Arc<Job>>,
    groups: HashMap<Arc<[u8]>, Weak<Group<F>>>,
}

/// The payout groups: joined by workers' names, each given its job for
/// every template.
pub struct PayoutGroups<F: Feed = Latest> {
    config: JobConfig,
    next_id: AtomicU64,
    /// The groups alive now, the fixed one not counted, and their bounds:
    /// checked at a join without walking the map.
    slots: Arc<Slots>,
    by_username: Option<Network>,
    /// `fixed` mode's one group (or the fallback's), which never goes.
    fixed: Option<Arc<Group<F>>>,
    shared: Mutex<Shared<F>>,
    /// Between [`PayoutGroups::withdraw`] and the next publish.
    withdrawn: AtomicBool,
    /// The largest coinbase any group's job can have: what a template must
    /// leave room for ([`crate::work::limits::fit`]).
    coinbase: crate::work::limits::CoinbaseBounds,
    /// `[[route]]`: where a node's jobs' miners mine instead, by weight.
    routes: std::sync::OnceLock<Arc<crate::work::routes::Routes>>,
}

impl<F: Feed> PayoutGroups<F> {
    /// Job ids start from `first_id`; give each process start a new range
    /// (e.g. from the clock) so a miner's share for a job of an earlier run is
    /// answered "job not found", never judged against another job.
    pub fn new(config: JobConfig, first_id: u64, payouts: Payouts) -> Arc<PayoutGroups<F>> {
        let main = payouts
            .fixed
            .as_ref()
            .filter(|_| payouts.by_username.is_none());
        let coinbase = crate::work::limits::coinbase_bounds(&config, main);
        let counted = payouts.by_username.is_some();
        let fixed = payouts
            .fixed
            .map(|payout| Arc::new(Group::new(payout, counted, None)));
        let mut groups = HashMap::new();
        if let Some(group) = &fixed {
            groups.insert(group.payout.script.clone(), Arc::downgrade(group));
        }
        Arc::new(PayoutGroups {
            config,
            next_id: AtomicU64::new(first_id.max(1)),
            slots: Slots::new(payouts.max_groups, payouts.max_new_per_source),
            by_username: payouts.by_username,
            fixed,
            shared: Mutex::new(Shared {
                work: None,
                pool: None,
                groups,
            }),
            withdrawn: AtomicBool::new(false),
            coinbase,
            routes: std::sync::OnceLock::new(),
        })
    }

    /// The largest coinbase this manager's jobs can have.
    pub fn coinbase_bounds(&self) -> crate::work::limits::CoinbaseBounds {
        self.coinbase
    }

    /// The group of `fixed` mode (or `username` mode's fallback address).
    pub fn fixed(&self) -> Option<Arc<Group<F>>> {
        self.fixed.clone()
    }

    /// The group every connection mines from its start: `fixed` mode's.
    /// In `username` mode a connection has none until a worker is
    /// authorized (and counts for no address before).
    pub fn starting_group(&self) -> Option<Arc<Group<F>>> {
        self.fixed.clone().filter(|_| self.by_username.is_none())
    }

    /// The group a worker of this name mines for: the fixed one, or in
    /// `username` mode the one of the address before the first `.`, made
    /// for a connection from `source` (the per-source bound of new groups;
    /// none leaves it unbounded).
    pub fn for_username(
        &self,
        username: &str,
        source: Option<IpAddr>,
    ) -> Result<Arc<Group<F>>, JoinError> {
        self.resolve(username, source)
            .map(|resolved| resolved.group)
    }

    /// [`PayoutGroups::for_username`], and why the name mines for the
    /// fallback address when it does (`username_fallback`).
    pub fn resolve(
        &self,
        username: &str,
        source: Option<IpAddr>,
    ) -> Result<Resolved<F>, JoinError> {
        let Some(network) = self.by_username else {
            // `fixed` mode: `Config::validate` requires its payout address,
            // and `lib.rs` gives it to the manager.
            let fixed = self.fixed.clone();
            return Ok(Resolved {
                group: fixed.expect("fixed mode is started with its payout address"),
                fallback: None,
            });
        };
        let address = username.split('.').next().unwrap_or_default();
        match Payout::parse(address, network) {
            Ok(payout) => Ok(Resolved {
                group: self.join(&payout, source)?,
                fallback: None,
            }),
            Err(error) => match self.fixed.clone() {
                Some(group) => Ok(Resolved {
                    group,
                    fallback: Some(error),
                }),
                None => Err(JoinError::NotAnAddress(error)),
            },
        }
    }

    /// The group paying `payout`, made (with its job for the current
    /// template) if no connection mines for it yet and the bounds allow.
    pub fn join(
        &self,
        payout: &Payout,
        source: Option<IpAddr>,
    ) -> Result<Arc<Group<F>>, JoinError> {
        if let Some(fixed) = self
            .fixed
            .as_ref()
            .filter(|g| g.payout.script == payout.script)
        {
            return Ok(fixed.clone());
        }
        let mut shared = self.shared();
        // Joining a group that exists is never bounded: a customer already
        // mining is never refused for what strangers hold.
        if let Some(group) = shared.groups.get(&payout.script).and_then(Weak::upgrade) {
            return Ok(group);
        }
        // The fallback address's group is not one of the bounded ones.
        let place = self.slots.take(&payout.script, source, Instant::now())?;
        // Gone groups leave their slots behind until a publish; cleared
        // here only when they outnumber the live ones, so a full registry
        // is never walked per authorize.
        if shared.groups.len() >= 4 * self.slots.max() {
            shared.groups.retain(|_, group| group.strong_count() > 0);
        }
        let group: Arc<Group<F>> = Arc::new(Group::new(payout.clone(), true, Some(place)));
        if let Some(job) = &shared.pool {
            group.feed.publish(job.clone());
        } else if let Some(work) = &shared.work {
            match self.build(work, payout) {
                Ok(job) => {
                    group.feed.publish(job);
                }
                Err(error) => {
                    tracing::error!(%error, "cannot build a job for a new payout address")
                }
            }
        }
        shared
            .groups
            .insert(payout.script.clone(), Arc::downgrade(&group));
        Ok(group)
    }

    /// The live group paying `script`, if any: where a block found on one
    /// of its jobs by a connection that mines for another is counted.
    pub fn group_paying(&self, script: &[u8]) -> Option<Arc<Group<F>>> {
        if let Some(fixed) = self.fixed.as_ref().filter(|g| *g.payout.script == *script) {
            return Some(fixed.clone());
        }
        self.shared().groups.get(script).and_then(Weak::upgrade)
    }

    /// Builds the jobs of `template` for every group with miners on it (and
    /// the fixed one) and hands each to its group; returns the first.
    pub fn publish(&self, template: Arc<Template>) -> Result<Option<Arc<Job>>, CoinbaseError> {
        let work = Arc::new(Work::new(template.clone()));
        let mut live: Vec<(f64, Arc<Group<F>>)> = {
            let mut shared = self.shared();
            shared.work = Some(work.clone());
            shared.pool = None;
            self.withdrawn.store(false, Ordering::Relaxed);
            shared.groups.retain(|_, group| group.strong_count() > 0);
            shared
                .groups
                .values()
                .filter_map(Weak::upgrade)
                .map(|g| (0.0, g))
                .collect()
        };
        // Outside the lock: a join meanwhile builds its own job from `work`.
        // The groups with the most hashrate (5 minutes) first: with many
        // groups the last wait for all the others, and the new tip's work
        // is worth the most where the most hashing waits for it.
        let now = Instant::now();
        for (rate, group) in &mut live {
            *rate = group.hashrate(now);
        }
        live.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut first = None;
        for (_, group) in live {
            match self.build(&work, &group.payout) {
                Ok(job) => {
                    group.feed.publish(job.clone());
                    first.get_or_insert(job);
                }
                // What fails a coinbase (the tag, the extranonce) fails
                // every group's alike: the first failure is before any
                // group was moved on, and the template is not published.
                Err(error) if first.is_none() => return Err(error),
                Err(error) => {
                    tracing::error!(%error, address = %group.payout.address, "cannot build a job for this payout address")
                }
            }
        }
        Ok(first)
    }

    /// Takes every group's job away (no node serves): each group's feed is
    /// emptied, which tells its connections to close, and a group joined
    /// meanwhile gets no job. The next [`PayoutGroups::publish`] gives work
    /// again.
    pub fn withdraw(&self) {
        let live: Vec<Arc<Group<F>>> = {
            let mut shared = self.shared();
            shared.work = None;
            shared.pool = None;
            self.withdrawn.store(true, Ordering::Relaxed);
            shared.groups.values().filter_map(Weak::upgrade).collect()
        };
        for group in live {
            group.feed.withdraw();
        }
    }

    /// Whether the work is withdrawn ([`PayoutGroups::withdraw`]) and not
    /// published since.
    pub fn is_withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::Relaxed)
    }

    /// The groups and the current work; a panic elsewhere does not poison
    /// them for the rest of the process (they hold no invariant a panic
    /// could break halfway).
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared<F>> {
        self.shared.lock_anyway()
    }

    fn build(&self, work: &Work, payout: &Payout) -> Result<Arc<Job>, CoinbaseError> {
        let id = JobId(self.next_id.fetch_add(1, Ordering::Relaxed));
        Ok(Arc::new(Job::for_payout(id, work, payout, &self.config)?))
    }

    /// The groups with miners on them now (and the fixed one).
    pub fn group_count(&self) -> usize {
        let (proven, waiting) = self.slots.live();
        proven + waiting + usize::from(self.fixed.is_some())
    }
}

#[cfg(test)]
mod tests;
