//! The upstream pools (`[[upstream]]`): connections to each, kept open and
//! watched, so that an operator sees before the nodes fail whether the
//! pools the farm would fall over to take NDAS (issue 24). Each connection
//! is [`ndas_core::upstream::UpstreamSession`] over a socket: it is told
//! what the pool sends, and the pool's state, difficulty and handshake
//! time are kept in [`UpstreamStatus`](crate::stats::upstreams::UpstreamStatus)
//! for `/api/stats` and the metrics. A pool that refuses NDAS (its
//! account, an extranonce2 too small for a slice per miner, a broken
//! protocol) or goes away is tried again after a backoff.
//!
//! A pool's first connection is kept all along; more are opened as its
//! miners need them, one per `miners_per_connection` of them, up to
//! `max_connections` ([`ndas_core::work::lanes`]), and closed a while
//! after they are not needed. While ready, each connection (a lane) hands
//! its newest job to the job stage ([`links`]), which gives the pool's
//! lanes to the miners when no node serves (`mining.when_no_node =
//! "upstream"`), and sends the pool the shares miners find on its jobs,
//! crediting each answer to the miner's worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::UpstreamConfig;
use crate::node::rpc::Backoff;
use crate::stats::upstreams::Upstreams;
use crate::stats::Stats;
use ndas_core::channel::Forward;
use ndas_core::work::lanes::Seats;

mod link;
pub mod links;
mod pool_state;
mod wire;

use link::Link;

/// How often a pool's lanes are counted against its miners.
const LANE_CHECK: Duration = Duration::from_secs(1);
/// How long connections its miners no longer need are kept: miners come
/// and go by the minute, and a connection's handshake is not free.
const LANE_LINGER: Duration = Duration::from_secs(120);
/// Connections opened to one pool a check (a second) at most: a farm
/// failing over must not look like a flood to the pool (10,000 miners at
/// 50 a connection need 200); the miners past the open ones' bound mine
/// on them meanwhile.
const NEW_LANES_PER_CHECK: usize = 32;
/// A connection ready this long served: the backoff after it starts afresh.
const STEADY: Duration = Duration::from_secs(60);
/// How long a closed lane's connection stays after its job is taken from
/// miners: the shares they found on it reach the pool (a miner answers
/// within seconds of a new job).
const LANE_DRAIN: Duration = Duration::from_secs(15);

/// What a pool's lanes share.
struct Pool {
    config: UpstreamConfig,
    index: usize,
    /// What NDAS needs of the pool's extranonce2: a 4-byte slice per
    /// miner and the miners' own extranonce2.
    min_extranonce2: usize,
    upstreams: Arc<Upstreams>,
    stats: Arc<Stats>,
    /// Each lane's newest job, for the job stage.
    work: watch::Sender<links::LaneWork>,
    /// Connection numbers, unique among the pool's lanes.
    numbers: AtomicU64,
    /// How many lanes are open: lane `n` keeps a connection while `n` is
    /// below it (lane 0 always).
    wanted: watch::Receiver<usize>,
    /// The miners on each lane.
    seats: Arc<Seats>,
    /// NDAS's miners' floor difficulty: an SV2 pool's easiest target.
    min_difficulty: f64,
}

