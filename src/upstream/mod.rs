//! The upstream pools (`[[upstream]]`): one connection to each, kept open
//! and watched, so that an operator sees before the nodes fail whether the
//! pools the farm would fall over to take NDAS (issue 24). Each connection
//! is [`ndas_core::upstream::UpstreamSession`] over a socket: it is told
//! what the pool sends, and the pool's state, difficulty and handshake
//! time are kept in [`UpstreamStatus`] for `/api/stats` and the metrics.
//! A pool that refuses NDAS (its account, an extranonce2 too small for a
//! slice per miner, a broken protocol) or goes away is tried again after a
//! backoff.
//!
//! While ready, a connection hands the pool's newest job to the job stage
//! ([`links`]), which gives it to the miners when no node serves
//! (`mining.when_no_node = "upstream"`), and sends the pool the shares
//! miners find on it, crediting each answer to the miner's worker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use crate::config::UpstreamConfig;
use crate::node::rpc::Backoff;
use crate::stats::upstreams::Upstreams;
use crate::stats::Stats;
use ndas_core::channel::Forward;
use ndas_core::upstream::{Event, UpstreamLimits, UpstreamSession, UpstreamSettings};

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
/// `client.show_message` texts logged per connection.
const MAX_MESSAGES_LOGGED: usize = 16;
/// The user agent pools see.
const AGENT: &str = concat!("NDAS/", env!("CARGO_PKG_VERSION"));

pub mod links;
mod pool_state;

use pool_state::{too_narrow, PoolState};

/// A task per upstream in `configs`, keeping its connection, and their
/// status in `stats`; each pool's jobs (for the job stage) and where
/// miners' connections send their shares. `extranonce2_size` is the
/// miners' own: NDAS needs a 4-byte slice per miner beside it.
pub fn start(
    configs: &[UpstreamConfig],
    extranonce2_size: usize,
    stats: &Arc<Stats>,
    tasks: &tokio_util::task::TaskTracker,
    shutdown: &CancellationToken,
) -> (Vec<links::PoolFeed>, Arc<links::Forwarders>) {
    let names: Vec<String> = configs.iter().map(|u| u.name.clone()).collect();
    let upstreams = Upstreams::new(&names);
    let _ = stats.upstreams.set(upstreams.clone());
    let (feeds, forwarders, ends) = links::links(&names, stats.metrics.clone());
    let needed = ndas_core::work::extranonce::EXTRANONCE1_LEN + extranonce2_size;
    for ((index, upstream), ends) in configs.iter().enumerate().zip(ends) {
        stats.metrics.upstreams.configured(&upstream.name);
        tasks.spawn(run(
            upstream.clone(),
            index,
            needed,
            upstreams.clone(),
            stats.clone(),
            ends,
            shutdown.clone(),
        ));
    }
    (feeds, forwarders)
}

/// Keeps a connection to upstream `index` until `shutdown`, trying again
/// after a backoff whenever the pool refuses NDAS or goes away.
/// `min_extranonce2` is what NDAS needs of the pool's extranonce2: a
/// 4-byte slice per miner and the miners' own extranonce2.
async fn run(
    config: UpstreamConfig,
    index: usize,
    min_extranonce2: usize,
    upstreams: Arc<Upstreams>,
    stats: Arc<Stats>,
    mut ends: links::UpstreamEnds,
    shutdown: CancellationToken,
) {
    let backoff = Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(60),
        attempts: u32::MAX,
    };
    let metrics = stats.metrics.clone();
    let mut failures = 0u32;
    let mut numbers = 0u64;
    loop {
        numbers += 1;
        let number = numbers;
        let mut link = Link {
            config: &config,
            index,
            number,
            numbers: &mut numbers,
            upstreams: &upstreams,
            stats: &stats,
            ends: &mut ends,
        };
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = link.connection(min_extranonce2) => outcome,
        };
        // Its jobs are no one's to mine now; shares queued for it are
        // counted as they are read by the next connection (not its own).
        ends.work.send_replace(None);
        metrics.upstreams.up(&config.name, false);
        let (state, reason) = match outcome {
            Ended::Refused(reason) => ("refused", reason),
            Ended::Down(reason) => ("down", reason),
        };
        tracing::warn!(upstream = %config.name, state, %reason, "upstream pool not usable; tried again");
        upstreams.set(index, |s| {
            s.state = state;
            s.reason = Some(reason);
        });
        metrics.upstreams.failed(&config.name, state);
        failures = failures.saturating_add(1);
        let wait = tokio::time::sleep(backoff.delay(failures));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = &mut wait => break,
                // Shares for a connection that is gone: counted, never sent.
                Some(_) = ends.shares.recv() => metrics.upstreams.share(&config.name, "dropped"),
            }
        }
        upstreams.set(index, |s| s.state = "connecting");
    }
}

