//! `deploy/compose-init.sh` as a newcomer runs it, and the `rpcauth` it
//! writes for bitcoind checked against Bitcoin Core itself: the password
//! works, another does not, and no command line carries the password.

use ndas_testkit as common;

use std::time::Duration;

use common::node::{Kind, RegtestNode};
use ndas::node::utek::NodeEndpoint;
use ndas::node::RpcClient;
use ndas_core::Secret;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rpcauth_compose_init_writes_takes_the_password_and_nothing_else() {
    let (_dir, env) = common::compose_init();
    let auth = &env["BITCOIN_RPC_AUTH"];
    let password = &env["BITCOIN_RPC_PASSWORD"];
    assert!(
        !auth.contains(password.as_str()),
        "the password itself is on the command line"
    );
    assert!(env["METRICS_TOKEN"].len() >= 16);
    let compose = std::fs::read_to_string("docker-compose.yml").unwrap();
    assert!(compose.contains("-rpcauth=${BITCOIN_RPC_AUTH"));
    assert!(!compose.contains("-rpcpassword"));

    let node = RegtestNode::start(Kind::Core, None, &[format!("-rpcauth={auth}")]);
    node.wait_ready().await;
    let client = |password: &str| {
        let endpoint = NodeEndpoint {
            host: "127.0.0.1".into(),
            port: node.rpc_port,
            user: env["BITCOIN_RPC_USER"].clone(),
            password: Secret::new(password),
        };
        RpcClient::new(&endpoint, Duration::from_secs(10)).unwrap()
    };
    let count: u64 = client(password)
        .call("getblockcount", serde_json::json!([]))
        .await
        .unwrap();
    assert_eq!(count, 0);
    let refused = client("not-the-password")
        .call::<u64>("getblockcount", serde_json::json!([]))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), "unauthorized");
}