impl Pool {
    fn next_number(&self) -> u64 {
        self.numbers.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The hashrate `lane`'s connection carries, which an SV2 pool sets
    /// its target by: its miners at the farm's hashrate per miner over the
    /// last five minutes. While no miner is seated on it (the first lane,
    /// kept while nodes serve; a lane just opened for miners not seated
    /// yet) it is reckoned full, as the farm failing over would fill it: a
    /// target too easy when they arrive would flood the pool and NDAS.
    /// At least 1 H/s (a farm not measured yet; the pool's vardiff
    /// corrects it).
    fn nominal_hash_rate(&self, lane: usize) -> f32 {
        let miners = self.stats.metrics.connections_open().max(0) as f64;
        let per_miner = self.stats.hashrate_5m() / miners.max(1.0);
        let on_lane = match self.seats.on(lane) {
            0 => miners.min(self.config.miners_per_connection as f64),
            seated => seated as f64,
        };
        (per_miner * on_lane).clamp(1.0, f64::from(f32::MAX)) as f32
    }
}

/// Tasks keeping the connections to each upstream in `configs`, and their
/// status in `stats`; each pool's jobs (for the job stage) and where
/// miners' connections send their shares. `extranonce2_size` is the
/// miners' own: NDAS needs a 4-byte slice per miner beside it;
/// `min_difficulty` their floor, the easiest target an SV2 pool may set.
pub fn start(
    configs: &[UpstreamConfig],
    (extranonce2_size, min_difficulty): (usize, f64),
    stats: &Arc<Stats>,
    tasks: &tokio_util::task::TaskTracker,
    shutdown: &CancellationToken,
) -> (Vec<links::PoolFeed>, Arc<links::Forwarders>) {
    let pools: Vec<(String, Arc<Seats>)> = configs
        .iter()
        .map(|u| {
            let seats = Seats::new(u.max_connections, u.miners_per_connection);
            (u.name.clone(), seats)
        })
        .collect();
    let upstreams = Upstreams::new(&pools);
    let _ = stats.upstreams.set(upstreams.clone());
    let (feeds, forwarders, senders) = links::links(&pools, stats.metrics.clone());
    let min_extranonce2 = ndas_core::work::extranonce::EXTRANONCE1_LEN + extranonce2_size;
    for (((index, upstream), work), (_, seats)) in
        configs.iter().enumerate().zip(senders).zip(pools)
    {
        stats.metrics.upstreams.configured(&upstream.name);
        let (wanted_tx, wanted) = watch::channel(1);
        let pool = Arc::new(Pool {
            config: upstream.clone(),
            index,
            min_extranonce2,
            upstreams: upstreams.clone(),
            stats: stats.clone(),
            work,
            numbers: AtomicU64::new(0),
            wanted,
            seats: seats.clone(),
            min_difficulty,
        });
        tasks.spawn(keep_lanes(
            pool,
            seats,
            wanted_tx,
            forwarders.clone(),
            tasks.clone(),
            shutdown.clone(),
        ));
    }
    (feeds, forwarders)
}

/// Keeps as many lanes to `pool` open as its seated miners need
/// ([`Seats::wanted`]): one more as soon as they are needed, one fewer
/// once not needed for [`LANE_LINGER`]. Each lane's task starts the first
/// time it is needed and lives until `shutdown`.
async fn keep_lanes(
    pool: Arc<Pool>,
    seats: Arc<Seats>,
    wanted: watch::Sender<usize>,
    forwarders: Arc<links::Forwarders>,
    tasks: tokio_util::task::TaskTracker,
    shutdown: CancellationToken,
) {
    let mut started = 0;
    // Since when all the open lanes have not been needed, and the most
    // needed since.
    let mut last_needed = tokio::time::Instant::now();
    let mut peak = 1;
    let mut check = tokio::time::interval(LANE_CHECK);
    loop {
        let needed = seats.wanted();
        let open = *wanted.borrow();
        if needed >= open {
            (last_needed, peak) = (tokio::time::Instant::now(), needed);
        }
        peak = peak.max(needed);
        let next = lanes_open(needed, open, peak, last_needed.elapsed());
        if next < open {
            // The next fewer are measured from now.
            (last_needed, peak) = (tokio::time::Instant::now(), needed);
        }
        while started < next {
            let Some(shares) = forwarders.open(pool.index, started) else {
                break;
            };
            tasks.spawn(run(pool.clone(), started, shares, shutdown.clone()));
            started += 1;
        }
        if next != open {
            tracing::info!(upstream = %pool.config.name, connections = next, miners = seats.seated(), "upstream connections for the miners on it");
            wanted.send_replace(next);
        }
        let name = &pool.config.name;
        let metrics = &pool.stats.metrics.upstreams;
        metrics
            .miners
            .with_label_values(&[name])
            .set(seats.seated() as i64);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = check.tick() => {}
        }
    }
}

/// The lanes to keep open when `needed` are needed of `open`: more at
/// once, [`NEW_LANES_PER_CHECK`] a check at most; fewer only once all of
/// them have not been needed for [`LANE_LINGER`], and then as many as the
/// most needed meanwhile (`peak`), so a farm whose count swings keeps its
/// connections.
fn lanes_open(needed: usize, open: usize, peak: usize, unneeded_for: Duration) -> usize {
    if needed > open {
        needed.min(open + NEW_LANES_PER_CHECK)
    } else if unneeded_for >= LANE_LINGER {
        peak.max(needed).min(open)
    } else {
        open
    }
}

