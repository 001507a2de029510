//! The per-connection loop: reads lines, feeds the [`Session`], writes answers.
//!
//! Generic over the stream so tests can drive it with in-memory pipes.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use super::{Event, Now, Output, Session, SessionConfig};
use crate::blocks::BlockSink;
use crate::stats::connection::ConnectionStats;
use crate::work::JobReceiver;
use ndas_core::bucket::TokenBucket;
use ndas_core::closed::Closed;
use ndas_core::stratum::message::error;
use ndas_core::stratum::notify::{reconnect, reconnect_to};
use ndas_core::stratum::StratumError;

/// Longest a closing connection waits for the miner to read our last error.
const LINGER_TIME: Duration = Duration::from_secs(1);
/// Most a closing connection discards from the miner meanwhile.
const LINGER_BYTES: usize = 64 * 1024;

/// What every connection shares.
#[derive(Clone)]
pub struct ConnectionContext {
    /// The payout groups: each session mines its group's jobs.
    pub payout_groups: Arc<crate::work::Groups>,
    pub blocks: BlockSink,
    /// Session settings; changed by a config reload.
    pub config: watch::Receiver<Arc<SessionConfig>>,
    pub shutdown: CancellationToken,
    pub limits: ConnectionLimits,
    /// Those its address's last connection ended with (strikes are kept
    /// per address: hanging up does not reset them).
    pub carried_strikes: u32,
    pub stats: Arc<crate::stats::Stats>,
    /// The series of the port this listener serves.
    pub port: crate::metrics::PortMetrics,
    /// The port's certificate, when it speaks TLS.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// The port's authority key and bounds, when it speaks Stratum V2.
    pub sv2: Option<Arc<crate::sv2::Endpoint>>,
    /// Where miners closed for want of a node are told to go
    /// (`mining.reconnect_to`).
    pub reconnect_to: Option<Arc<(String, u16)>>,
    /// Where shares on an upstream pool's jobs go, when pools are
    /// configured.
    pub upstreams: Option<Arc<crate::upstream::links::Forwarders>>,
}

/// What one miner's connection is bounded by (the `[stratum]` keys).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Longest line read (`max_line_bytes`).
    pub max_line_bytes: usize,
    /// A miner that cannot take a line within this long is dropped.
    pub write_timeout: Duration,
    /// Lines a miner may send per second, with a burst of as many.
    pub max_lines_per_second: u32,
    /// Time from connecting to being subscribed and authorized.
    pub handshake_timeout: Duration,
    /// Longest a miner may stay silent.
    pub idle_timeout: Duration,
    /// Invalid shares in a row before the miner is told to reconnect.
    pub max_invalid_shares: u32,
}

/// Invalid shares in a row that prove a broken or hostile client
/// ([`ndas_core::share::Reject::proves_broken_client`]); a miner's honest mistakes (stale,
/// unknown job, duplicate, low difficulty) neither count nor reset the count.
pub(crate) struct Strikes {
    pub(crate) limit: u32,
    pub(crate) in_a_row: u32,
}

impl Strikes {
    /// Counts the shares judged in `events`; true when the limit is reached.
    pub(crate) fn judge(&mut self, events: &[Event]) -> bool {
        for event in events {
            if let Event::Share { verdict, .. } = event {
                match verdict {
                    Ok(_) => self.in_a_row = 0,
                    Err(reject) if !reject.proves_broken_client() => {}
                    Err(_) => {
                        self.in_a_row += 1;
                        if self.in_a_row == self.limit / 2 {
                            tracing::warn!(
                                invalid_in_a_row = self.in_a_row,
                                limit = self.limit,
                                "miner sends invalid shares"
                            );
                        }
                    }
                }
            }
        }
        self.in_a_row >= self.limit
    }
}

