//! The payout address, parsed with the `bitcoin` crate and checked against the network.

use std::str::FromStr;

use bitcoin::address::{AddressType, NetworkUnchecked};
use bitcoin::Address;

use super::Network;

/// A payout address that cannot be paid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("`{address}` is not a Bitcoin address: {reason}")]
    Invalid { address: String, reason: String },
    #[error("`{address}` is not an address of {network}")]
    WrongNetwork { address: String, network: Network },
    #[error("`{address}` is of an unsupported kind; use P2PKH, P2SH, P2WPKH, P2WSH or P2TR")]
    Unsupported { address: String },
}

/// The scriptPubKey that pays `address` on `network`.
pub fn payout_script(address: &str, network: Network) -> Result<Vec<u8>, AddressError> {
    let unchecked =
        Address::<NetworkUnchecked>::from_str(address).map_err(|e| AddressError::Invalid {
            address: address.to_owned(),
            reason: e.to_string(),
        })?;
    let checked = unchecked
        .require_network(network.to_bitcoin())
        .map_err(|_| AddressError::WrongNetwork {
            address: address.to_owned(),
            network,
        })?;
    match checked.address_type() {
        Some(
            AddressType::P2pkh
            | AddressType::P2sh
            | AddressType::P2wpkh
            | AddressType::P2wsh
            | AddressType::P2tr,
        ) => Ok(checked.script_pubkey().into_bytes()),
        _ => Err(AddressError::Unsupported {
            address: address.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_supported_kind_gives_its_script() {
        let cases = [
            (
                "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
                Network::Mainnet,
                "76a914",
            ),
            (
                "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
                Network::Mainnet,
                "a914",
            ),
            (
                "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
                Network::Mainnet,
                "0014",
            ),
            (
                "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
                Network::Mainnet,
                "0020",
            ),
            (
                "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297",
                Network::Mainnet,
                "5120",
            ),
            (
                "mrj9cVJUyWj4f6zhzK21Pom78XS14TaUjW",
                Network::Regtest,
                "76a9147af7d2a4",
            ),
        ];
        let regtest_p2wsh = Address::p2wsh(
            bitcoin::Script::from_bytes(&[0x51]),
            bitcoin::Network::Regtest,
        )
        .to_string();
        assert!(regtest_p2wsh.starts_with("bcrt1q"));
        let regtest = [(regtest_p2wsh.as_str(), Network::Regtest, "0020")];
        for (address, network, prefix) in cases.into_iter().chain(regtest) {
            let script = payout_script(address, network).unwrap();
            assert!(hex::encode(&script).starts_with(prefix), "{address}");
        }
    }

    #[test]
    fn wrong_network_and_garbage_are_named() {
        assert_eq!(
            payout_script("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", Network::Regtest),
            Err(AddressError::WrongNetwork {
                address: "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa".into(),
                network: Network::Regtest
            })
        );
        assert!(matches!(
            payout_script("not-an-address", Network::Mainnet),
            Err(AddressError::Invalid { .. })
        ));
    }
}
