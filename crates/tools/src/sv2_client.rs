//! A Stratum V2 client on the Stratum Reference Implementation's
//! initiator: the load generator's SV2 miners, and the tests' client for
//! what no real client can be made to do (a header-only standard channel
//! grinding on Core's regtest, the wrong key pinned, floods, oversized
//! frames). The one tools module naming the SRI crates, at the versions
//! NDAS pins.

use std::net::SocketAddr;
use std::time::Duration;

use binary_sv2::{Str0255, U256};
use bytes::{Buf, BytesMut};
use codec_sv2::{
    Decoded, Decrypted, Handshake, InitiatorSent, NoiseDecoder, NoiseEncoder,
    TransportDecryptState, TransportEncryptState,
};
use common_messages_sv2::{Protocol, SetupConnection};
use framing_sv2::framing::MessageFrame;
use mining_sv2::{
    OpenExtendedMiningChannel, OpenStandardMiningChannel, SubmitSharesExtended,
    SubmitSharesStandard,
};
use noise_sv2::{Initiator, INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE};
use parsers_sv2::{AnyMessage, CommonMessages, Mining};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the server sent, as the tests look at it.
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    SetupSuccess {
        flags: u32,
    },
    SetupError {
        flags: u32,
        code: String,
    },
    OpenSuccess {
        request_id: u32,
        channel_id: u32,
        /// Little-endian.
        target: [u8; 32],
        extranonce_prefix: Vec<u8>,
        /// `None` for a standard channel.
        extranonce_size: Option<u16>,
    },
    OpenError {
        code: String,
    },
    StandardJob {
        channel_id: u32,
        job_id: u32,
        min_ntime: Option<u32>,
        version: u32,
        merkle_root: [u8; 32],
    },
    ExtendedJob {
        channel_id: u32,
        job_id: u32,
        min_ntime: Option<u32>,
        version: u32,
        merkle_path: Vec<[u8; 32]>,
        coinbase_prefix: Vec<u8>,
        coinbase_suffix: Vec<u8>,
    },
    PrevHash {
        channel_id: u32,
        job_id: u32,
        prev_hash: [u8; 32],
        min_ntime: u32,
        nbits: u32,
    },
    SetTarget {
        channel_id: u32,
        target: [u8; 32],
    },
    SubmitSuccess {
        last_sequence_number: u32,
    },
    SubmitError {
        sequence_number: u32,
        code: String,
    },
    Reconnect {
        new_host: String,
        new_port: u16,
    },
    Other(String),
}

/// A Stratum V2 client connection, after the Noise handshake.
pub struct Client {
    stream: TcpStream,
    /// Bytes read and not yet given to the decoder: reads are cancel-safe.
    buffer: BytesMut,
    decoder: NoiseDecoder,
    encoder: NoiseEncoder,
    decrypt: Option<TransportDecryptState>,
    encrypt: TransportEncryptState,
}

fn text(error: impl std::fmt::Debug) -> String {
    format!("{error:?}")
}

impl Client {
    /// Connects and runs the handshake, pinning `authority` (x-only key).
    pub async fn connect(addr: SocketAddr, authority: [u8; 32]) -> Result<Client, String> {
        let stream = TcpStream::connect(addr).await.map_err(text)?;
        Client::handshake(stream, authority).await
    }

    /// The handshake on an open stream.
    pub async fn handshake(mut stream: TcpStream, authority: [u8; 32]) -> Result<Client, String> {
        let initiator = Initiator::from_raw_k(authority).map_err(text)?;
        let (first, state) = Handshake::initiator(initiator).step_0().map_err(text)?;
        let mut encoder = NoiseEncoder::new();
        let mut decoder = NoiseDecoder::new();
        stream
            .write_all(encoder.encode_handshake(first).as_ref())
            .await
            .map_err(text)?;
        let second = loop {
            stream.read_exact(decoder.writable()).await.map_err(text)?;
            if let Decoded::Frame(message) = decoder
                .next_handshake_frame::<InitiatorSent>()
                .map_err(text)?
            {
                break message;
            }
        };
        let answer: [u8; INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE] =
            second.payload().try_into().map_err(text)?;
        let (encrypt, decrypt) = state.step_2(answer).map_err(text)?.split();
        Ok(Client {
            stream,
            buffer: BytesMut::new(),
            decoder,
            encoder,
            decrypt: Some(decrypt),
            encrypt,
        })
    }

    async fn send(&mut self, message: AnyMessage<'_>) -> Result<(), String> {
        let frame: MessageFrame<AnyMessage<'_>> = message.try_into().map_err(text)?;
        let bytes = self
            .encoder
            .encode_transport(frame, &mut self.encrypt)
            .map_err(text)?;
        self.stream.write_all(bytes.as_ref()).await.map_err(text)
    }

