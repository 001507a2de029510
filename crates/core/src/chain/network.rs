//! The Bitcoin networks NDAS can serve.

use serde::{Deserialize, Serialize};

/// Which chain the node follows; decides address prefixes and RPC port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    #[default]
    Mainnet,
    Testnet,
    Testnet4,
    Signet,
    Regtest,
}

impl Network {
    /// Bitcoin Core's default JSON-RPC port on this network.
    pub fn default_rpc_port(self) -> u16 {
        match self {
            Network::Mainnet => 8332,
            Network::Testnet => 18332,
            Network::Testnet4 => 48332,
            Network::Signet => 38332,
            Network::Regtest => 18443,
        }
    }

    /// The section name of this network in a `bitcoin.conf`-style file.
    pub fn conf_section(self) -> &'static str {
        match self {
            Network::Mainnet => "main",
            Network::Testnet => "test",
            Network::Testnet4 => "testnet4",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        }
    }

    /// The same network in the `bitcoin` crate, for address parsing.
    pub fn to_bitcoin(self) -> bitcoin::Network {
        match self {
            Network::Mainnet => bitcoin::Network::Bitcoin,
            Network::Testnet => bitcoin::Network::Testnet,
            Network::Testnet4 => bitcoin::Network::Testnet4,
            Network::Signet => bitcoin::Network::Signet,
            Network::Regtest => bitcoin::Network::Regtest,
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Network::Mainnet => "mainnet",
            Network::Testnet => "testnet",
            Network::Testnet4 => "testnet4",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        })
    }
}

/// The minimum difficulty of testnet3 and testnet4 (their proof-of-work
/// limit), which their 20-minute rule lets a block take.
pub const TESTNET_MIN_DIFFICULTY_BITS: u32 = 0x1d00_ffff;
