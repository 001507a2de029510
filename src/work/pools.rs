//! The job stage while no node serves (`mining.when_no_node =
//! "upstream"`): the first upstream pool with a job gives every group its
//! jobs, one per connection to it ([`ndas_core::work::lanes`]), each
//! built once from what the connection handed over.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::JobManager;
use crate::upstream::links::{LaneWork, PoolFeed};
use ndas_core::events::{Events, JobEvent};
use ndas_core::work::lanes::{Lanes, Seats};
use ndas_core::work::pool::PoolWork;
use ndas_core::work::Job;

/// A pool's jobs on the same block go out at most this often (a new block's
/// at once): each goes to every miner.
pub const MIN_POOL_JOB_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A pool's urgent changes (a new block, a lane gone) go out at most this
/// often, and a new block seen on one lane waits this long for the pool's
/// other lanes' (a pool sends it to its connections within milliseconds):
/// one fan-out for them all, not one per lane.
pub const URGENT_GATHER: std::time::Duration = std::time::Duration::from_millis(50);

/// The upstream pools' jobs, for when no node serves
/// (`mining.when_no_node = "upstream"`): each pool's newest jobs, in the
/// config's order (none: miners are closed instead), and their names.
#[derive(Default)]
pub struct Pools {
    pub feeds: Vec<PoolFeed>,
    pub names: Vec<String>,
    /// How long miners stay on a pool's last job once no pool has one (a
    /// pool reconnecting, or changing its extranonce1) before they are
    /// closed: `mining.failover_after_seconds`, the bound on stale work.
    pub grace: std::time::Duration,
}

impl Pools {
    /// `feeds` (each `[[upstream]]` pool's, in order) when miners go to
    /// pools with no node (`mining.when_no_node = "upstream"`), else none.
    pub fn for_config(config: &crate::config::Config, feeds: Vec<PoolFeed>) -> Pools {
        let upstream = config.when_no_node() == crate::config::WhenNoNode::Upstream;
        Pools {
            feeds: if upstream { feeds } else { Vec::new() },
            names: config.upstream.iter().map(|u| u.name.clone()).collect(),
            grace: std::time::Duration::from_secs(config.mining.failover_after_seconds),
        }
    }
}

/// A pool's lanes' jobs as built, by lane: the work each came from and
/// its job (none: it cannot be built, and the lane is passed over until it
/// hands over another).
#[derive(Default)]
struct Built(Vec<Option<LaneBuild>>);

/// The work a lane handed over, and its job if it could be built.
type LaneBuild = (Arc<PoolWork>, Option<Arc<Job>>);

/// A pool's lanes' newest work, by lane.
type Works = Vec<(usize, Arc<PoolWork>)>;

impl Built {
    /// The work of `lanes` not known to be unusable.
    fn usable(&self, lanes: &LaneWork, max_lanes: usize) -> Works {
        let known_bad = |lane: usize, work: &Arc<PoolWork>| matches!(self.0.get(lane), Some(Some((from, None))) if Arc::ptr_eq(from, work));
        lanes
            .iter()
            .enumerate()
            .take(max_lanes)
            .filter_map(|(lane, work)| Some((lane, work.clone()?)))
            .filter(|(lane, work)| !known_bad(*lane, work))
            .collect()
    }

    /// The jobs of `works`, each built once per work a lane hands over.
    fn jobs(&mut self, manager: &JobManager, name: &str, works: &Works) -> Vec<(usize, Arc<Job>)> {
        let mut jobs = Vec::new();
        for (lane, work) in works {
            if self.0.len() <= *lane {
                self.0.resize(lane + 1, None);
            }
            let built = match &self.0[*lane] {
                Some((from, job)) if Arc::ptr_eq(from, work) => job.clone(),
                _ => {
                    let job = manager
                        .groups
                        .pool_job(work)
                        .inspect_err(|error| tracing::error!(upstream = %name, lane, %error, "cannot build a job from the upstream pool's; passed over"))
                        .ok();
                    self.0[*lane] = Some((work.clone(), job.clone()));
                    job
                }
            };
            jobs.extend(built.map(|job| (*lane, job)));
        }
        jobs
    }
}

/// Whether a pool's `works` go out without waiting their turn after
/// `last`: a lane on a new block, a lane on a new connection (a new
/// extranonce1: its miners' shares on the last job are not sent), or a
/// lane gone (its miners' shares have nowhere to go). An update on the same
/// block, or a new lane, waits its turn.
fn urgent(last: &Works, works: &Works) -> bool {
    last.iter().any(
        |(lane, before)| match works.iter().find(|(l, _)| l == lane) {
            Some((_, now)) => {
                now.work.prev_hash != before.work.prev_hash || now.connection != before.connection
            }
            None => true,
        },
    )
}

