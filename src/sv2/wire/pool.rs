//! NDAS as a client of an SV2 pool (a `stratum2+tcp://` upstream): the
//! Noise initiator pinning the pool's authority key, and the Mining
//! Protocol's messages a client sends and receives, as the core's
//! [`FromPool`] and [`ToPool`].

use binary_sv2::{Str0255, B032, U256};
use codec_sv2::{Decoded, Handshake, InitiatorSent, NoiseDecoder, NoiseEncoder, SerializedFrame};
use common_messages_sv2::{Protocol, SetupConnection};
use framing_sv2::framing::MessageFrame;
use mining_sv2::{OpenExtendedMiningChannel, SubmitSharesExtended, UpdateChannel};
use noise_sv2::{Initiator, INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE};
use parsers_sv2::{AnyMessage, CommonMessages, Mining, ParserError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{common, eof, mining, text, FrameReader, FrameWriter, WireError};
use ndas_core::upstream::sv2::{FromPool, ToPool};

/// The initiator's side of the handshake on a connection to a pool whose
/// authority key is `authority` (x-only): the pool's certificate must be
/// signed by it, or the handshake fails.
pub async fn connect<R, W>(
    mut reader: R,
    writer: &mut W,
    authority: [u8; 32],
    max_frame: usize,
) -> Result<(FrameReader<R>, FrameWriter), WireError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let initiator = Initiator::from_raw_k(authority).map_err(handshake)?;
    let (first, state) = Handshake::initiator(initiator)
        .step_0()
        .map_err(handshake)?;
    let mut encoder = NoiseEncoder::new();
    let mut decoder = NoiseDecoder::new();
    writer
        .write_all(encoder.encode_handshake(first).as_ref())
        .await?;
    writer.flush().await?;
    let second = loop {
        reader.read_exact(decoder.writable()).await.map_err(eof)?;
        match decoder
            .next_handshake_frame::<InitiatorSent>()
            .map_err(handshake)?
        {
            Decoded::Frame(frame) => break frame,
            Decoded::Incomplete(_) => continue,
        }
    };
    let answer: [u8; INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE] = second
        .payload()
        .try_into()
        .map_err(|_| WireError::Handshake("the pool's answer is of the wrong size".into()))?;
    let (encrypt, decrypt) = state.step_2(answer).map_err(handshake)?.split();
    Ok((
        FrameReader::new(reader, decoder, decrypt, max_frame),
        FrameWriter {
            encoder,
            state: encrypt,
        },
    ))
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// The pool's next message. Cancel-safe, as [`FrameReader::next`].
    pub async fn from_pool(&mut self) -> Result<FromPool, WireError> {
        let (frame, _) = self.next_frame().await?;
        from_pool(frame)
    }
}

fn handshake(error: impl std::fmt::Debug) -> WireError {
    WireError::Handshake(text(error))
}

