//! Is the node on the chain NDAS is configured for, and one whose blocks
//! NDAS can make?
//!
//! A mainnet config pointed at a testnet node would otherwise mine there
//! happily; and a signet block must carry a signature of the signet's
//! challenge (BIP325), which NDAS cannot make: only a signet whose challenge
//! is `OP_TRUE` (`51`), whose blocks need none, can be mined through it.

use std::time::Duration;

use serde::Deserialize;

use super::rpc::{RpcClient, RpcError};
use ndas_core::chain::Network;

/// `OP_TRUE`: the one signet challenge a block without a signature meets.
pub const OP_TRUE_CHALLENGE: &str = "51";

/// Why NDAS will not mine on this node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainMismatch {
    #[error("the node follows chain {node:?}, but network = \"{configured}\" (its chain is {expected:?}): point NDAS at a {configured} node or change network")]
    WrongChain {
        node: String,
        configured: Network,
        expected: &'static str,
    },
    #[error("the node's signet challenge is {challenge}: a signet block must carry a signature of it (BIP325), which NDAS cannot make; only a signet whose challenge is OP_TRUE (-signetchallenge=51) can be mined through NDAS")]
    SignetChallenge { challenge: String },
}

/// Why the check did not pass.
#[derive(Debug, thiserror::Error)]
pub enum ChainCheckError {
    #[error(transparent)]
    Mismatch(#[from] ChainMismatch),
    #[error("getblockchaininfo: {0}")]
    Rpc(#[from] RpcError),
}

#[derive(Deserialize)]
struct BlockchainInfo {
    chain: String,
    /// Present on signet (Bitcoin Core 0.21 and later).
    signet_challenge: Option<String>,
}

/// Asks the node which chain it follows and checks it against `network`,
/// waiting at most `timeout` for the answer.
pub async fn check(
    rpc: &RpcClient,
    network: Network,
    timeout: Duration,
) -> Result<(), ChainCheckError> {
    let info: BlockchainInfo = rpc
        .call_with_timeout("getblockchaininfo", serde_json::json!([]), timeout)
        .await?;
    judge(network, &info.chain, info.signet_challenge.as_deref())?;
    Ok(())
}

/// The check itself, on what `getblockchaininfo` said.
pub fn judge(network: Network, chain: &str, challenge: Option<&str>) -> Result<(), ChainMismatch> {
    let expected = network.conf_section();
    if chain != expected {
        return Err(ChainMismatch::WrongChain {
            node: ndas_core::stratum::method::sanitize(chain, 32),
            configured: network,
            expected,
        });
    }
    if network == Network::Signet {
        let challenge = challenge.unwrap_or_default();
        if !challenge.eq_ignore_ascii_case(OP_TRUE_CHALLENGE) {
            return Err(ChainMismatch::SignetChallenge {
                challenge: ndas_core::stratum::method::sanitize(challenge, 160),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_must_follow_the_configured_chain() {
        assert_eq!(judge(Network::Mainnet, "main", None), Ok(()));
        assert_eq!(judge(Network::Testnet4, "testnet4", None), Ok(()));
        let wrong = judge(Network::Mainnet, "test", None).unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "the node follows chain \"test\", but network = \"mainnet\" (its chain is \"main\"): point NDAS at a mainnet node or change network"
        );
    }

    #[test]
    fn only_an_op_true_signet_can_be_mined() {
        assert_eq!(judge(Network::Signet, "signet", Some("51")), Ok(()));
        // The default signet's 1-of-2 multisig challenge.
        let default = "512103ad5e0edad18cb1f0fc0d28a3d4f1f3e445640337489abb10404f2d1e086be430210359ef5021964fe22d6f8e05b2463c9540ce96883fe3b278760f048f5189f2e6c452ae";
        let refused = judge(Network::Signet, "signet", Some(default)).unwrap_err();
        assert!(refused.to_string().contains(default), "{refused}");
        assert!(refused.to_string().contains("-signetchallenge=51"));
        assert!(judge(Network::Signet, "signet", None).is_err());
    }
}