/// Keeps lane `lane`'s connection to `pool` while the lane is open, until
/// `shutdown`, trying again after a backoff whenever the pool refuses
/// NDAS or goes away.
async fn run(
    pool: Arc<Pool>,
    lane: usize,
    mut shares: mpsc::Receiver<Forward>,
    shutdown: CancellationToken,
) {
    let backoff = Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(60),
        attempts: u32::MAX,
    };
    let name = &pool.config.name;
    let metrics = pool.stats.metrics.clone();
    let mut wanted = pool.wanted.clone();
    let mut failures = 0u32;
    // Where a pool's `client.reconnect` sent this lane, for its next connection.
    let mut to = None;
    loop {
        // A closed lane waits to be opened again; the shares still queued
        // for its connection are counted, never sent.
        while lane >= *wanted.borrow_and_update() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = wanted.changed() => if changed.is_err() { return },
                Some(_) = shares.recv() => metrics.upstreams.share(name, "dropped"),
            }
        }
        let mut link = Link::new(&pool, lane, &mut shares, wanted.clone(), to.take());
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = link.connection() => outcome,
        };
        // A connection that served a while starts the backoff afresh; one
        // that keeps ending soon after (a pool reconnecting NDAS in a
        // loop) waits longer each time.
        if link.ready_for() >= STEADY {
            failures = 0;
        }
        // Its jobs are no one's to mine now; shares queued for it are
        // counted as they are read by the next connection (not its own).
        pool.work
            .send_if_modified(|lanes| lanes.get_mut(lane).and_then(Option::take).is_some());
        let (state, reason) = match outcome {
            Ended::Refused(reason) => ("refused", reason),
            Ended::Down(reason) => ("down", reason),
            Ended::Closed => {
                tracing::info!(upstream = %name, lane, "upstream connection closed: its miners are on the others");
                failures = 0;
                continue;
            }
            Ended::Reconnect { to: address, wait } => {
                tracing::info!(upstream = %name, lane, to = ?address, wait_seconds = wait.as_secs(), "the upstream pool asked NDAS to reconnect");
                to = Some(address);
                if lane == 0 {
                    metrics.upstreams.up(name, false);
                    pool.upstreams.set(pool.index, |s| {
                        s.state = "connecting";
                        s.reason = Some("the pool asked NDAS to reconnect".into());
                    });
                }
                failures = failures.saturating_add(1);
                let wait = wait.max(backoff.delay(failures));
                if !drain_for(wait, &mut shares, name, &metrics, &shutdown).await {
                    return;
                }
                continue;
            }
        };
        tracing::warn!(upstream = %name, lane, state, %reason, "upstream pool not usable; tried again");
        if lane == 0 {
            metrics.upstreams.up(name, false);
            pool.upstreams.set(pool.index, |s| {
                s.state = state;
                s.reason = Some(reason);
            });
        }
        metrics.upstreams.failed(name, state);
        failures = failures.saturating_add(1);
        if !drain_for(
            backoff.delay(failures),
            &mut shares,
            name,
            &metrics,
            &shutdown,
        )
        .await
        {
            return;
        }
        if lane == 0 {
            pool.upstreams.set(pool.index, |s| s.state = "connecting");
        }
    }
}

/// Waits `wait` (false: `shutdown` came first); shares queued meanwhile
/// are for a connection that is gone: counted, never sent.
async fn drain_for(
    wait: Duration,
    shares: &mut mpsc::Receiver<Forward>,
    name: &str,
    metrics: &crate::metrics::Metrics,
    shutdown: &CancellationToken,
) -> bool {
    let wait = tokio::time::sleep(wait);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = &mut wait => return true,
            Some(_) = shares.recv() => metrics.upstreams.share(name, "dropped"),
        }
    }
}

