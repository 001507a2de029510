//! Stratum V2's Mining Protocol messages as NDAS's own types: what the
//! state machine ([`super::Sv2Session`]) reads and writes. The server's
//! wire module turns them into the Stratum Reference Implementation's
//! types and bytes (their APIs change between releases; these do not).
//! Only the messages a mining server takes or sends are here.

use std::sync::Arc;

use crate::stratum::method::Extranonce2;
use crate::work::Job;

/// The protocol version NDAS speaks (the only one published).
pub const PROTOCOL_VERSION: u16 = 2;
/// `SetupConnection.protocol` of the Mining Protocol.
pub const MINING_PROTOCOL: u8 = 0;

/// `SetupConnection.flags` a mining client may set.
pub mod flags {
    /// The client takes only standard jobs (a header-only miner).
    pub const REQUIRES_STANDARD_JOBS: u32 = 1 << 0;
    /// The client declares its own work (Job Declaration): not served.
    pub const REQUIRES_WORK_SELECTION: u32 = 1 << 1;
    /// The client rolls version bits (BIP320): always allowed.
    pub const REQUIRES_VERSION_ROLLING: u32 = 1 << 2;
    /// Every flag NDAS serves.
    pub const SERVED: u32 = REQUIRES_STANDARD_JOBS | REQUIRES_VERSION_ROLLING;
}

/// `SetupConnection`.
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    pub protocol: u8,
    pub min_version: u16,
    pub max_version: u16,
    pub flags: u32,
    pub vendor: String,
    pub hardware_version: String,
    pub firmware: String,
    pub device_id: String,
}

/// `OpenStandardMiningChannel` and the common part of the extended one.
#[derive(Clone, Debug, PartialEq)]
pub struct Open {
    pub request_id: u32,
    /// Plays the Stratum V1 username's role (`address.worker`).
    pub user_identity: String,
    /// Hashes per second the client expects of the channel.
    pub nominal_hash_rate: f32,
    /// The easiest target the client accepts, little-endian.
    pub max_target: [u8; 32],
}

/// `SubmitSharesStandard` and `SubmitSharesExtended`.
#[derive(Clone, Debug, PartialEq)]
pub struct Submitted {
    pub channel_id: u32,
    pub sequence_number: u32,
    pub job_id: u32,
    pub nonce: u32,
    pub ntime: u32,
    /// The whole header version.
    pub version: u32,
    /// The rolled part of the extranonce (extended channels only); `None`
    /// when longer than any channel's.
    pub extranonce: Option<Extranonce2>,
}

/// What a client sends.
#[derive(Clone, Debug, PartialEq)]
pub enum Inbound {
    SetupConnection(Setup),
    OpenStandard(Open),
    OpenExtended {
        open: Open,
        min_extranonce_size: u16,
    },
    UpdateChannel {
        channel_id: u32,
        nominal_hash_rate: f32,
        maximum_target: [u8; 32],
    },
    CloseChannel {
        channel_id: u32,
    },
    SubmitStandard(Submitted),
    SubmitExtended(Submitted),
    /// A message a mining server does not take (group, custom job or
    /// another protocol's): its type, for the log.
    Unsupported(u8),
}

/// What NDAS sends.
#[derive(Clone, Debug)]
pub enum Outbound {
    SetupSuccess {
        used_version: u16,
        flags: u32,
    },
    SetupError {
        /// The flags NDAS does not serve; 0 when the error is not about flags.
        flags: u32,
        code: &'static str,
    },
    OpenStandardSuccess {
        request_id: u32,
        channel_id: u32,
        target: [u8; 32],
        /// The whole extranonce: a standard channel rolls none.
        extranonce_prefix: Vec<u8>,
        group_channel_id: u32,
    },
    OpenExtendedSuccess {
        request_id: u32,
        channel_id: u32,
        target: [u8; 32],
        extranonce_size: u16,
        extranonce_prefix: Vec<u8>,
        group_channel_id: u32,
    },
    OpenError {
        request_id: u32,
        code: &'static str,
    },
    /// A standard channel's job: its merkle root is the channel's own.
    NewMiningJob {
        channel_id: u32,
        job_id: u32,
        /// `None`: a future job, mined once a `SetNewPrevHash` names it.
        min_ntime: Option<u32>,
        version: u32,
        merkle_root: [u8; 32],
    },
    /// An extended channel's job: the coinbase halves around the
    /// extranonce and the merkle path are the job's.
    NewExtendedJob {
        channel_id: u32,
        job_id: u32,
        min_ntime: Option<u32>,
        job: Arc<Job>,
    },
    SetNewPrevHash {
        channel_id: u32,
        job_id: u32,
        /// In the header's byte order.
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
        accepted: u32,
        shares_sum: u64,
    },
    SubmitError {
        channel_id: u32,
        sequence_number: u32,
        code: &'static str,
    },
    UpdateChannelError {
        channel_id: u32,
        code: &'static str,
    },
    /// Connect again, to `new_host:new_port`; an empty host and port 0
    /// mean this server again (a restart).
    Reconnect {
        new_host: String,
        new_port: u16,
    },
}

impl Outbound {
    /// The message's name, for logs and tests.
    pub fn name(&self) -> &'static str {
        match self {
            Outbound::SetupSuccess { .. } => "SetupConnection.Success",
            Outbound::SetupError { .. } => "SetupConnection.Error",
            Outbound::OpenStandardSuccess { .. } => "OpenStandardMiningChannel.Success",
            Outbound::OpenExtendedSuccess { .. } => "OpenExtendedMiningChannel.Success",
            Outbound::OpenError { .. } => "OpenMiningChannel.Error",
            Outbound::NewMiningJob { .. } => "NewMiningJob",
            Outbound::NewExtendedJob { .. } => "NewExtendedMiningJob",
            Outbound::SetNewPrevHash { .. } => "SetNewPrevHash",
            Outbound::SetTarget { .. } => "SetTarget",
            Outbound::SubmitSuccess { .. } => "SubmitShares.Success",
            Outbound::SubmitError { .. } => "SubmitShares.Error",
            Outbound::UpdateChannelError { .. } => "UpdateChannel.Error",
            Outbound::Reconnect { .. } => "Reconnect",
        }
    }
}
