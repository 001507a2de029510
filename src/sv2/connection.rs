//! One Stratum V2 connection's loop: the Noise handshake within the
//! handshake timeout, then frames in, the state machine's messages out,
//! its channels' groups' jobs waited on, under the same bounds as a
//! Stratum V1 connection (frames per second, invalid shares in a row,
//! idle and write timeouts).

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures_util::{Stream, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::wire::{self, WireError};
use crate::session::connection::{
    changes, hand_over_blocks, linger, lingers, ConnectionContext, Ended, Strikes,
};
use crate::stats::connection::ConnectionStats;
use crate::work::JobReceiver;
use ndas_core::bucket::TokenBucket;
use ndas_core::channel::Now;
use ndas_core::closed::Closed;
use ndas_core::sv2::{GroupKey, Output};
use ndas_core::work::Job;

/// Longest a connection with channels goes without a frame from NDAS:
/// then each channel is sent its job again (ESP-Miner drops a connection
/// silent for 180 s).
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(60);

/// A connection's state machine, its groups' jobs coming through `watch`.
pub type Sv2Session = ndas_core::sv2::Sv2Session<crate::work::JobFeed>;
type Out = Output<JobReceiver>;
type Jobs = Pin<Box<dyn Stream<Item = Option<Arc<Job>>> + Send>>;

/// The jobs of every payout group the connection's channels mine for
/// (one wait per group, however many channels mine for it).
#[derive(Default)]
struct GroupJobs(Vec<(GroupKey, Jobs)>);

impl GroupJobs {
    fn apply(&mut self, out: &mut Out) {
        for (key, receiver) in out.subscribe.drain(..) {
            self.0.push((key, Box::pin(changes(receiver))));
        }
        for key in out.unsubscribe.drain(..) {
            self.0.retain(|(k, _)| *k != key);
        }
    }

    /// The next job of any group (none: its work is withdrawn, no node
    /// serves); pending while there is none.
    async fn next(&mut self) -> (GroupKey, Option<Arc<Job>>) {
        std::future::poll_fn(|cx| {
            for (key, jobs) in &mut self.0 {
                if let Poll::Ready(Some(job)) = jobs.poll_next_unpin(cx) {
                    return Poll::Ready((*key, job));
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Serves one Stratum V2 client until it leaves, misbehaves, or NDAS
/// shuts down.
pub async fn serve(
    stream: TcpStream,
    mut session: Sv2Session,
    endpoint: Arc<super::Endpoint>,
    context: ConnectionContext,
    half_open: OwnedSemaphorePermit,
) -> Ended {
    let mut strikes = Strikes {
        limit: context.limits.max_invalid_shares,
        in_a_row: context
            .carried_strikes
            .min(context.limits.max_invalid_shares.saturating_sub(1)),
    };
    let closed = serve_session(
        stream,
        &mut session,
        &endpoint,
        &context,
        half_open,
        &mut strikes,
    )
    .await;
    Ended {
        closed,
        strikes: strikes.in_a_row,
    }
}

async fn serve_session(
    stream: TcpStream,
    session: &mut Sv2Session,
    endpoint: &super::Endpoint,
    context: &ConnectionContext,
    half_open: OwnedSemaphorePermit,
    strikes: &mut Strikes,
) -> Closed {
    let limits = context.limits;
    let (reader, mut writer) = stream.into_split();
    let handshake_until = tokio::time::Instant::now() + limits.handshake_timeout;
    let accepted = tokio::time::timeout_at(
        handshake_until,
        wire::accept(
            reader,
            &mut writer,
            &endpoint.key,
            &endpoint.static_key,
            endpoint.max_frame_bytes,
        ),
    )
    .await;
    let (mut frames, mut encrypt) = match accepted {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(error)) => {
            tracing::debug!(%error, "Stratum V2 handshake failed");
            return Closed::Noise;
        }
        Err(_) => return Closed::HandshakeTimeout,
    };
    let mut half_open = Some(half_open);
    let mut stats = ConnectionStats::open(context.stats.clone(), context.port.clone());
    let mut out = Out::default();
    let mut jobs = GroupJobs::default();
    let mut configs = Box::pin(changes(context.config.clone()).fuse());
    let cancelled = context.shutdown.cancelled();
    tokio::pin!(cancelled);
    let handshake = tokio::time::sleep_until(handshake_until);
    tokio::pin!(handshake);
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);
    let keepalive = tokio::time::sleep(KEEPALIVE);
    tokio::pin!(keepalive);
    let mut last_heard = tokio::time::Instant::now();
    let per_second = f64::from(limits.max_lines_per_second);
    let mut budget = TokenBucket::full(per_second, per_second, last_heard.into_std());
    // The frame budget is per channel: a proxy's one connection carries
    // every miner behind it (and all their stale shares at a new tip).
    let mut rated_for = 1;
    let mut bytes = Vec::new();
    loop {
        let closed = tokio::select! {
            biased;
            _ = &mut cancelled => {
                session.shutdown(&mut out);
                Some(Closed::Shutdown)
            }
            _ = &mut handshake, if !session.is_set_up() => Some(Closed::HandshakeTimeout),
            // A proxy with no miners behind it holds no channel and sends
            // nothing: only a connection with channels must be heard from.
            _ = &mut idle => {
                let now = tokio::time::Instant::now();
                let quiet_until = last_heard + limits.idle_timeout;
                if session.channel_count() == 0 {
                    idle.as_mut().reset(now + limits.idle_timeout);
                    None
                } else if now >= quiet_until {
                    Some(Closed::Idle)
                } else {
                    idle.as_mut().reset(quiet_until);
                    None
                }
            }
            _ = &mut keepalive => {
                session.keepalive(&mut out);
                None
            }
            (key, job) = jobs.next() => match job {
                Some(job) => {
                    session.on_job(key, job, Now::system(), &mut out);
                    None
                }
                None => {
                    if let Some(target) = &context.reconnect_to {
                        session.reconnect_to(&target.0, target.1, &mut out);
                    }
                    Some(Closed::NoNode)
                }
            },
            Some(config) = configs.next() => {
                session.set_config(config, Now::system(), &mut out);
                None
            }
            frame = frames.next() => match frame {
                Ok((message, size)) => {
                    stats.stats().metrics.bytes_received_total.inc_by(size as u64);
                    last_heard = tokio::time::Instant::now();
                    if budget.take(last_heard.into_std()) {
                        session.handle(message, Now::system(), &mut out);
                        if session.is_set_up() {
                            // Its place among the half-open is free again.
                            drop(half_open.take());
                        }
                        if out.events.iter().any(|e| matches!(e, ndas_core::channel::Event::Share { verdict: Ok(_), .. })) {
                            budget.refund();
                        }
                        if out.close {
                            Some(Closed::Protocol)
                        } else if strikes.judge(&out.events) {
                            Some(Closed::InvalidShares)
                        } else {
                            None
                        }
                    } else {
                        Some(Closed::Flood)
                    }
                }
                Err(WireError::Eof) => Some(Closed::Eof),
                Err(WireError::TooLong(_)) => Some(Closed::LineTooLong),
                Err(WireError::Decrypt(_)) => Some(Closed::Noise),
                Err(WireError::Io(error)) => Some(Closed::from_read_error(&error)),
                Err(error) => {
                    tracing::debug!(%error, "Stratum V2 frame refused");
                    Some(Closed::Protocol)
                }
            },
        };
        jobs.apply(&mut out);
        let channels = session.channel_count().max(1);
        if channels != rated_for {
            let rate = per_second * channels as f64;
            budget.set_rate(rate, rate, tokio::time::Instant::now().into_std());
            rated_for = channels;
        }
        hand_over_blocks(&out.events, context);
        for message in out.messages.drain(..) {
            if let Err(error) = encrypt.encode(&message, &mut bytes) {
                tracing::warn!(%error, message = message.name(), "a Stratum V2 message could not be encoded");
            }
        }
        if !bytes.is_empty() {
            let write = tokio::io::AsyncWriteExt::write_all(&mut writer, &bytes);
            if tokio::time::timeout(limits.write_timeout, write)
                .await
                .map_or(true, |r| r.is_err())
            {
                return Closed::WriteStalled;
            }
            stats
                .stats()
                .metrics
                .bytes_sent_total
                .inc_by(bytes.len() as u64);
            bytes.clear();
            keepalive
                .as_mut()
                .reset(tokio::time::Instant::now() + KEEPALIVE);
        } else if keepalive.is_elapsed() {
            keepalive
                .as_mut()
                .reset(tokio::time::Instant::now() + KEEPALIVE);
        }
        for event in out.events.drain(..) {
            stats.record(&event, session.user_agent());
        }
        out.close = false;
        if let Some(closed) = closed {
            if lingers(&closed) {
                linger(&mut writer, frames.inner_mut()).await;
            }
            return closed;
        }
    }
}
