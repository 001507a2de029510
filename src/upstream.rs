//! The upstream pools (`[[upstream]]`): one connection to each, kept open
//! and watched, so that an operator sees before the nodes fail whether the
//! pools the farm would fall over to take NDAS (issue 24). Each connection
//! is [`ndas_core::upstream::UpstreamSession`] over a socket: it is told
//! what the pool sends, and the pool's state, difficulty and handshake
//! time are kept in [`UpstreamStatus`] for `/api/stats` and the metrics.
//! A pool that refuses NDAS (its account, an extranonce2 too small for a
//! slice per miner, a broken protocol) or goes away is tried again after a
//! backoff. Miners are not moved to a pool yet.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use crate::config::UpstreamConfig;
use crate::node::rpc::Backoff;
use ndas_core::clock::unix_now;
use ndas_core::sync::LockAnyway;
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

/// One upstream pool as the operator sees it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UpstreamStatus {
    pub name: String,
    /// `connecting`, `ready` (subscribed and authorized), `refused` (the
    /// pool cannot be used: `reason` says why) or `down` (unreachable or
    /// gone).
    pub state: &'static str,
    pub reason: Option<String>,
    /// The pool's share difficulty for NDAS.
    pub difficulty: Option<f64>,
    /// From the handshake sent to the pool's authorize answer.
    pub handshake_ms: Option<f64>,
    pub extranonce2_size: Option<usize>,
    /// Unix seconds of the last change of state.
    pub since: u64,
}

/// Every upstream's status, in the config's order.
#[derive(Default)]
pub struct Upstreams(Vec<Mutex<UpstreamStatus>>);

impl Upstreams {
    pub fn new(configs: &[UpstreamConfig]) -> Arc<Upstreams> {
        Arc::new(Upstreams(
            configs
                .iter()
                .map(|c| {
                    Mutex::new(UpstreamStatus {
                        name: c.name.clone(),
                        state: "connecting",
                        since: unix_now(),
                        ..UpstreamStatus::default()
                    })
                })
                .collect(),
        ))
    }

    /// Every upstream's status now.
    pub fn snapshot(&self) -> Vec<UpstreamStatus> {
        self.0.iter().map(|s| s.lock_anyway().clone()).collect()
    }

    fn set(&self, index: usize, change: impl FnOnce(&mut UpstreamStatus)) {
        let mut status = self.0[index].lock_anyway();
        let before = status.state;
        change(&mut status);
        if status.state != before {
            status.since = unix_now();
        }
    }
}

/// Keeps a connection to upstream `index` until `shutdown`, trying again
/// after a backoff whenever the pool refuses NDAS or goes away.
/// `min_extranonce2` is what NDAS needs of the pool's extranonce2: a
/// 4-byte slice per miner and the miners' own extranonce2.
pub async fn run(
    config: UpstreamConfig,
    index: usize,
    min_extranonce2: usize,
    upstreams: Arc<Upstreams>,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: CancellationToken,
) {
    let backoff = Backoff {
        first: Duration::from_secs(1),
        max: Duration::from_secs(60),
        attempts: u32::MAX,
    };
    let mut failures = 0u32;
    loop {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = connection(&config, index, min_extranonce2, &upstreams, &metrics) => outcome,
        };
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
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff.delay(failures)) => {}
        }
        upstreams.set(index, |s| s.state = "connecting");
    }
}

/// How one connection ended.
enum Ended {
    Refused(String),
    Down(String),
}

async fn connection(
    config: &UpstreamConfig,
    index: usize,
    min_extranonce2: usize,
    upstreams: &Upstreams,
    metrics: &crate::metrics::Metrics,
) -> Ended {
    let (host, port) = match config.address() {
        Ok(address) => address,
        Err(why) => return Ended::Refused(why),
    };
    let stream = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Ended::Down(format!("cannot connect to {host}:{port}: {error}")),
        Err(_) => {
            return Ended::Down(format!(
                "no connection to {host}:{port} within {CONNECT_TIMEOUT:?}"
            ))
        }
    };
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.into_split();
    let mut lines = FramedRead::new(reader, LinesCodec::new_with_max_length(MAX_LINE_BYTES));
    let mut session: UpstreamSession<()> = UpstreamSession::new(UpstreamSettings {
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
        if let Err(error) = writer.write_all(&line).await {
            return Ended::Down(format!("cannot write to the pool: {error}"));
        }
    }
    let mut tick = tokio::time::interval(TICK);
    let mut heard = Instant::now();
    let mut messages = 0;
    loop {
        tokio::select! {
            line = lines.next() => match line {
                Some(Ok(line)) => {
                    heard = Instant::now();
                    session.handle_line(&line, ndas_core::upstream::Now::system(), &mut events);
                }
                Some(Err(error)) => return Ended::Refused(format!("the pool's line cannot be read: {error}")),
                None => return Ended::Down("the pool closed the connection".into()),
            },
            _ = tick.tick() => {
                if heard.elapsed() > SILENCE {
                    return Ended::Down(format!("the pool sent nothing for {SILENCE:?}"));
                }
                session.tick(ndas_core::upstream::Now::system(), &mut events);
            }
        }
        for event in events.drain(..) {
            match event {
                Event::Ready {
                    extranonce2_size, ..
                } => {
                    let handshake = started.elapsed().as_secs_f64() * 1000.0;
                    tracing::info!(upstream = %config.name, extranonce2_size, handshake_ms = handshake, "upstream pool ready");
                    metrics.upstreams.up(&config.name, true);
                    upstreams.set(index, |s| {
                        s.state = "ready";
                        s.reason = None;
                        s.handshake_ms = Some(handshake);
                        s.extranonce2_size = Some(extranonce2_size);
                    });
                }
                Event::Difficulty(difficulty) => {
                    metrics.upstreams.difficulty(&config.name, difficulty);
                    upstreams.set(index, |s| s.difficulty = Some(difficulty));
                }
                Event::Refused { reason } => return Ended::Refused(reason.to_string()),
                // A pool may send messages at its line rate: the log takes
                // the first few of each connection.
                Event::Message(text) if messages < MAX_MESSAGES_LOGGED => {
                    messages += 1;
                    tracing::info!(upstream = %config.name, message = %text, "upstream pool says");
                }
                Event::Reconnect { .. } => {
                    return Ended::Down("the pool asked NDAS to reconnect".into())
                }
                _ => {}
            }
        }
    }
}