/// How long a lane may stay on another block than the newest its pool's
/// lanes show: a pool sends a new block down all its connections within
/// milliseconds, and a connection still without it after this is not
/// getting the pool's work (until the silence bound would end it, 180 s).
pub const LANE_LAG: std::time::Duration = std::time::Duration::from_secs(2);

/// The block one pool's lanes last moved to, and when: lanes on another
/// block are left out [`LANE_LAG`] after it (their miners move to the
/// lanes that have it), until they have it too. What a lane moves to is
/// the pool's newest word; lanes that differ when first seen are not
/// judged until one moves.
#[derive(Default)]
struct Newest {
    pool: usize,
    /// Each lane's block, as last seen.
    lanes: Vec<Option<[u8; 32]>>,
    /// The block lanes last moved to, and when (none: first seen).
    newest: Option<([u8; 32], Option<tokio::time::Instant>)>,
}

impl Newest {
    /// `works` of `pool` without the lanes lagging past [`LANE_LAG`];
    /// when lanes lag and are not yet left out, when they will be.
    fn current(
        &mut self,
        pool: usize,
        works: Works,
        now: tokio::time::Instant,
    ) -> (Works, Option<tokio::time::Instant>) {
        if self.pool != pool {
            *self = Newest {
                pool,
                ..Newest::default()
            };
        }
        for (lane, work) in &works {
            let block = work.work.prev_hash;
            if self.lanes.len() <= *lane {
                self.lanes.resize(lane + 1, None);
            }
            match self.lanes[*lane] {
                Some(before) if before != block => self.newest = Some((block, Some(now))),
                None if self.newest.is_none() => self.newest = Some((block, None)),
                _ => {}
            }
            self.lanes[*lane] = Some(block);
        }
        let Some((block, Some(since))) = self.newest else {
            return (works, None);
        };
        let on_it = |work: &Arc<PoolWork>| work.work.prev_hash == block;
        if works.iter().all(|(_, work)| on_it(work)) || !works.iter().any(|(_, work)| on_it(work)) {
            return (works, None);
        }
        let deadline = since + LANE_LAG;
        if now < deadline {
            return (works, Some(deadline));
        }
        (
            works.into_iter().filter(|(_, work)| on_it(work)).collect(),
            None,
        )
    }
}

fn same(last: &Works, works: &Works) -> bool {
    last.len() == works.len()
        && last
            .iter()
            .zip(works)
            .all(|((a, x), (b, y))| a == b && Arc::ptr_eq(x, y))
}

/// One pool's lanes as miners are given them: each lane's job built once
/// per work it hands over, a same-block update at most every
/// [`MIN_POOL_JOB_INTERVAL`], an urgent change ([`urgent`]) after
/// [`URGENT_GATHER`], lanes lagging past [`LANE_LAG`] left out.
#[derive(Default)]
pub(super) struct Pacer {
    built: Built,
    newest: Newest,
    /// The lanes' work the last published jobs were made of (none: not
    /// published since [`Pacer::forget`]).
    last: Option<Works>,
    /// When the last jobs went out.
    published: Option<tokio::time::Instant>,
    /// When an urgent change seen on one lane goes out with the others'.
    gathering: Option<tokio::time::Instant>,
}

/// What a pool's lanes come to now.
pub(super) enum Paced {
    /// Jobs to publish (the first since [`Pacer::forget`] or not); and
    /// when to look again for lagging lanes.
    Publish {
        lanes: Lanes,
        first: bool,
        held: Option<tokio::time::Instant>,
    },
    /// Nothing new now; when to look again, if a change waits its turn.
    Held(Option<tokio::time::Instant>),
    /// No job could be built from the work: passed over until it changes.
    Unusable,
}

impl Pacer {
    /// The pool's lanes' work not known to be unusable, marked as read.
    pub(super) fn usable(&self, feed: &mut PoolFeed) -> Works {
        self.built
            .usable(&feed.work.borrow_and_update(), feed.seats.max_lanes())
    }

    /// The pool's miners are on other work: its next jobs go out at once.
    pub(super) fn forget(&mut self) {
        self.last = None;
        self.newest = Newest::default();
    }

