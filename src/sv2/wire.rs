//! Stratum V2's bytes: the Noise NX handshake, encrypted frames, and the
//! Mining Protocol messages turned into NDAS's own
//! ([`ndas_core::sv2::message`]). The only module that names the Stratum
//! Reference Implementation's crates (pinned exactly in Cargo.toml).
//!
//! The Noise responder ([`responder`]) presents the static key kept in
//! `data_dir` and signs its certificate with the authority key
//! ([`super::keys`]).

mod pool;
mod responder;

pub use pool::connect;

use std::time::Duration;

use binary_sv2::{Seq0255, Str0255, Sv2Option, B032, B064K, U256};
use bytes::{Buf, BytesMut};
use codec_sv2::{
    Decoded, Decrypted, Handshake, NoiseDecoder, NoiseEncoder, SerializedFrame,
    TransportDecryptState, TransportEncryptState,
};
use common_messages_sv2::{Protocol, Reconnect, SetupConnectionError, SetupConnectionSuccess};
use framing_sv2::framing::MessageFrame;
use mining_sv2::{
    NewExtendedMiningJob, NewMiningJob, OpenExtendedMiningChannelSuccess, OpenMiningChannelError,
    OpenStandardMiningChannelSuccess, SetNewPrevHash, SetTarget, SubmitSharesError,
    SubmitSharesSuccess, UpdateChannelError,
};
use noise_sv2::{Responder, ELLSWIFT_ENCODING_SIZE};
use parsers_sv2::{AnyMessage, CommonMessages, Mining, ParserError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::keys::{AuthorityKey, StaticKey};
use ndas_core::stratum::method::Extranonce2;
use ndas_core::sv2::message::{Open, Setup, Submitted};
use ndas_core::sv2::{Inbound, Outbound};

/// How long each connection's certificate is valid; it is checked only
/// during the handshake.
const CERTIFICATE_VALIDITY: Duration = Duration::from_secs(86_400);
/// How far in the past a certificate starts, for clients whose clock is
/// behind (the reference client allows only ten seconds).
const CLOCK_SLACK: u32 = 3_600;

/// Why a connection's bytes cannot be read or sent.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Eof,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the Noise handshake failed: {0}")]
    Handshake(String),
    #[error("a frame could not be decrypted: {0}")]
    Decrypt(String),
    #[error("a frame longer than {0} bytes")]
    TooLong(usize),
    #[error("a message that cannot be parsed: {0}")]
    Malformed(String),
    #[error("a message that cannot be encoded: {0}")]
    Encode(String),
}

/// The SRI crates' errors are `Debug` only.
fn text(error: impl std::fmt::Debug) -> String {
    format!("{error:?}")
}

/// Reads one connection's frames; cancel-safe (bytes read wait in its
/// buffer until a whole chunk is there).
pub struct FrameReader<R> {
    inner: R,
    buffer: BytesMut,
    decoder: NoiseDecoder,
    state: Option<TransportDecryptState>,
    /// Most bytes one frame may take on the wire.
    max_frame: usize,
    /// Bytes of the frame read so far.
    in_frame: usize,
}

/// Encrypts one connection's messages, in the order they are sent.
pub struct FrameWriter {
    encoder: NoiseEncoder,
    state: TransportEncryptState,
}

/// The responder's side of the handshake on a new connection: the
/// client's 64-byte key read, the 234-byte answer written.
pub async fn accept<R, W>(
    mut reader: R,
    writer: &mut W,
    key: &AuthorityKey,
    kept: &StaticKey,
    max_frame: usize,
) -> Result<(FrameReader<R>, FrameWriter), WireError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let responder = responder::responder(key, kept)?;
    let mut decoder = NoiseDecoder::new();
    let first = loop {
        reader.read_exact(decoder.writable()).await.map_err(eof)?;
        match decoder
            .next_handshake_frame::<Responder>()
            .map_err(|e| WireError::Handshake(text(e)))?
        {
            Decoded::Frame(frame) => break frame,
            Decoded::Incomplete(_) => continue,
        }
    };
    let theirs: [u8; ELLSWIFT_ENCODING_SIZE] = first
        .payload()
        .try_into()
        .map_err(|_| WireError::Handshake("a first message of the wrong size".into()))?;
    let now = u32::try_from(ndas_core::clock::unix_now()).unwrap_or(u32::MAX);
    let (answer, transport) = Handshake::responder(responder)
        .step_1_with_now_rng(
            theirs,
            now.saturating_sub(CLOCK_SLACK),
            &mut rand::thread_rng(),
        )
        .map_err(|e| WireError::Handshake(text(e)))?;
    let mut encoder = NoiseEncoder::new();
    writer
        .write_all(encoder.encode_handshake(answer).as_ref())
        .await?;
    writer.flush().await?;
    let (encrypt, decrypt) = transport.split();
    let reader = FrameReader::new(reader, decoder, decrypt, max_frame);
    Ok((
        reader,
        FrameWriter {
            encoder,
            state: encrypt,
        },
    ))
}

