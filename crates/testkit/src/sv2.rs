//! The Stratum V2 client (the tools' [`ndas_tools::sv2_client`]) and what
//! the SV2 tests share: a config with an endpoint, a set-up connection, an
//! extended channel's merkle root built as a miner builds it. The
//! independent client is the reference translator ([`crate::translator`]).

use std::time::Duration;

pub use ndas_tools::sv2_client::{Client, Received};

/// `config` with a Stratum V2 endpoint on a free port, `max_channels` a
/// connection.
pub fn with_sv2(mut config: ndas::config::Config, max_channels: usize) -> ndas::config::Config {
    config.sv2 = Some(ndas::config::Sv2Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        name: "sv2".into(),
        start: None,
        min: None,
        max: None,
        max_channels_per_connection: max_channels,
    });
    config
}

/// A set-up connection pinning the key NDAS made in `data_dir`.
pub async fn connected(addr: std::net::SocketAddr, data_dir: &std::path::Path) -> Client {
    let key = ndas::sv2::keys::AuthorityKey::load_or_create(data_dir).unwrap();
    let mut client = Client::connect(addr, *key.public()).await.unwrap();
    client.setup(0b100).await.unwrap();
    assert_eq!(
        client.next(Duration::from_secs(30)).await.unwrap(),
        Received::SetupSuccess { flags: 0 }
    );
    client
}

/// The answer to a share: `SubmitSuccess` or `SubmitError` (other
/// messages passed over).
pub async fn share_answer(client: &mut Client, wait: Duration) -> Received {
    client
        .until(wait, |m| {
            matches!(
                m,
                Received::SubmitSuccess { .. } | Received::SubmitError { .. }
            )
            .then(|| m.clone())
        })
        .await
        .unwrap()
}

/// The merkle root an extended channel's miner hashes, built as a miner
/// builds it with the `bitcoin` crate's hashing (not NDAS's): the coinbase
/// `prefix ‖ extranonce_prefix ‖ rolled ‖ suffix`, folded up `path`.
pub fn extended_root(
    prefix: &[u8],
    extranonce_prefix: &[u8],
    rolled: &[u8],
    suffix: &[u8],
    path: &[[u8; 32]],
) -> [u8; 32] {
    use bitcoin::hashes::{sha256d, Hash};
    let coinbase = [prefix, extranonce_prefix, rolled, suffix].concat();
    let mut root = sha256d::Hash::hash(&coinbase).to_byte_array();
    for step in path {
        root = sha256d::Hash::hash(&[root, *step].concat()).to_byte_array();
    }
    root
}
