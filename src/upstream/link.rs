//! One connection to an upstream pool (one lane): the core's session for
//! the pool's wire over a socket ([`Wire`]), the pool's jobs handed to the
//! job stage, miners' shares sent and the answers credited.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::pool_state::{too_narrow, PoolState};
use super::wire::{Speak, Tag, Wire};
use super::{
    millis_since, Ended, Pool, AGENT, CONNECT_TIMEOUT, LANE_DRAIN, MAX_MESSAGES_LOGGED, SILENCE,
    TICK, UPDATE_AFTER, UPDATE_EVERY,
};
use ndas_core::channel::Forward;
use ndas_core::upstream::{Event, UpstreamLimits, UpstreamSettings};

/// One connection to an upstream (one lane) and what it reports to.
pub(super) struct Link<'a> {
    pool: &'a Pool,
    lane: usize,
    /// This connection's number (a new one at the pool's
    /// `set_extranonce`): a share on a job of an earlier one is not sent,
    /// and miners drop those jobs.
    number: u64,
    shares: &'a mut mpsc::Receiver<Forward>,
    /// How many of the pool's lanes are open: past its own, this one closes.
    wanted: watch::Receiver<usize>,
    /// Counted among the pool's ready connections.
    counted: bool,
    /// Where to connect, when not the configured `url`: a pool's
    /// `client.reconnect`.
    to: Option<(String, u16)>,
    /// When a closed lane's connection ends: its miners have moved, and
    /// what they found on its job still goes out until then.
    closing: Option<Instant>,
    /// When the pool took NDAS (subscribed and authorized).
    ready_at: Option<Instant>,
}