    /// A frame built by hand (`extension_type`, `msg_type`, the payload as
    /// a firmware serializes it), encrypted as any other.
    pub async fn send_frame(
        &mut self,
        extension_type: u16,
        msg_type: u8,
        payload: &[u8],
    ) -> Result<(), String> {
        let length = u32::try_from(payload.len()).map_err(text)?.to_le_bytes();
        let mut bytes = extension_type.to_le_bytes().to_vec();
        bytes.push(msg_type);
        bytes.extend_from_slice(&length[..3]);
        bytes.extend_from_slice(payload);
        let frame = codec_sv2::SerializedFrame::from_bytes(bytes).map_err(text)?;
        let bytes = self
            .encoder
            .encode_transport(frame, &mut self.encrypt)
            .map_err(text)?;
        self.stream.write_all(bytes.as_ref()).await.map_err(text)
    }

    /// Raw bytes, for a client that breaks the framing on purpose.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).await.map_err(text)
    }

    /// `SetupConnection` for the Mining Protocol, version 2, with `flags`.
    pub async fn setup(&mut self, flags: u32) -> Result<(), String> {
        self.setup_as(flags, "ndas-testkit").await
    }

    /// [`Client::setup`] giving `name` (up to 255 bytes) as its vendor,
    /// hardware and firmware.
    pub async fn setup_as(&mut self, flags: u32, name: &str) -> Result<(), String> {
        fn s(v: &str) -> Result<Str0255<'_>, String> {
            Str0255::new(v.as_bytes()).map_err(text)
        }
        let setup = SetupConnection {
            protocol: Protocol::MiningProtocol,
            min_version: 2,
            max_version: 2,
            flags,
            endpoint_host: s("127.0.0.1")?,
            endpoint_port: 3336,
            vendor: s(name)?,
            hardware_version: s(name)?,
            firmware: s(name)?,
            device_id: s("")?,
        };
        self.send(AnyMessage::Common(CommonMessages::SetupConnection(setup)))
            .await
    }

    /// `OpenStandardMiningChannel` (`min_extranonce_size` `None`) or
    /// `OpenExtendedMiningChannel`, taking any target.
    pub async fn open(
        &mut self,
        request_id: u32,
        user: &str,
        min_extranonce_size: Option<u16>,
    ) -> Result<(), String> {
        let user_identity = Str0255::new(user.as_bytes()).map_err(text)?;
        let max_target = [0xffu8; 32];
        let max_target = U256::from(&max_target);
        let message = match min_extranonce_size {
            None => Mining::OpenStandardMiningChannel(OpenStandardMiningChannel {
                request_id,
                user_identity,
                nominal_hash_rate: 0.0,
                max_target,
            }),
            Some(min_extranonce_size) => {
                Mining::OpenExtendedMiningChannel(OpenExtendedMiningChannel {
                    request_id,
                    user_identity,
                    nominal_hash_rate: 0.0,
                    max_target,
                    min_extranonce_size,
                })
            }
        };
        self.send(AnyMessage::Mining(message)).await
    }

    /// `SubmitSharesStandard`.
    pub async fn submit_standard(
        &mut self,
        channel_id: u32,
        sequence_number: u32,
        job_id: u32,
        nonce: u32,
        ntime: u32,
        version: u32,
    ) -> Result<(), String> {
        let submit = SubmitSharesStandard {
            channel_id,
            sequence_number,
            job_id,
            nonce,
            ntime,
            version,
        };
        self.send(AnyMessage::Mining(Mining::SubmitSharesStandard(submit)))
            .await
    }

    /// `SubmitSharesExtended` with the rolled `extranonce`.
    #[allow(clippy::too_many_arguments)]
    pub async fn submit_extended(
        &mut self,
        channel_id: u32,
        sequence_number: u32,
        job_id: u32,
        nonce: u32,
        ntime: u32,
        version: u32,
        extranonce: &[u8],
    ) -> Result<(), String> {
        let submit = SubmitSharesExtended {
            channel_id,
            sequence_number,
            job_id,
            nonce,
            ntime,
            version,
            extranonce: binary_sv2::B032::new(extranonce).map_err(text)?,
        };
        self.send(AnyMessage::Mining(Mining::SubmitSharesExtended(submit)))
            .await
    }

    /// The next message, within `wait`; `Err` when the server closed.
    pub async fn next(&mut self, wait: Duration) -> Result<Received, String> {
        tokio::time::timeout(wait, self.read())
            .await
            .map_err(|_| format!("nothing within {wait:?}"))?
    }

    /// The next message; `Err` when the server closed. Cancel-safe: a
    /// message partly read is kept for the next call.
    pub async fn read(&mut self) -> Result<Received, String> {
        loop {
            let wanted = self.decoder.writable_len();
            if wanted > 0 {
                while self.buffer.len() < wanted {
                    if self.stream.read_buf(&mut self.buffer).await.map_err(text)? == 0 {
                        return Err("the server closed the connection".into());
                    }
                }
                self.decoder
                    .writable()
                    .copy_from_slice(&self.buffer[..wanted]);
                self.buffer.advance(wanted);
            }
            let state = self.decrypt.take().ok_or("the decryption failed before")?;
            match self.decoder.next_transport_frame(state).map_err(text)? {
                Decrypted::Frame(mut frame, state) => {
                    self.decrypt = Some(state);
                    let header = frame.header();
                    let message: AnyMessage<'_> =
                        (header, frame.payload()).try_into().map_err(text)?;
                    return Ok(received(message));
                }
                Decrypted::Incomplete(_, state) => self.decrypt = Some(state),
            }
        }
    }

    /// Reads until `wanted` picks a message, within `wait` in all.
    pub async fn until<T>(
        &mut self,
        wait: Duration,
        mut wanted: impl FnMut(&Received) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self.next(left).await?;
            if let Some(found) = wanted(&message) {
                return Ok(found);
            }
        }
    }
}

