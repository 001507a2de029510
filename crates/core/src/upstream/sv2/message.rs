//! NDAS's own types for the Mining Protocol messages an SV2 pool and its
//! client exchange (the server's `sv2::wire` turns them into frames).

/// What an SV2 pool sends a mining client, as NDAS reads it (the server's
/// wire decodes the frames into these).
#[derive(Clone, Debug, PartialEq)]
pub enum FromPool {
    SetupSuccess {
        flags: u32,
    },
    SetupError {
        code: String,
    },
    OpenSuccess {
        request_id: u32,
        channel_id: u32,
        /// Little-endian, as on the wire.
        target: [u8; 32],
        extranonce_prefix: Vec<u8>,
        extranonce_size: u16,
        group_channel_id: u32,
    },
    OpenError {
        request_id: u32,
        code: String,
    },
    /// `NewExtendedMiningJob`; `min_ntime` none: a future job, mined once
    /// a `SetNewPrevHash` names it.
    NewJob {
        channel_id: u32,
        job_id: u32,
        min_ntime: Option<u32>,
        version: u32,
        version_rolling_allowed: bool,
        merkle_path: Vec<[u8; 32]>,
        coinbase_prefix: Vec<u8>,
        coinbase_suffix: Vec<u8>,
    },
    PrevHash {
        channel_id: u32,
        job_id: u32,
        /// Internal byte order, as in the header.
        prev_hash: [u8; 32],
        min_ntime: u32,
        nbits: u32,
    },
    SetTarget {
        channel_id: u32,
        target: [u8; 32],
    },
    SubmitSuccess {
        channel_id: u32,
        last_sequence_number: u32,
    },
    SubmitError {
        channel_id: u32,
        sequence_number: u32,
        code: String,
    },
    SetExtranoncePrefix {
        channel_id: u32,
        prefix: Vec<u8>,
    },
    CloseChannel {
        channel_id: u32,
        code: String,
    },
    Reconnect {
        host: String,
        port: u16,
    },
    /// The pool puts `channels` in the group channel `group`.
    SetGroupChannel {
        group: u32,
        channels: Vec<u32>,
    },
    /// A message NDAS does not act on (its type).
    Other(u8),
}

/// What NDAS sends an SV2 pool.
#[derive(Clone, Debug, PartialEq)]
pub enum ToPool {
    Setup {
        flags: u32,
        /// The pool's host and port, as the spec asks the client to say.
        host: String,
        port: u16,
        /// Vendor, hardware and firmware: NDAS's agent.
        agent: String,
    },
    OpenExtended {
        request_id: u32,
        user: String,
        nominal_hash_rate: f32,
        /// Little-endian: the easiest target NDAS takes (any).
        max_target: [u8; 32],
        min_extranonce_size: u16,
    },
    UpdateChannel {
        channel_id: u32,
        nominal_hash_rate: f32,
        /// Little-endian.
        maximum_target: [u8; 32],
    },
    SubmitExtended {
        channel_id: u32,
        sequence_number: u32,
        job_id: u32,
        nonce: u32,
        ntime: u32,
        version: u32,
        extranonce: Vec<u8>,
    },
}

/// The channel a message is for, when it names one.
pub(super) fn message_channel(message: &FromPool) -> Option<u32> {
    match message {
        FromPool::NewJob { channel_id, .. }
        | FromPool::PrevHash { channel_id, .. }
        | FromPool::SetTarget { channel_id, .. }
        | FromPool::SubmitSuccess { channel_id, .. }
        | FromPool::SubmitError { channel_id, .. }
        | FromPool::SetExtranoncePrefix { channel_id, .. }
        | FromPool::CloseChannel { channel_id, .. } => Some(*channel_id),
        _ => None,
    }
}
