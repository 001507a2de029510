//! The Stratum V2 endpoint: the authority and static keys ([`keys`]), the bytes on
//! the wire ([`wire`], the only module naming the Stratum Reference
//! Implementation's crates), and each connection's loop ([`connection`])
//! around the core's state machine ([`ndas_core::sv2::Sv2Session`]).

pub mod connection;
pub mod keys;
pub mod wire;

use keys::{AuthorityKey, StaticKey};
use ndas_core::sv2::Sv2Limits;

/// What every connection of the Stratum V2 port shares.
#[derive(Debug)]
pub struct Endpoint {
    pub key: AuthorityKey,
    pub static_key: StaticKey,
    pub limits: Sv2Limits,
    /// Most bytes one frame may take on the wire (`stratum.max_line_bytes`:
    /// a mining client's largest message is a few hundred).
    pub max_frame_bytes: usize,
}