fn received(message: AnyMessage<'_>) -> Received {
    let text = |s: &Str0255<'_>| s.as_utf8_or_hex();
    match message {
        AnyMessage::Common(CommonMessages::SetupConnectionSuccess(m)) => {
            Received::SetupSuccess { flags: m.flags }
        }
        AnyMessage::Common(CommonMessages::Reconnect(m)) => Received::Reconnect {
            new_host: text(&m.new_host),
            new_port: m.new_port,
        },
        AnyMessage::Common(CommonMessages::SetupConnectionError(m)) => Received::SetupError {
            flags: m.flags,
            code: text(&m.error_code),
        },
        AnyMessage::Mining(Mining::OpenStandardMiningChannelSuccess(m)) => Received::OpenSuccess {
            request_id: m.request_id,
            channel_id: m.channel_id,
            target: m.target.to_array(),
            extranonce_prefix: m.extranonce_prefix.as_bytes().to_vec(),
            extranonce_size: None,
        },
        AnyMessage::Mining(Mining::OpenExtendedMiningChannelSuccess(m)) => Received::OpenSuccess {
            request_id: m.request_id,
            channel_id: m.channel_id,
            target: m.target.to_array(),
            extranonce_prefix: m.extranonce_prefix.as_bytes().to_vec(),
            extranonce_size: Some(m.extranonce_size),
        },
        AnyMessage::Mining(Mining::OpenMiningChannelError(m)) => Received::OpenError {
            code: text(&m.error_code),
        },
        AnyMessage::Mining(Mining::NewMiningJob(m)) => Received::StandardJob {
            channel_id: m.channel_id,
            job_id: m.job_id,
            min_ntime: m.min_ntime.into_inner(),
            version: m.version,
            merkle_root: m.merkle_root.to_array(),
        },
        AnyMessage::Mining(Mining::NewExtendedMiningJob(m)) => Received::ExtendedJob {
            channel_id: m.channel_id,
            job_id: m.job_id,
            min_ntime: m.min_ntime.into_inner(),
            version: m.version,
            merkle_path: m.merkle_path.iter().map(|s| *s.as_array()).collect(),
            coinbase_prefix: m.coinbase_tx_prefix.as_bytes().to_vec(),
            coinbase_suffix: m.coinbase_tx_suffix.as_bytes().to_vec(),
        },
        AnyMessage::Mining(Mining::SetNewPrevHash(m)) => Received::PrevHash {
            channel_id: m.channel_id,
            job_id: m.job_id,
            prev_hash: m.prev_hash.to_array(),
            min_ntime: m.min_ntime,
            nbits: m.nbits,
        },
        AnyMessage::Mining(Mining::SetTarget(m)) => Received::SetTarget {
            channel_id: m.channel_id,
            target: m.maximum_target.to_array(),
        },
        AnyMessage::Mining(Mining::SubmitSharesSuccess(m)) => Received::SubmitSuccess {
            last_sequence_number: m.last_sequence_number,
        },
        AnyMessage::Mining(Mining::SubmitSharesError(m)) => Received::SubmitError {
            sequence_number: m.sequence_number,
            code: text(&m.error_code),
        },
        other => Received::Other(format!("{other:?}")),
    }
}