/// Serves one miner until it leaves, misbehaves, or NDAS shuts down.
///
/// Takes the stream as two halves: a TCP stream's `into_split` needs no lock
/// between them; any other stream can come from `tokio::io::split`.
pub async fn serve<R, W>(
    reader: R,
    writer: W,
    mut session: Session,
    context: ConnectionContext,
    handshake: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Ended
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut strikes = 0;
    let closed = serve_session(
        reader,
        writer,
        &mut session,
        context,
        handshake,
        &mut strikes,
    )
    .await;
    // The jobs parked for the miner's return, the extranonce1 freed.
    session.retire(std::time::Instant::now());
    Ended { closed, strikes }
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Ended {
    pub closed: Closed,
    /// Invalid shares in a row at the end (see `carried_strikes`).
    pub strikes: u32,
}

async fn serve_session<R, W>(
    reader: R,
    writer: W,
    session: &mut Session,
    context: ConnectionContext,
    // Held until the miner is subscribed and authorized (`max_handshaking`).
    half_open: Option<tokio::sync::OwnedSemaphorePermit>,
    strikes_at_end: &mut u32,
) -> Closed
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut lines = FramedRead::with_capacity(
        reader,
        LinesCodec::new_with_max_length(context.limits.max_line_bytes),
        512,
    );
    // Unbuffered: lines are whole `Bytes` already, and 4 KiB per miner adds up.
    let mut writer = writer;
    let mut out = Output::default();
    let mut stats = ConnectionStats::open(context.stats.clone(), context.port.clone());
    let first = session.jobs().map(|(jobs, current)| {
        if let Some(job) = current {
            session.on_job(job, Now::system(), &mut out);
        }
        jobs
    });
    // Each wait is registered once and kept across turns: re-creating them on
    // every line (every share) would take their locks for nothing, and a job
    // wakes every connection at the same moment.
    let shutdown = context.shutdown.clone();
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    let mut jobs = group_jobs(first);
    // Fused: a stream that ended (its sender dropped at shutdown) is never
    // polled again, which `unfold` forbids.
    let mut configs = Box::pin(changes(context.config.clone()).fuse());
    let handshake = tokio::time::sleep(context.limits.handshake_timeout);
    tokio::pin!(handshake);
    // Re-armed lazily when it fires, not on every line (every share).
    let idle = tokio::time::sleep(context.limits.idle_timeout);
    tokio::pin!(idle);
    let mut reading = Reading::new(&context, half_open);
    loop {
        let closed = tokio::select! {
            biased;
            _ = &mut cancelled => {
                out.lines.push(reconnect());
                Some(Closed::Shutdown)
            }
            _ = &mut handshake, if !session.is_authorized() => {
                let refusal = StratumError::other("not subscribed and authorized in time");
                out.lines.push(error(&serde_json::Value::Null, &refusal));
                Some(Closed::HandshakeTimeout)
            }
            _ = &mut idle => {
                let quiet_until = reading.last_heard + context.limits.idle_timeout;
                if tokio::time::Instant::now() >= quiet_until {
                    Some(Closed::Idle)
                } else {
                    idle.as_mut().reset(quiet_until);
                    None
                }
            }
            job = jobs.next() => match job {
                Some(Some(job)) => {
                    session.on_job(job, Now::system(), &mut out);
                    None
                }
                // The work is withdrawn: no node serves.
                Some(None) => {
                    if let Some(target) = &context.reconnect_to {
                        out.lines.push(reconnect_to(&target.0, target.1));
                    }
                    Some(Closed::NoNode)
                }
                // The job source ends only at shutdown.
                None => {
                    out.lines.push(reconnect());
                    Some(Closed::Shutdown)
                }
            },
            Some(config) = configs.next() => {
                session.set_config(config, Now::system(), &mut out);
                None
            }
            line = lines.next() => {
                let closed = reading.line(line, session, &mut out, &stats);
                if std::mem::take(&mut out.moved) {
                    jobs = group_jobs(session.take_moved());
                }
                closed
            }
        };
        hand_over_blocks(&out.events, &context);
        let written = flush(&mut writer, &mut out, context.limits.write_timeout).await;
        stats
            .stats()
            .metrics
            .bytes_sent_total
            .inc_by(written.unwrap_or(0) as u64);
        for event in out.events.drain(..) {
            stats.record(&event, session.user_agent());
        }
        *strikes_at_end = reading.strikes.in_a_row;
        if written.is_none() {
            return Closed::WriteStalled;
        }
        if let Some(closed) = closed {
            if lingers(&closed) {
                linger(&mut writer, lines.get_mut()).await;
            }
            return closed;
        }
    }
}

