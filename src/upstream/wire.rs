//! The wire a pool speaks, as one connection's link drives it: Stratum V1
//! lines (`stratum+tcp://`) or Stratum V2 frames over Noise
//! (`stratum2+tcp://…/<key>`). Each is the core's session for that wire
//! over the socket; both report the same [`Event`]s and take the same
//! shares, so the link does not know which it has.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use super::{Ended, MAX_LINE_BYTES, WRITE_TIMEOUT};
use crate::sv2::wire::{FrameReader, FrameWriter, WireError};
use ndas_core::upstream::sv2::{Sv2Upstream, ToPool};
use ndas_core::upstream::{Event, NotSent, Now, UpstreamSession, UpstreamSettings, UpstreamShare};

/// A share's sender, and the pool's difficulty on its job.
pub(super) type Tag = (Arc<str>, f64);
type Events = Vec<Event<Tag>>;

/// The most bytes one SV2 frame of a pool's may take: a job's coinbase
/// halves are bounded by the core at 100 kB each.
const MAX_POOL_FRAME: usize = 256 * 1024;

/// One pool connection's session and socket.
pub(super) enum Wire {
    V1 {
        session: UpstreamSession<Tag>,
        heard: Instant,
        lines: FramedRead<OwnedReadHalf, LinesCodec>,
        writer: OwnedWriteHalf,
        out: Vec<u8>,
    },
    V2 {
        session: Box<Sv2Upstream<Tag>>,
        reader: FrameReader<OwnedReadHalf>,
        frames: FrameWriter,
        writer: OwnedWriteHalf,
        out: Vec<u8>,
        /// Since when shares sent have waited with nothing heard from the
        /// pool.
        asked: Option<Instant>,
        /// Why a message could not be encrypted: the connection's Noise
        /// state cannot be trusted after it, and it ends.
        broken: Option<String>,
    },
}

/// How a pool is spoken to, from its URL.
pub(super) enum Speak {
    V1,
    /// The pool's authority key, whose signature its certificate must
    /// carry; and the H/s the channel is opened with.
    V2 {
        authority: [u8; 32],
        nominal_hash_rate: f32,
        min_difficulty: f64,
    },
}

/// TCP keepalive: a pool's host that is gone is found after about
/// `KEEPALIVE_IDLE` + 3 × `KEEPALIVE_INTERVAL` of silence, even on a link
/// that has nothing to send; and, since Linux sends no probe while data
/// waits for its acknowledgement (an `UpdateChannel`, a share),
/// `UNACKNOWLEDGED` bounds that wait.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
#[cfg(any(target_os = "linux", target_os = "android"))]
const UNACKNOWLEDGED: Duration = Duration::from_secs(60);

/// Keepalive and the acknowledgement bound on `stream`, where the system
/// allows them.
fn keep_alive(stream: &TcpStream) {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(3);
    let socket = socket2::SockRef::from(stream);
    let set = socket.set_tcp_keepalive(&keepalive);
    // Linux's (TCP_USER_TIMEOUT); elsewhere retransmission's own bound.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let set = set.and_then(|()| socket.set_tcp_user_timeout(Some(UNACKNOWLEDGED)));
    if let Err(error) = set {
        tracing::debug!(%error, "no TCP keepalive on the upstream connection");
    }
}

impl Wire {
    /// The session started on `stream`: V1's pipelined handshake written,
    /// or V2's Noise handshake run and its `SetupConnection` written.
    pub(super) async fn start(
        stream: TcpStream,
        speak: Speak,
        settings: UpstreamSettings,
        endpoint: (String, u16),
    ) -> Result<Wire, Ended> {
        keep_alive(&stream);
        let (reader, mut writer) = stream.into_split();
        let mut wire = match speak {
            Speak::V1 => {
                let mut session = UpstreamSession::new(settings);
                let out = session.start(Now::system()).concat();
                let codec = LinesCodec::new_with_max_length(MAX_LINE_BYTES);
                let lines = FramedRead::new(reader, codec);
                Wire::V1 {
                    session,
                    heard: Instant::now(),
                    lines,
                    writer,
                    out,
                }
            }
            Speak::V2 {
                authority,
                nominal_hash_rate,
                min_difficulty,
            } => {
                let handshake =
                    crate::sv2::wire::connect(reader, &mut writer, authority, MAX_POOL_FRAME);
                let (reader, frames) = match tokio::time::timeout(WRITE_TIMEOUT, handshake).await {
                    Ok(Ok(done)) => done,
                    Ok(Err(error @ (WireError::Eof | WireError::Io(_)))) => {
                        return Err(Ended::Down(format!("during the Noise handshake: {error}")))
                    }
                    Ok(Err(error)) => return Err(Ended::Refused(format!("{error}"))),
                    Err(_) => {
                        return Err(Ended::Down(format!(
                            "no Noise handshake within {WRITE_TIMEOUT:?}"
                        )))
                    }
                };
                let mut session = Box::new(Sv2Upstream::new(
                    settings,
                    endpoint,
                    nominal_hash_rate,
                    min_difficulty,
                ));
                let setup = session.start(Now::system());
                let mut wire = Wire::V2 {
                    session,
                    reader,
                    frames,
                    writer,
                    out: Vec::new(),
                    asked: None,
                    broken: None,
                };
                wire.queue(&setup)?;
                wire
            }
        };
        wire.flush().await.map_err(Ended::Down)?;
        Ok(wire)
    }