/// Where a pool's `client.reconnect` to `host` (none or empty: the same
/// host) and `port` (none: the same port) may take NDAS from `configured`:
/// the pool's own host, on any port. NDAS's account and password go
/// wherever it connects, so never another host: cgminer's rule (the names
/// matching from their first dot on) would hand them to `evil.co.uk` for
/// `pool.co.uk`, or to any other name under a dynamic-DNS domain.
fn redirect(
    configured: &(String, u16),
    host: Option<&str>,
    port: Option<u16>,
) -> Result<(String, u16), String> {
    let (own, own_port) = configured;
    let port = port.unwrap_or(*own_port);
    match host.filter(|h| !h.is_empty()) {
        Some(host) if !host.eq_ignore_ascii_case(own) => Err(format!(
            "{host:?} is not the pool's own host ({own:?}): NDAS's account is not sent there"
        )),
        _ => Ok((own.clone(), port)),
    }
}

/// How one connection ended.
pub(super) enum Ended {
    Refused(String),
    Down(String),
    /// Its lane was closed: the pool's miners fit on fewer connections.
    Closed,
    /// The pool's `client.reconnect`, to where it may take NDAS.
    Reconnect {
        to: (String, u16),
        wait: Duration,
    },
}

/// Longest line a pool may send: a job is a few kilobytes.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a connection's timeouts are checked.
const TICK: Duration = Duration::from_secs(1);
/// A pool that sends nothing for this long is taken for gone: pools send
/// a job at least every minute or so (para every 10 s, ckpool every 30 s),
/// and a stopped pool's socket stays open.
const SILENCE: Duration = Duration::from_secs(180);
/// How often an SV2 pool is told the hashrate a connection carries
/// (`UpdateChannel`): the pool's vardiff eases an idle channel's target
/// minute by minute, and a farm falling over to it must find it right.
/// Sooner when it is twice or half what the pool was told, but not
/// before `UPDATE_AFTER`.
const UPDATE_EVERY: Duration = Duration::from_secs(60);
const UPDATE_AFTER: Duration = Duration::from_secs(10);
/// `client.show_message` texts logged per connection.
const MAX_MESSAGES_LOGGED: usize = 16;
/// The user agent pools see.
const AGENT: &str = concat!("NDAS/", env!("CARGO_PKG_VERSION"));
/// Longest a line to the pool may take to write: a pool that stops
/// reading must not hold the connection (and its miners) on its last job.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Since `started`, in milliseconds.
fn millis_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_open_as_soon_as_miners_need_them_and_close_only_after_the_linger() {
        let second = Duration::from_secs(1);
        assert_eq!(lanes_open(3, 1, 3, Duration::ZERO), 3);
        assert_eq!(
            lanes_open(200, 1, 200, Duration::ZERO),
            1 + NEW_LANES_PER_CHECK,
            "a farm failing over is no flood of connections"
        );
        assert_eq!(
            lanes_open(1, 3, 1, second),
            3,
            "miners come and go by the minute"
        );
        assert_eq!(lanes_open(1, 3, 1, LANE_LINGER - second), 3);
        assert_eq!(lanes_open(1, 3, 1, LANE_LINGER), 1);
        assert_eq!(
            lanes_open(1, 4, 3, LANE_LINGER),
            3,
            "the most needed meanwhile"
        );
        assert_eq!(lanes_open(2, 2, 2, LANE_LINGER), 2);
    }

    #[test]
    fn a_pool_s_reconnect_is_followed_to_its_own_host_only() {
        let pool = ("stratum.pool.example".to_owned(), 3333);
        let to = |host: Option<&str>, port| redirect(&pool, host, port);
        assert_eq!(to(None, None).unwrap(), pool, "here again");
        assert_eq!(
            to(Some(""), Some(443)).unwrap(),
            ("stratum.pool.example".into(), 443)
        );
        assert_eq!(
            to(Some("STRATUM.pool.example"), Some(3334)).unwrap(),
            ("stratum.pool.example".into(), 3334)
        );
        // Another host, even of the pool's own domain (whose "domain" may
        // be a public suffix: co.uk, duckdns.org), never gets the account.
        for elsewhere in [
            "eu.pool.example",
            "evil.example",
            "10.0.0.1",
            "stratum.pool.example.evil",
        ] {
            let refused = to(Some(elsewhere), None).unwrap_err();
            assert!(refused.contains(elsewhere), "{refused}");
        }
    }
}