/// Closes our side, then discards what the miner still sends for a moment, so
/// the kernel does not reset the connection before the miner reads our error.
pub(crate) async fn linger<W: AsyncWrite + Unpin, R: AsyncRead + Unpin>(
    writer: &mut W,
    reader: &mut R,
) {
    let _ = writer.shutdown().await;
    let mut sink = [0u8; 1024];
    let drain = async {
        let mut total = 0usize;
        while total < LINGER_BYTES {
            match reader.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// Whether the miner is left time to read what was last sent before the
/// socket closes. At shutdown too: a miner with shares in flight gets
/// every answer and the reconnect, then a FIN, not a reset that would
/// throw away answers it has not read.
pub(crate) fn lingers(closed: &Closed) -> bool {
    matches!(
        closed,
        Closed::Shutdown
            | Closed::NoNode
            | Closed::LineTooLong
            | Closed::Protocol
            | Closed::Flood
            | Closed::HandshakeTimeout
            | Closed::InvalidShares
    )
}

/// What the loop keeps between a miner's lines.
struct Reading {
    /// `max_lines_per_second`, with a burst of as many; read from tokio's
    /// clock, so paused time drives it in tests.
    budget: TokenBucket,
    strikes: Strikes,
    /// Held until the miner is subscribed and authorized (`max_handshaking`).
    half_open: Option<tokio::sync::OwnedSemaphorePermit>,
    last_heard: tokio::time::Instant,
}

impl Reading {
    fn new(
        context: &ConnectionContext,
        half_open: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Reading {
        let last_heard = tokio::time::Instant::now();
        let lines_per_second = f64::from(context.limits.max_lines_per_second);
        let max_invalid = context.limits.max_invalid_shares;
        Reading {
            budget: TokenBucket::full(lines_per_second, lines_per_second, last_heard.into_std()),
            strikes: Strikes {
                limit: max_invalid,
                in_a_row: context.carried_strikes.min(max_invalid.saturating_sub(1)),
            },
            half_open,
            last_heard,
        }
    }

    /// What the reader gave (a line, an error, or the end), answered into
    /// `out`; why the connection closes, if it does.
    fn line(
        &mut self,
        line: Option<Result<String, LinesCodecError>>,
        session: &mut Session,
        out: &mut Output,
        stats: &ConnectionStats,
    ) -> Option<Closed> {
        match line {
            Some(Ok(line)) => {
                stats
                    .stats()
                    .metrics
                    .bytes_received_total
                    .inc_by(line.len() as u64 + 1);
                self.last_heard = tokio::time::Instant::now();
                if self.budget.take(self.last_heard.into_std()) {
                    session.handle_line(&line, Now::system(), out);
                    if self.half_open.is_some() && session.is_authorized() {
                        // Its place among the half-open is free again.
                        self.half_open = None;
                    }
                    // An accepted share gives back its line: it cost its
                    // sender real hashing wherever the budget matters, and
                    // on regtest a CPU miner's every line is one (vardiff
                    // cannot slow it past the network's difficulty).
                    if out
                        .events
                        .iter()
                        .any(|e| matches!(e, Event::Share { verdict: Ok(_), .. }))
                    {
                        self.budget.refund();
                    }
                    if out.close {
                        Some(Closed::Protocol)
                    } else if self.strikes.judge(&out.events) {
                        out.lines.push(reconnect());
                        Some(Closed::InvalidShares)
                    } else {
                        None
                    }
                } else {
                    let refusal = StratumError::other("too many lines");
                    out.lines.push(error(&serde_json::Value::Null, &refusal));
                    Some(Closed::Flood)
                }
            }
            Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                let refusal = StratumError::other("line too long");
                out.lines.push(error(&serde_json::Value::Null, &refusal));
                Some(Closed::LineTooLong)
            }
            Some(Err(LinesCodecError::Io(error))) => Some(Closed::from_read_error(&error)),
            None => Some(Closed::Eof),
        }
    }
}

/// A payout group's jobs as they change; none at all before the session
/// has a group (`username` mode before its first authorize).
fn group_jobs(
    jobs: Option<JobReceiver>,
) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = Option<Arc<ndas_core::work::Job>>> + Send>> {
    match jobs {
        Some(jobs) => Box::pin(changes(jobs)),
        None => Box::pin(futures_util::stream::pending()),
    }
}

/// Every new value of a watch channel, as a stream whose wait persists
/// between polls.
pub(crate) fn changes<T: Clone + Send + Sync + 'static>(
    receiver: watch::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.changed().await.ok()?;
        let value = receiver.borrow_and_update().clone();
        Some((value, receiver))
    })
}

/// Sends found blocks to the submitter before anything else is done, and
/// shares on an upstream pool's jobs to its connection.
pub(crate) fn hand_over_blocks(events: &[Event], context: &ConnectionContext) {
    for event in events {
        if let (Event::Forward(forward), Some(upstreams)) = (event, &context.upstreams) {
            upstreams.send(forward);
        }
        if let Event::Block(block) = event {
            // Handed over first, logged after: the log line is not on the
            // block's critical path. The journal thread outlives every
            // connection; a send fails only if it died, and then the whole
            // block goes to the log for the operator.
            match context.blocks.send(block.clone()) {
                // One line per parent: later blocks on it are summed up by
                // the submitter (blocks::triage).
                Ok(crate::blocks::triage::Admit::First) => tracing::info!(
                    hash = %block.hash,
                    height = block.job.template.height,
                    worker = %block.worker.escape_debug(),
                    "BLOCK FOUND"
                ),
                Ok(_) => {}
                Err(block) => {
                    tracing::error!(hash = %block.hash, block = %faster_hex::hex_string(&block.serialize()), "BLOCK FOUND BUT THE JOURNAL THREAD IS GONE; submit it by hand");
                }
            }
        }
    }
}

/// Writes every pending line; the bytes written, or `None` if the miner did not take them in time.
async fn flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut Output,
    timeout: Duration,
) -> Option<usize> {
    if out.lines.is_empty() {
        return Some(0);
    }
    let write = async {
        let mut written = 0;
        for line in out.lines.drain(..) {
            writer.write_all(&line).await?;
            written += line.len();
        }
        writer.flush().await.map(|()| written)
    };
    tokio::time::timeout(timeout, write).await.ok()?.ok()
}