fn eof(error: std::io::Error) -> WireError {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        WireError::Eof
    } else {
        WireError::Io(error)
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn new(
        inner: R,
        decoder: NoiseDecoder,
        state: TransportDecryptState,
        max_frame: usize,
    ) -> FrameReader<R> {
        FrameReader {
            inner,
            buffer: BytesMut::new(),
            decoder,
            state: Some(state),
            max_frame,
            in_frame: 0,
        }
    }

    /// The stream, to drain what the client still sends as it closes.
    pub fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The next message, and the bytes it took on the wire.
    pub async fn next(&mut self) -> Result<(Inbound, usize), WireError> {
        let (frame, size) = self.next_frame().await?;
        Ok((decode(frame)?, size))
    }

    /// The next frame, decrypted, and the bytes it took on the wire.
    async fn next_frame(&mut self) -> Result<(SerializedFrame, usize), WireError> {
        loop {
            let wanted = self.decoder.writable_len();
            if wanted > 0 {
                if self.in_frame + wanted > self.max_frame {
                    return Err(WireError::TooLong(self.max_frame));
                }
                self.buffer.reserve(wanted);
                while self.buffer.len() < wanted {
                    if self.inner.read_buf(&mut self.buffer).await? == 0 {
                        return Err(WireError::Eof);
                    }
                }
                self.decoder
                    .writable()
                    .copy_from_slice(&self.buffer[..wanted]);
                self.buffer.advance(wanted);
                self.in_frame += wanted;
            }
            let state = self.state.take().ok_or(WireError::Eof)?;
            match self.decoder.next_transport_frame(state) {
                Ok(Decrypted::Frame(frame, state)) => {
                    self.state = Some(state);
                    return Ok((frame, std::mem::take(&mut self.in_frame)));
                }
                Ok(Decrypted::Incomplete(_, state)) => self.state = Some(state),
                Err(error) => return Err(WireError::Decrypt(text(error))),
            }
        }
    }
}

/// The messages of plain (unencrypted) frames laid end to end in `bytes`,
/// each read as [`FrameReader::next`] reads a decrypted one: what the
/// `sv2_frames` fuzz target feeds hostile payloads to. At most 64 frames;
/// a frame cut short ends the input.
pub fn decode_plain(mut bytes: &[u8]) -> Vec<Result<Inbound, WireError>> {
    let mut messages = Vec::new();
    while bytes.len() >= 6 && messages.len() < 64 {
        let length =
            usize::from(bytes[3]) | usize::from(bytes[4]) << 8 | usize::from(bytes[5]) << 16;
        let Some(frame) = bytes.get(..6 + length) else {
            break;
        };
        messages.push(match SerializedFrame::from_bytes(frame.to_vec()) {
            Ok(frame) => decode(frame),
            Err(hint) => Err(WireError::Malformed(text(hint))),
        });
        bytes = &bytes[6 + length..];
    }
    messages
}