    /// Waits for the pool's next line or message and hands it to the
    /// session (its answer, if any, queued). Cancel-safe.
    pub(super) async fn read(&mut self, events: &mut Events) -> Result<(), Ended> {
        match self {
            Wire::V1 {
                session,
                lines,
                heard,
                ..
            } => match lines.next().await {
                Some(Ok(line)) => {
                    *heard = Instant::now();
                    session.handle_line(&line, Now::system(), events);
                    Ok(())
                }
                Some(Err(LinesCodecError::Io(error))) => {
                    Err(Ended::Down(format!("the pool's socket: {error}")))
                }
                Some(Err(error)) => Err(Ended::Refused(format!(
                    "the pool's line cannot be read: {error}"
                ))),
                None => Err(Ended::Down("the pool closed the connection".into())),
            },
            Wire::V2 {
                session,
                reader,
                asked,
                ..
            } => match reader.from_pool().await {
                Ok(message) => {
                    let answer = session.handle(message, Now::system(), events);
                    // The pool spoke: what still waits is waited on anew.
                    *asked = (session.in_flight() > 0).then(Instant::now);
                    self.queue(&answer)
                }
                Err(WireError::Eof) => Err(Ended::Down("the pool closed the connection".into())),
                Err(WireError::Io(error)) => {
                    Err(Ended::Down(format!("the pool's socket: {error}")))
                }
                Err(error) => Err(Ended::Refused(format!("the pool's frame: {error}"))),
            },
        }
    }

    /// `share` queued for the pool under `tag`, or why not.
    pub(super) fn submit(&mut self, share: &UpstreamShare, tag: Tag) -> Result<(), NotSent> {
        match self {
            Wire::V1 { session, out, .. } => {
                out.extend_from_slice(&session.submit(share, tag, Now::system())?);
                Ok(())
            }
            Wire::V2 { session, asked, .. } => {
                let message = session.submit(share, tag, Now::system())?;
                asked.get_or_insert_with(Instant::now);
                // Checked by the session: an encoder that refuses it ends
                // the connection (at the next flush).
                let _ = self.queue(&[message]);
                Ok(())
            }
        }
    }

    pub(super) fn tick(&mut self, events: &mut Events) {
        match self {
            Wire::V1 { session, .. } => session.tick(Now::system(), events),
            Wire::V2 { session, asked, .. } => {
                session.tick(Now::system(), events);
                // Given up: nothing waits for the pool any more.
                if session.in_flight() == 0 {
                    *asked = None;
                }
            }
        }
    }

    /// Why the pool is taken to be gone, if it is: a V1 pool silent for
    /// `limit` (they send jobs every minute or so); an SV2 pool that has
    /// said nothing for `limit` while shares waited for its answer (one
    /// has nothing to say between blocks, but answers shares).
    pub(super) fn too_quiet(&self, limit: Duration) -> Option<String> {
        let silent = match self {
            Wire::V1 { heard, .. } => heard.elapsed(),
            Wire::V2 { asked, .. } => asked.map_or(Duration::ZERO, |at| at.elapsed()),
        };
        (silent > limit).then(|| match self {
            Wire::V1 { .. } => format!("the pool sent nothing for {limit:?}"),
            Wire::V2 { .. } => format!("the pool answered no share for {limit:?}"),
        })
    }

    /// Submits waiting for the pool's answer.
    pub(super) fn in_flight(&self) -> usize {
        match self {
            Wire::V1 { session, .. } => session.in_flight(),
            Wire::V2 { session, .. } => session.in_flight(),
        }
    }

    /// An SV2 pool told the hashrate the connection carries now; whether
    /// it was (V1 has no such message: a V1 pool's vardiff alone sets its
    /// difficulty, and an SV2 channel not open yet is opened with it).
    pub(super) fn update(&mut self, nominal_hash_rate: f32) -> bool {
        let Wire::V2 { session, .. } = self else {
            return false;
        };
        match session.update(nominal_hash_rate) {
            Some(message) => self.queue(&[message]).is_ok(),
            None => false,
        }
    }

    /// Whether the pool is told the connection's hashrate.
    pub(super) fn speaks_v2(&self) -> bool {
        matches!(self, Wire::V2 { .. })
    }

    /// What is queued, written within [`WRITE_TIMEOUT`]; why not, if not.
    pub(super) async fn flush(&mut self) -> Result<(), String> {
        if let Wire::V2 {
            broken: Some(why), ..
        } = self
        {
            return Err(why.clone());
        }
        let (writer, out) = match self {
            Wire::V1 { writer, out, .. } | Wire::V2 { writer, out, .. } => (writer, out),
        };
        if out.is_empty() {
            return Ok(());
        }
        let written = tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(out)).await;
        out.clear();
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("cannot write to the pool: {error}")),
            Err(_) => Err(format!("the pool took nothing for {WRITE_TIMEOUT:?}")),
        }
    }

    /// SV2 messages encrypted into the queue; one that cannot be breaks
    /// the connection.
    fn queue(&mut self, messages: &[ToPool]) -> Result<(), Ended> {
        if let Wire::V2 {
            frames,
            out,
            broken,
            ..
        } = self
        {
            for message in messages {
                if let Err(error) = frames.encode_to_pool(message, out) {
                    let why = format!("a message to the pool: {error}");
                    *broken = Some(why.clone());
                    return Err(Ended::Refused(why));
                }
            }
        }
        Ok(())
    }
}