impl<'a> Link<'a> {
    pub(super) fn new(
        pool: &'a Pool,
        lane: usize,
        shares: &'a mut mpsc::Receiver<Forward>,
        wanted: watch::Receiver<usize>,
        to: Option<(String, u16)>,
    ) -> Link<'a> {
        Link {
            pool,
            lane,
            number: pool.next_number(),
            shares,
            wanted,
            counted: false,
            to,
            closing: None,
            ready_at: None,
        }
    }

    /// How long the connection was ready for (zero: never).
    pub(super) fn ready_for(&self) -> Duration {
        self.ready_at.map_or(Duration::ZERO, |at| at.elapsed())
    }

    pub(super) async fn connection(&mut self) -> Ended {
        let config = &self.pool.config;
        let min_extranonce2 = self.pool.min_extranonce2;
        let (host, port) = match self.to.take().map_or_else(|| config.address(), Ok) {
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
        let settings = UpstreamSettings {
            user: config.user.clone(),
            password: config
                .password
                .clone()
                .unwrap_or_else(|| ndas_core::Secret::new("x")),
            agent: AGENT.into(),
            min_extranonce2,
            limits: UpstreamLimits::default(),
        };
        // When an SV2 pool was last told the connection's hashrate, and
        // what.
        let mut updated = Instant::now();
        let mut told = self.pool.nominal_hash_rate(self.lane);
        let speak = match config.authority() {
            None => Speak::V1,
            Some(authority) => Speak::V2 {
                authority,
                nominal_hash_rate: told,
                min_difficulty: self.pool.min_difficulty,
            },
        };
        let started = Instant::now();
        let mut wire = match Wire::start(stream, speak, settings, (host, port)).await {
            Ok(wire) => wire,
            Err(ended) => return ended,
        };
        let mut events = Vec::new();
        let mut tick = tokio::time::interval(TICK);
        let mut messages = 0;
        let mut pool = PoolState::default();
        let ended = 'serve: loop {
            tokio::select! {
                read = wire.read(&mut events) => match read {
                    Ok(()) => {}
                    Err(ended) => break 'serve ended,
                },
                Some(forward) = self.shares.recv() => self.submit(&mut wire, forward),
                changed = self.wanted.changed(), if self.lane > 0 => {
                    if changed.is_err() {
                        break 'serve Ended::Closed;
                    }
                    // Closed in two steps: its job is taken from miners now
                    // (they move to the other lanes), and the shares they
                    // found on it still go out until LANE_DRAIN has passed.
                    let closing = self.lane >= *self.wanted.borrow_and_update();
                    match (closing, self.closing) {
                        (true, None) => {
                            self.closing = Some(Instant::now() + LANE_DRAIN);
                            self.set_work(None);
                        }
                        (false, Some(_)) => {
                            self.closing = None;
                            self.publish(&pool);
                        }
                        _ => {}
                    }
                }
                _ = tick.tick() => {
                    if let Some(why) = wire.too_quiet(SILENCE) {
                        break 'serve Ended::Down(why);
                    }
                    let still_closed = self.lane >= *self.wanted.borrow();
                    if still_closed && self.closing.is_some_and(|at| Instant::now() >= at) {
                        break 'serve Ended::Closed;
                    }
                    wire.tick(&mut events);
                    if wire.speaks_v2() && updated.elapsed() >= UPDATE_AFTER {
                        let rate = self.pool.nominal_hash_rate(self.lane);
                        let moved = rate > 2.0 * told || 2.0 * rate < told;
                        if (moved || updated.elapsed() >= UPDATE_EVERY) && wire.update(rate) {
                            (updated, told) = (Instant::now(), rate);
                        }
                    }
                }
            }
            if let Err(why) = wire.flush().await {
                break 'serve Ended::Down(why);
            }
            // Set by the first event that ends the connection; the rest are
            // still handled (a refusal's given-up submits follow it).
            let mut end: Option<Ended> = None;
            for event in events.drain(..) {
                if let Some(ended) = self.handle(event, &mut pool, started, &mut messages) {
                    end = end.or(Some(ended));
                }
            }
            if let Some(end) = end {
                break 'serve end;
            }
        };
        // Submits still waiting are not going to be answered.
        let metrics = &self.pool.stats.metrics.upstreams;
        for _ in 0..wire.in_flight() {
            metrics.share(&config.name, "unanswered");
        }
        if self.counted {
            self.pool
                .upstreams
                .set(self.pool.index, |s| s.connections -= 1);
            metrics.connections.with_label_values(&[&config.name]).dec();
        }
        ended
    }

    /// What `event` of the pool's does here; how it ends the connection,
    /// if it does (the events after it are still handled: a refusal's
    /// given-up submits follow it).
    fn handle(
        &mut self,
        event: Event<Tag>,
        pool: &mut PoolState,
        started: Instant,
        messages: &mut usize,
    ) -> Option<Ended> {
        let name = &self.pool.config.name;
        let metrics = &self.pool.stats.metrics.upstreams;
        let (upstreams, index) = (&self.pool.upstreams, self.pool.index);
        // The pool's own state is its first connection's.
        let first = self.lane == 0;
        match event {
            Event::Ready {
                extranonce1,
                extranonce2_size,
                version_mask,
            } => {
                // Never shown ready when it cannot be used.
                if let Some(refused) = too_narrow(version_mask) {
                    return Some(refused);
                }
                let handshake = millis_since(started);
                tracing::info!(upstream = %name, lane = self.lane, extranonce2_size, handshake_ms = handshake, "upstream pool ready");
                if first {
                    metrics.up(name, true);
                }
                upstreams.set(index, |s| {
                    s.connections += 1;
                    if first {
                        s.state = "ready";
                        s.reason = None;
                        s.handshake_ms = Some(handshake);
                        s.extranonce2_size = Some(extranonce2_size);
                    }
                });
                metrics.connections.with_label_values(&[name]).inc();
                self.counted = true;
                self.ready_at = Some(Instant::now());
                pool.extranonce = Some((extranonce1, extranonce2_size));
                pool.version_mask = version_mask;
            }
            Event::Difficulty(difficulty) => {
                if first {
                    metrics.difficulty(name, difficulty);
                    upstreams.set(index, |s| s.difficulty = Some(difficulty));
                }
                pool.difficulty = Some(difficulty);
                // The pool judges shares at this difficulty from now: its
                // newest job again, at it.
                self.publish(pool);
            }
            Event::VersionMask(mask) => {
                pool.version_mask = mask;
                return too_narrow(mask);
            }
            Event::Extranonce {
                extranonce1,
                extranonce2_size,
            } => {
                let needed = self.pool.min_extranonce2;
                if extranonce2_size < needed {
                    return Some(Ended::Refused(format!("the pool's new extranonce2 is {extranonce2_size} bytes; NDAS needs {needed} to give each miner a slice")));
                }
                // Every job is invalid: taken from miners (who stay on it
                // for the job stage's grace, or move to another lane), the
                // pool's next one goes to them as clean, and shares on
                // earlier ones are not sent.
                pool.extranonce = Some((extranonce1, extranonce2_size));
                pool.job = None;
                pool.jobs = 0;
                self.number = self.pool.next_number();
                self.set_work(None);
            }
            Event::Job { work, .. } => {
                pool.job = Some(work);
                pool.jobs += 1;
                self.publish(pool);
            }
            Event::Refused { reason } => return Some(Ended::Refused(reason.to_string())),
            // A pool may send messages at its line rate: the log takes the
            // first few of each connection.
            Event::Message(text) if *messages < MAX_MESSAGES_LOGGED => {
                *messages += 1;
                tracing::info!(upstream = %name, lane = self.lane, message = %text, "upstream pool says");
            }
            Event::Message(_) => {}
            Event::Reconnect { host, port, wait } => {
                let configured = self.pool.config.address().unwrap_or_default();
                match super::redirect(&configured, host.as_deref(), port) {
                    Ok(to) => return Some(Ended::Reconnect { to, wait }),
                    // Refused: NDAS stays on this connection, which the
                    // pool may close (and NDAS comes back to its url).
                    Err(why) => {
                        tracing::warn!(upstream = %name, lane = self.lane, %why, "client.reconnect not followed; staying connected")
                    }
                }
            }
            Event::Answered {
                tag,
                accepted,
                reason,
                latency,
            } => self.answered(&tag.0, accepted, reason, latency, tag.1),
            Event::Unanswered { .. } => metrics.share(name, "unanswered"),
        }
        None
    }

    /// The pool's newest job for the job stage, once it can be mined.
    fn publish(&self, pool: &PoolState) {
        if self.closing.is_some() {
            return;
        }
        if let Some(work) = pool.work(self.pool.index, self.lane, self.number) {
            self.set_work(Some(Arc::new(work)));
        }
    }

    /// This lane's job for the job stage (none: no job to mine).
    fn set_work(&self, work: Option<Arc<ndas_core::work::pool::PoolWork>>) {
        let lane = self.lane;
        self.pool.work.send_if_modified(|lanes| {
            if lanes.len() <= lane {
                if work.is_none() {
                    return false;
                }
                lanes.resize(lane + 1, None);
            }
            lanes[lane] = work;
            true
        });
    }

    /// A miner's share queued for the pool, or not (counted `not_sent`)
    /// when the connection refuses it.
    fn submit(&self, wire: &mut Wire, forward: Forward) {
        let name = &self.pool.config.name;
        let metrics = &self.pool.stats.metrics.upstreams;
        if forward.connection != self.number {
            metrics.share(name, "dropped");
            return;
        }
        match wire.submit(
            &forward.share,
            (forward.worker.clone(), forward.pool_difficulty),
        ) {
            Ok(()) => self
                .pool
                .upstreams
                .set(self.pool.index, |s| s.shares_sent += 1),
            Err(why) => {
                tracing::debug!(upstream = %name, worker = %forward.worker.escape_debug(), %why, "share not sent to the upstream pool");
                metrics.share(name, "not_sent");
                if let Some(worker) = self.pool.stats.workers.get(&forward.worker) {
                    worker.upstream_answered(false);
                }
            }
        }
    }

    /// The pool's answer to `worker`'s share, credited at `difficulty`,
    /// the pool's on the job it was found on (each connection has its own,
    /// and it may have moved before the answer came).
    fn answered(
        &self,
        worker: &str,
        accepted: bool,
        reason: Option<ndas_core::upstream::PoolError>,
        latency: Duration,
        difficulty: f64,
    ) {
        let name = &self.pool.config.name;
        let metrics = &self.pool.stats.metrics.upstreams;
        metrics.share(name, if accepted { "accepted" } else { "rejected" });
        if !accepted {
            tracing::debug!(upstream = %name, worker = %worker.escape_debug(), reason = ?reason, "the upstream pool rejected a share");
        }
        self.pool.upstreams.set(self.pool.index, |s| {
            s.latency_ms = Some(latency.as_secs_f64() * 1000.0);
            if accepted {
                s.shares_accepted += 1;
            } else {
                s.shares_rejected += 1;
            }
        });
        if accepted {
            self.pool.upstreams.credit(self.pool.index, difficulty);
            metrics
                .accepted_difficulty_total
                .with_label_values(&[name])
                .inc_by(difficulty);
        }
        if let Some(entry) = self.pool.stats.workers.get(worker) {
            entry.upstream_answered(accepted);
        }
    }
}