/// One frame's message as NDAS's own.
fn decode(mut frame: SerializedFrame) -> Result<Inbound, WireError> {
    let header = frame.header();
    let kind = header.msg_type();
    // No protocol extension is served: their messages are discarded, as
    // the spec (3.4.1) requires of an unknown extension; a client that
    // asks for extensions (`RequestExtensions`) is not answered, which
    // extension 0x0001 allows, and mines without them.
    if header.ext_type_without_channel_msg() != 0 {
        return Ok(Inbound::Unsupported(kind));
    }
    let message: AnyMessage<'_> = match (header, frame.payload()).try_into() {
        Ok(message) => message,
        // A message type no protocol has: discarded, as SRI's pool does
        // (the spec says nothing). A known type that does not parse is
        // malformed.
        Err(ParserError::UnexpectedMessage(_)) => return Ok(Inbound::Unsupported(kind)),
        Err(error) => return Err(WireError::Malformed(text(error))),
    };
    Ok(match message {
        AnyMessage::Common(CommonMessages::SetupConnection(m)) => Inbound::SetupConnection(Setup {
            protocol: match m.protocol {
                Protocol::MiningProtocol => 0,
                Protocol::JobDeclarationProtocol => 1,
                Protocol::TemplateDistributionProtocol => 2,
            },
            min_version: m.min_version,
            max_version: m.max_version,
            flags: m.flags,
            vendor: m.vendor.as_utf8_or_hex(),
            hardware_version: m.hardware_version.as_utf8_or_hex(),
            firmware: m.firmware.as_utf8_or_hex(),
            device_id: m.device_id.as_utf8_or_hex(),
        }),
        AnyMessage::Mining(Mining::OpenStandardMiningChannel(m)) => Inbound::OpenStandard(Open {
            request_id: m.request_id,
            user_identity: m.user_identity.as_utf8_or_hex(),
            nominal_hash_rate: m.nominal_hash_rate,
            max_target: m.max_target.to_array(),
        }),
        AnyMessage::Mining(Mining::OpenExtendedMiningChannel(m)) => Inbound::OpenExtended {
            open: Open {
                request_id: m.request_id,
                user_identity: m.user_identity.as_utf8_or_hex(),
                nominal_hash_rate: m.nominal_hash_rate,
                max_target: m.max_target.to_array(),
            },
            min_extranonce_size: m.min_extranonce_size,
        },
        AnyMessage::Mining(Mining::UpdateChannel(m)) => Inbound::UpdateChannel {
            channel_id: m.channel_id,
            nominal_hash_rate: m.nominal_hash_rate,
            maximum_target: m.maximum_target.to_array(),
        },
        AnyMessage::Mining(Mining::CloseChannel(m)) => Inbound::CloseChannel {
            channel_id: m.channel_id,
        },
        AnyMessage::Mining(Mining::SubmitSharesStandard(m)) => Inbound::SubmitStandard(Submitted {
            channel_id: m.channel_id,
            sequence_number: m.sequence_number,
            job_id: m.job_id,
            nonce: m.nonce,
            ntime: m.ntime,
            version: m.version,
            extranonce: None,
        }),
        AnyMessage::Mining(Mining::SubmitSharesExtended(m)) => Inbound::SubmitExtended(Submitted {
            channel_id: m.channel_id,
            sequence_number: m.sequence_number,
            job_id: m.job_id,
            nonce: m.nonce,
            ntime: m.ntime,
            version: m.version,
            extranonce: Extranonce2::from_bytes(m.extranonce.as_bytes()),
        }),
        _ => Inbound::Unsupported(kind),
    })
}