    /// What `works` (not empty) of pool `pool` (`name`, its `seats`) come
    /// to `now`.
    pub(super) fn pace(
        &mut self,
        manager: &JobManager,
        (pool, name, seats): (usize, &str, &Arc<Seats>),
        works: Works,
        now: tokio::time::Instant,
    ) -> Paced {
        let (works, lagging) = self.newest.current(pool, works, now);
        // A pool cannot make the farm's fan-out run at its line rate: a
        // same-block update waits a second after the last job, an urgent
        // change URGENT_GATHER (and on several lanes, URGENT_GATHER from
        // the first lane's, so a new block reaches every lane's miners in
        // one go).
        let turn = match &self.last {
            None => {
                self.gathering = None;
                None
            }
            Some(last) if !urgent(last, &works) => {
                self.gathering = None;
                self.published.map(|at| at + MIN_POOL_JOB_INTERVAL)
            }
            Some(_) => {
                let after_last = self.published.map(|at| at + URGENT_GATHER);
                let gathered =
                    (works.len() > 1).then(|| *self.gathering.get_or_insert(now + URGENT_GATHER));
                after_last.max(gathered)
            }
        };
        if self.last.as_ref().is_some_and(|last| same(last, &works)) {
            return Paced::Held(lagging);
        }
        if turn.is_some_and(|at| now < at) {
            return Paced::Held(turn.min(lagging).or(turn));
        }
        let jobs = self.built.jobs(manager, name, &works);
        let Some(lanes) = Lanes::new(pool, seats.clone(), jobs) else {
            return Paced::Unusable;
        };
        let first = self.last.is_none();
        self.published = Some(tokio::time::Instant::now());
        self.gathering = None;
        self.last = Some(works);
        Paced::Publish {
            lanes,
            first,
            held: lagging,
        }
    }
}

/// While no node serves: every group mines the newest jobs of the first
/// pool that has one (each change of pool told once), or its work is
/// withdrawn while none has (after [`Pools::grace`] on a pool's last
/// jobs, when one was mined). Returns when the node side hands over again
/// (true: the caller reads it), or false at `shutdown` or when the node
/// side is gone.
pub(super) async fn on_pools(
    manager: &JobManager,
    templates: &mut watch::Receiver<Option<crate::node::handoff::NewTemplate>>,
    pools: &mut Pools,
    events: &Events,
    shutdown: &CancellationToken,
) -> bool {
    // The pool mined.
    let mut mined: Option<usize> = None;
    let mut withdrawn = false;
    // When miners on a pool's last job are closed, if no pool has one by then.
    let mut closing: Option<tokio::time::Instant> = None;
    let mut pacers: Vec<Pacer> = pools.feeds.iter().map(|_| Pacer::default()).collect();
    loop {
        // When a newer job on the same block gets its turn, while one waits
        // (or lagging lanes are left out).
        let mut held: Option<tokio::time::Instant> = None;
        let first = (0..pools.feeds.len()).find_map(|pool| {
            let works = pacers[pool].usable(&mut pools.feeds[pool]);
            (!works.is_empty()).then_some((pool, works))
        });
        match first {
            Some((pool, works)) => {
                closing = None;
                let name = &pools.names[pool];
                let seats = pools.feeds[pool].seats.clone();
                let now = tokio::time::Instant::now();
                match pacers[pool].pace(manager, (pool, name, &seats), works, now) {
                    Paced::Publish {
                        lanes,
                        first,
                        held: lagging,
                    } => {
                        held = lagging;
                        // The pool mined before is not any more: its next
                        // jobs go out at once when it is again.
                        if let Some(before) = mined.filter(|&before| before != pool) {
                            pacers[before].forget();
                        }
                        let job = manager.groups.publish_pool(lanes);
                        if first {
                            tracing::warn!(upstream = %name, job = %job.id, "no node serves: miners mine the upstream pool's jobs");
                            events.job(JobEvent::OnUpstream { name: name.clone() });
                        }
                        withdrawn = false;
                        mined = Some(pool);
                    }
                    Paced::Held(at) => held = at,
                    // None could be built: the next pool, or the grace on
                    // the last job.
                    Paced::Unusable => continue,
                }
            }
            // A pool's last job is mined on for the grace first.
            None if mined.is_some() && closing.is_none() => {
                tracing::warn!(
                    grace_seconds = pools.grace.as_secs_f64(),
                    "no upstream pool has a job: miners stay on the last one for the grace"
                );
                closing = Some(tokio::time::Instant::now() + pools.grace);
            }
            None if !withdrawn && closing.is_none_or(|at| at <= tokio::time::Instant::now()) => {
                closing = None;
                if !pools.feeds.is_empty() {
                    tracing::warn!(
                        "no node serves and no upstream pool has a job: miners are closed"
                    );
                }
                manager.groups.withdraw();
                events.job(JobEvent::Withdrawn);
                withdrawn = true;
                if let Some(before) = mined.take() {
                    pacers[before].forget();
                }
            }
            None => {}
        }
        let pool_changed = changed(&mut pools.feeds);
        let closes = async {
            match closing.into_iter().chain(held).min() {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            changed = templates.changed() => return changed.is_ok(),
            _ = pool_changed => {}
            _ = closes => {}
        }
    }
}

/// Until one of `feeds` changes (never without one; a pool whose task is
/// gone never changes again).
pub(super) async fn changed(feeds: &mut [PoolFeed]) {
    if feeds.is_empty() {
        return std::future::pending().await;
    }
    let waits = feeds.iter_mut().map(|feed| {
        Box::pin(async move {
            if feed.work.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    });
    futures_util::future::select_all(waits).await;
}