/// One frame of a pool's as NDAS's own message.
fn from_pool(mut frame: SerializedFrame) -> Result<FromPool, WireError> {
    let header = frame.header();
    let kind = header.msg_type();
    if header.ext_type_without_channel_msg() != 0 {
        return Ok(FromPool::Other(kind));
    }
    let message: AnyMessage<'_> = match (header, frame.payload()).try_into() {
        Ok(message) => message,
        Err(ParserError::UnexpectedMessage(_)) => return Ok(FromPool::Other(kind)),
        Err(error) => return Err(WireError::Malformed(text(error))),
    };
    let code = |s: &Str0255<'_>| s.as_utf8_or_hex();
    Ok(match message {
        AnyMessage::Common(CommonMessages::SetupConnectionSuccess(m)) => {
            FromPool::SetupSuccess { flags: m.flags }
        }
        AnyMessage::Common(CommonMessages::SetupConnectionError(m)) => FromPool::SetupError {
            code: code(&m.error_code),
        },
        AnyMessage::Common(CommonMessages::Reconnect(m)) => FromPool::Reconnect {
            host: code(&m.new_host),
            port: m.new_port,
        },
        AnyMessage::Mining(Mining::OpenExtendedMiningChannelSuccess(m)) => FromPool::OpenSuccess {
            request_id: m.request_id,
            channel_id: m.channel_id,
            target: m.target.to_array(),
            extranonce_prefix: m.extranonce_prefix.as_bytes().to_vec(),
            extranonce_size: m.extranonce_size,
            group_channel_id: m.group_channel_id,
        },
        AnyMessage::Mining(Mining::OpenMiningChannelError(m)) => FromPool::OpenError {
            request_id: m.request_id,
            code: code(&m.error_code),
        },
        AnyMessage::Mining(Mining::NewExtendedMiningJob(m)) => FromPool::NewJob {
            channel_id: m.channel_id,
            job_id: m.job_id,
            min_ntime: m.min_ntime.into_inner(),
            version: m.version,
            version_rolling_allowed: m.version_rolling_allowed,
            merkle_path: m.merkle_path.iter().map(|s| *s.as_array()).collect(),
            coinbase_prefix: m.coinbase_tx_prefix.as_bytes().to_vec(),
            coinbase_suffix: m.coinbase_tx_suffix.as_bytes().to_vec(),
        },
        AnyMessage::Mining(Mining::SetNewPrevHash(m)) => FromPool::PrevHash {
            channel_id: m.channel_id,
            job_id: m.job_id,
            prev_hash: m.prev_hash.to_array(),
            min_ntime: m.min_ntime,
            nbits: m.nbits,
        },
        AnyMessage::Mining(Mining::SetTarget(m)) => FromPool::SetTarget {
            channel_id: m.channel_id,
            target: m.maximum_target.to_array(),
        },
        AnyMessage::Mining(Mining::SubmitSharesSuccess(m)) => FromPool::SubmitSuccess {
            channel_id: m.channel_id,
            last_sequence_number: m.last_sequence_number,
        },
        AnyMessage::Mining(Mining::SubmitSharesError(m)) => FromPool::SubmitError {
            channel_id: m.channel_id,
            sequence_number: m.sequence_number,
            code: code(&m.error_code),
        },
        AnyMessage::Mining(Mining::SetExtranoncePrefix(m)) => FromPool::SetExtranoncePrefix {
            channel_id: m.channel_id,
            prefix: m.extranonce_prefix.as_bytes().to_vec(),
        },
        AnyMessage::Mining(Mining::SetGroupChannel(m)) => FromPool::SetGroupChannel {
            group: m.group_channel_id,
            channels: m.channel_ids.into_inner(),
        },
        AnyMessage::Mining(Mining::CloseChannel(m)) => FromPool::CloseChannel {
            channel_id: m.channel_id,
            code: code(&m.reason_code),
        },
        _ => FromPool::Other(kind),
    })
}

impl FrameWriter {
    /// `message` to a pool, encrypted, appended to `out`.
    pub fn encode_to_pool(&mut self, message: &ToPool, out: &mut Vec<u8>) -> Result<(), WireError> {
        let bad = |e: binary_sv2::Error| WireError::Encode(text(e));
        let frame: MessageFrame<AnyMessage<'_>> = match message {
            ToPool::Setup {
                flags,
                host,
                port,
                agent,
            } => {
                let agent = Str0255::new(agent.as_bytes()).map_err(bad)?;
                common(CommonMessages::SetupConnection(SetupConnection {
                    protocol: Protocol::MiningProtocol,
                    min_version: 2,
                    max_version: 2,
                    flags: *flags,
                    endpoint_host: Str0255::new(host.as_bytes()).map_err(bad)?,
                    endpoint_port: *port,
                    vendor: agent,
                    hardware_version: agent,
                    firmware: agent,
                    device_id: Str0255::new(&[]).map_err(bad)?,
                }))
            }
            ToPool::OpenExtended {
                request_id,
                user,
                nominal_hash_rate,
                max_target,
                min_extranonce_size,
            } => mining(Mining::OpenExtendedMiningChannel(
                OpenExtendedMiningChannel {
                    request_id: *request_id,
                    user_identity: Str0255::new(user.as_bytes()).map_err(bad)?,
                    nominal_hash_rate: *nominal_hash_rate,
                    max_target: U256::from(max_target),
                    min_extranonce_size: *min_extranonce_size,
                },
            )),
            ToPool::UpdateChannel {
                channel_id,
                nominal_hash_rate,
                maximum_target,
            } => mining(Mining::UpdateChannel(UpdateChannel {
                channel_id: *channel_id,
                nominal_hash_rate: *nominal_hash_rate,
                maximum_target: U256::from(maximum_target),
            })),
            ToPool::SubmitExtended {
                channel_id,
                sequence_number,
                job_id,
                nonce,
                ntime,
                version,
                extranonce,
            } => mining(Mining::SubmitSharesExtended(SubmitSharesExtended {
                channel_id: *channel_id,
                sequence_number: *sequence_number,
                job_id: *job_id,
                nonce: *nonce,
                ntime: *ntime,
                version: *version,
                extranonce: B032::new(extranonce.as_slice()).map_err(bad)?,
            })),
        }
        .map_err(WireError::Encode)?;
        self.write_frame(frame, out)
    }
}