/// Longest a line to the pool may take to write: a pool that stops
/// reading must not hold the connection (and its miners) on its last job.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes `line` to the pool within [`WRITE_TIMEOUT`]; why not, if not.
async fn write(writer: &mut tokio::net::tcp::OwnedWriteHalf, line: &[u8]) -> Result<(), String> {
    match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(line)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("cannot write to the pool: {error}")),
        Err(_) => Err(format!("the pool took no line for {WRITE_TIMEOUT:?}")),
    }
}

/// How one connection ended.
pub(super) enum Ended {
    Refused(String),
    Down(String),
}

/// One connection to an upstream and what it reports to.
struct Link<'a> {
    config: &'a UpstreamConfig,
    index: usize,
    /// This connection's number (a new one at the pool's
    /// `set_extranonce`): a share on a job of an earlier one is not sent,
    /// and miners drop those jobs.
    number: u64,
    /// The upstream's count of numbers given.
    numbers: &'a mut u64,
    upstreams: &'a Upstreams,
    stats: &'a Stats,
    ends: &'a mut links::UpstreamEnds,
}

impl Link<'_> {
    async fn connection(&mut self, min_extranonce2: usize) -> Ended {
        let config = self.config;
        let (host, port) = match config.address() {
            Ok(address) => address,
            Err(why) => return Ended::Refused(why),
        };
        let stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    return Ended::Down(format!("cannot connect to {host}:{port}: {error}"))
                }
                Err(_) => {
                    return Ended::Down(format!(
                        "no connection to {host}:{port} within {CONNECT_TIMEOUT:?}"
                    ))
                }
            };
        let _ = stream.set_nodelay(true);
        let (reader, mut writer) = stream.into_split();
        let mut lines = FramedRead::new(reader, LinesCodec::new_with_max_length(MAX_LINE_BYTES));
        let mut session: UpstreamSession<Arc<str>> = UpstreamSession::new(UpstreamSettings {
            user: config.user.clone(),
            password: config
                .password
                .clone()
                .unwrap_or_else(|| ndas_core::Secret::new("x")),
            agent: AGENT.into(),
            min_extranonce2,
            limits: UpstreamLimits::default(),
        });
        let started = Instant::now();
        let mut events = Vec::new();
        for line in session.start(ndas_core::upstream::Now::system()) {
            if let Err(why) = write(&mut writer, &line).await {
                return Ended::Down(why);
            }
        }
        let mut tick = tokio::time::interval(TICK);
        let mut heard = Instant::now();
        let mut messages = 0;
        let mut pool = PoolState::default();
        let ended = 'serve: loop {
            let mut out = None;
            tokio::select! {
                line = lines.next() => match line {
                    Some(Ok(line)) => {
                        heard = Instant::now();
                        session.handle_line(&line, ndas_core::upstream::Now::system(), &mut events);
                    }
                    Some(Err(error)) => break 'serve Ended::Refused(format!("the pool's line cannot be read: {error}")),
                    None => break 'serve Ended::Down("the pool closed the connection".into()),
                },
                Some(forward) = self.ends.shares.recv() => out = self.submit(&mut session, forward),
                _ = tick.tick() => {
                    if heard.elapsed() > SILENCE {
                        break 'serve Ended::Down(format!("the pool sent nothing for {SILENCE:?}"));
                    }
                    session.tick(ndas_core::upstream::Now::system(), &mut events);
                }
            }
            if let Some(line) = out {
                if let Err(why) = write(&mut writer, &line).await {
                    break 'serve Ended::Down(why);
                }
            }
            // Set by the first event that ends the connection; the rest are
            // still handled (a refusal's given-up submits follow it).
            let mut end: Option<Ended> = None;
            for event in events.drain(..) {
                match event {
                    Event::Ready {
                        extranonce1,
                        extranonce2_size,
                        version_mask,
                    } => {
                        // Never shown ready when it cannot be used.
                        if let Some(refused) = too_narrow(version_mask) {
                            end = end.or(Some(refused));
                            continue;
                        }
                        let handshake = started.elapsed().as_secs_f64() * 1000.0;
                        tracing::info!(upstream = %config.name, extranonce2_size, handshake_ms = handshake, "upstream pool ready");
                        self.stats.metrics.upstreams.up(&config.name, true);
                        self.upstreams.set(self.index, |s| {
                            s.state = "ready";
                            s.reason = None;
                            s.handshake_ms = Some(handshake);
                            s.extranonce2_size = Some(extranonce2_size);
                        });
                        pool.extranonce = Some((extranonce1, extranonce2_size));
                        pool.version_mask = version_mask;
                    }
                    Event::Difficulty(difficulty) => {
                        self.stats
                            .metrics
                            .upstreams
                            .difficulty(&config.name, difficulty);
                        self.upstreams
                            .set(self.index, |s| s.difficulty = Some(difficulty));
                        pool.difficulty = Some(difficulty);
                        // The pool judges shares at this difficulty from
                        // now: its newest job again, at it.
                        self.publish(&pool);
                    }
                    Event::VersionMask(mask) => {
                        pool.version_mask = mask;
                        end = end.or(too_narrow(mask));
                    }
                    Event::Extranonce {
                        extranonce1,
                        extranonce2_size,
                    } => {
                        if extranonce2_size < min_extranonce2 {
                            end = end.or(Some(Ended::Refused(format!("the pool's new extranonce2 is {extranonce2_size} bytes; NDAS needs {min_extranonce2} to give each miner a slice"))));
                            continue;
                        }
                        // Every job is invalid: taken from miners (who stay
                        // on it for the job stage's grace), the pool's next
                        // one goes to them as clean, and shares on earlier
                        // ones are not sent.
                        pool.extranonce = Some((extranonce1, extranonce2_size));
                        pool.job = None;
                        pool.jobs = 0;
                        *self.numbers += 1;
                        self.number = *self.numbers;
                        self.ends.work.send_replace(None);
                    }
                    Event::Job { work, .. } => {
                        pool.job = Some(work);
                        pool.jobs += 1;
                        self.publish(&pool);
                    }
                    Event::Refused { reason } => {
                        end = end.or(Some(Ended::Refused(reason.to_string())))
                    }
                    // A pool may send messages at its line rate: the log takes
                    // the first few of each connection.
                    Event::Message(text) if messages < MAX_MESSAGES_LOGGED => {
                        messages += 1;
                        tracing::info!(upstream = %config.name, message = %text, "upstream pool says");
                    }
                    Event::Message(_) => {}
                    Event::Reconnect { .. } => {
                        end = end.or(Some(Ended::Down("the pool asked NDAS to reconnect".into())))
                    }
                    Event::Answered {
                        tag,
                        accepted,
                        reason,
                        latency,
                    } => self.answered(&tag, accepted, reason, latency),
                    Event::Unanswered { .. } => self
                        .stats
                        .metrics
                        .upstreams
                        .share(&config.name, "unanswered"),
                }
            }
            if let Some(end) = end {
                break 'serve end;
            }
        };
        // Submits still waiting are not going to be answered.
        for _ in 0..session.in_flight() {
            self.stats
                .metrics
                .upstreams
                .share(&config.name, "unanswered");
        }
        ended
    }

    /// The pool's newest job for the job stage, once it can be mined.
    fn publish(&self, pool: &PoolState) {
        if let Some(work) = pool.work(self.index, self.number) {
            self.ends.work.send_replace(Some(Arc::new(work)));
        }
    }

    /// The `mining.submit` line of a miner's share, or nothing (counted
    /// `not_sent`) when the connection refuses it.
    fn submit(
        &self,
        session: &mut UpstreamSession<Arc<str>>,
        forward: Forward,
    ) -> Option<bytes::Bytes> {
        let name = &self.config.name;
        let metrics = &self.stats.metrics.upstreams;
        if forward.connection != self.number {
            metrics.share(name, "dropped");
            return None;
        }
        let now = ndas_core::upstream::Now::system();
        match session.submit(&forward.share, forward.worker.clone(), now) {
            Ok(line) => {
                self.upstreams.set(self.index, |s| s.shares_sent += 1);
                Some(line)
            }
            Err(why) => {
                tracing::debug!(upstream = %name, worker = %forward.worker.escape_debug(), %why, "share not sent to the upstream pool");
                metrics.share(name, "not_sent");
                if let Some(worker) = self.stats.workers.get(&forward.worker) {
                    worker.upstream_answered(false);
                }
                None
            }
        }
    }

    fn answered(
        &self,
        worker: &str,
        accepted: bool,
        reason: Option<ndas_core::upstream::PoolError>,
        latency: Duration,
    ) {
        let name = &self.config.name;
        let metrics = &self.stats.metrics.upstreams;
        metrics.share(name, if accepted { "accepted" } else { "rejected" });
        if !accepted {
            tracing::debug!(upstream = %name, worker = %worker.escape_debug(), reason = ?reason, "the upstream pool rejected a share");
        }
        let mut credited = None;
        self.upstreams.set(self.index, |s| {
            s.latency_ms = Some(latency.as_secs_f64() * 1000.0);
            if accepted {
                s.shares_accepted += 1;
                credited = s.difficulty;
            } else {
                s.shares_rejected += 1;
            }
        });
        if let Some(difficulty) = credited {
            metrics
                .accepted_difficulty_total
                .with_label_values(&[name])
                .inc_by(difficulty);
        }
        if let Some(entry) = self.stats.workers.get(worker) {
            entry.upstream_answered(accepted);
        }
    }
}