impl FrameWriter {
    /// `message`, encrypted, appended to `out`.
    pub fn encode(&mut self, message: &Outbound, out: &mut Vec<u8>) -> Result<(), WireError> {
        let bad = |e: binary_sv2::Error| WireError::Encode(text(e));
        let frame: MessageFrame<AnyMessage<'_>> = match message {
            Outbound::SetupSuccess {
                used_version,
                flags,
            } => common(CommonMessages::SetupConnectionSuccess(
                SetupConnectionSuccess {
                    used_version: *used_version,
                    flags: *flags,
                },
            )),
            Outbound::SetupError { flags, code } => {
                common(CommonMessages::SetupConnectionError(SetupConnectionError {
                    flags: *flags,
                    error_code: error_code(code)?,
                }))
            }
            Outbound::OpenStandardSuccess {
                request_id,
                channel_id,
                target,
                extranonce_prefix,
                group_channel_id,
            } => mining(Mining::OpenStandardMiningChannelSuccess(
                OpenStandardMiningChannelSuccess {
                    request_id: *request_id,
                    channel_id: *channel_id,
                    target: U256::from(target),
                    extranonce_prefix: B032::new(extranonce_prefix).map_err(bad)?,
                    group_channel_id: *group_channel_id,
                },
            )),
            Outbound::OpenExtendedSuccess {
                request_id,
                channel_id,
                target,
                extranonce_size,
                extranonce_prefix,
                group_channel_id,
            } => mining(Mining::OpenExtendedMiningChannelSuccess(
                OpenExtendedMiningChannelSuccess {
                    request_id: *request_id,
                    channel_id: *channel_id,
                    target: U256::from(target),
                    extranonce_size: *extranonce_size,
                    extranonce_prefix: B032::new(extranonce_prefix).map_err(bad)?,
                    group_channel_id: *group_channel_id,
                },
            )),
            Outbound::OpenError { request_id, code } => {
                mining(Mining::OpenMiningChannelError(OpenMiningChannelError {
                    request_id: *request_id,
                    error_code: error_code(code)?,
                }))
            }
            Outbound::NewMiningJob {
                channel_id,
                job_id,
                min_ntime,
                version,
                merkle_root,
            } => mining(Mining::NewMiningJob(NewMiningJob {
                channel_id: *channel_id,
                job_id: *job_id,
                min_ntime: Sv2Option::new(*min_ntime),
                version: *version,
                merkle_root: U256::from(merkle_root),
            })),
            Outbound::NewExtendedJob {
                channel_id,
                job_id,
                min_ntime,
                job,
            } => {
                let path: Vec<U256<'_>> =
                    job.branch.iter().map(|step| U256::from(&step.0)).collect();
                mining(Mining::NewExtendedMiningJob(NewExtendedMiningJob {
                    channel_id: *channel_id,
                    job_id: *job_id,
                    min_ntime: Sv2Option::new(*min_ntime),
                    version: job.version,
                    version_rolling_allowed: true,
                    merkle_path: Seq0255::new(path).map_err(|e| WireError::Encode(text(e)))?,
                    coinbase_tx_prefix: B064K::new(job.coinbase.coinb1()).map_err(bad)?,
                    coinbase_tx_suffix: B064K::new(job.coinbase.coinb2()).map_err(bad)?,
                }))
            }
            Outbound::SetNewPrevHash {
                channel_id,
                job_id,
                prev_hash,
                min_ntime,
                nbits,
            } => mining(Mining::SetNewPrevHash(SetNewPrevHash {
                channel_id: *channel_id,
                job_id: *job_id,
                prev_hash: U256::from(prev_hash),
                min_ntime: *min_ntime,
                nbits: *nbits,
            })),
            Outbound::SetTarget { channel_id, target } => mining(Mining::SetTarget(SetTarget {
                channel_id: *channel_id,
                maximum_target: U256::from(target),
            })),
            Outbound::SubmitSuccess {
                channel_id,
                last_sequence_number,
                accepted,
                shares_sum,
            } => mining(Mining::SubmitSharesSuccess(SubmitSharesSuccess {
                channel_id: *channel_id,
                last_sequence_number: *last_sequence_number,
                new_submits_accepted_count: *accepted,
                new_shares_sum: *shares_sum,
            })),
            Outbound::SubmitError {
                channel_id,
                sequence_number,
                code,
            } => mining(Mining::SubmitSharesError(SubmitSharesError {
                channel_id: *channel_id,
                sequence_number: *sequence_number,
                error_code: error_code(code)?,
            })),
            Outbound::Reconnect { new_host, new_port } => {
                common(CommonMessages::Reconnect(Reconnect {
                    new_host: Str0255::new(new_host.as_bytes()).map_err(bad)?,
                    new_port: *new_port,
                }))
            }
            Outbound::UpdateChannelError { channel_id, code } => {
                mining(Mining::UpdateChannelError(UpdateChannelError {
                    channel_id: *channel_id,
                    error_code: error_code(code)?,
                }))
            }
        }
        .map_err(WireError::Encode)?;
        self.write_frame(frame, out)
    }

    /// `frame`, encrypted, appended to `out`.
    fn write_frame(
        &mut self,
        frame: MessageFrame<AnyMessage<'_>>,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        let bytes = self
            .encoder
            .encode_transport(frame, &mut self.state)
            .map_err(|e| WireError::Encode(text(e)))?;
        out.extend_from_slice(bytes.as_ref());
        Ok(())
    }
}

/// An error code as the wire writes it.
fn error_code(code: &str) -> Result<Str0255<'_>, WireError> {
    Str0255::new(code.as_bytes()).map_err(|e| WireError::Encode(text(e)))
}

fn common(message: CommonMessages<'_>) -> Result<MessageFrame<AnyMessage<'_>>, String> {
    MessageFrame::try_from(AnyMessage::Common(message)).map_err(text)
}

fn mining(message: Mining<'_>) -> Result<MessageFrame<AnyMessage<'_>>, String> {
    MessageFrame::try_from(AnyMessage::Mining(message)).map_err(text)
}
