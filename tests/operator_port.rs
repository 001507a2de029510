//! The operator port as an attacker on the network meets it: the token in
//! front of `/api/*` and the page, the node's error text kept from whoever
//! lacks it, and the bounds on connections, their lifetime and the request
//! rate. The node is absent on purpose (a closed port): NDAS then has an
//! error to keep to itself.

use ndas_testkit as common;

use std::time::Duration;

use base64::Engine;
use common::node::free_port;
use common::{connect_from, endpoint_config, http_request, temp_dir, wait_for_readyz};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "s3cret-token-0123456789";
const PAYOUT: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// NDAS in front of a node port nobody listens on, with `adjust` applied.
async fn without_node(
    adjust: impl FnOnce(&mut ndas::config::Config),
) -> (ndas::Running, tempfile::TempDir) {
    let dir = temp_dir();
    let mut config = endpoint_config((free_port(), "u", "p"), "regtest", dir.path(), PAYOUT);
    adjust(&mut config);
    let running = ndas::start(config)
        .await
        .expect("NDAS starts without its node");
    (running, dir)
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_the_api_and_page_and_keeps_the_nodes_errors_from_others() {
    let (running, _dir) = without_node(|c| {
        c.metrics.token = Some(ndas_core::Secret::new(TOKEN));
    })
    .await;
    let http = running.metrics_addr();
    wait_for_readyz(http, 503).await;
    let with_token = [("Authorization", bearer())];
    let with_token: Vec<(&str, &str)> = with_token.iter().map(|(k, v)| (*k, v.as_str())).collect();

    for path in ["/api/stats", "/api/workers", "/"] {
        let (status, head, body) = http_request(http, path, &[]).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(
            head.contains("www-authenticate: Basic realm=\"NDAS\""),
            "{head}"
        );
        assert!(!body.contains(TOKEN));
        let (status, _, _) = http_request(
            http,
            path,
            &[("Authorization", "Bearer wrong-token-0000000")],
        )
        .await;
        assert_eq!(status, 401, "{path} with a wrong token");
        let (status, _, _) = http_request(http, path, &with_token).await;
        assert_eq!(status, 200, "{path} with the token");
    }
    // A browser's Basic login: any user, the token as password.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ops:{TOKEN}"));
    let (status, _, page) =
        http_request(http, "/", &[("Authorization", &format!("Basic {basic}"))]).await;
    assert_eq!(status, 200);
    assert!(page.contains("<html"));

    // Probes and Prometheus need no token, but learn nothing of the node.
    let (status, _, _) = http_request(http, "/healthz", &[]).await;
    assert_eq!(status, 200);
    let (status, _, metrics) = http_request(http, "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("ndas_node_up{node=\"primary\"} 0"));
    let (status, _, open) = http_request(http, "/readyz", &[]).await;
    assert_eq!(status, 503);
    let open: serde_json::Value = serde_json::from_str(&open).unwrap();
    assert!(
        open["reasons"]
            .as_array()
            .unwrap()
            .contains(&"node unreachable".into()),
        "{open}"
    );
    assert!(!open.to_string().contains("127.0.0.1"), "{open}");
    let (_, _, told) = http_request(http, "/readyz", &with_token).await;
    let told: serde_json::Value = serde_json::from_str(&told).unwrap();
    let reason = told["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("node unreachable: "), "{told}");
    let (_, _, stats) = http_request(http, "/api/stats", &with_token).await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(
        stats["node"]["last_error"].as_str().unwrap().contains(": "),
        "{stats}"
    );
    running.shutdown().await;

    // And /metrics behind it too, when asked.
    let (running, _dir) = without_node(|c| {
        c.metrics.token = Some(ndas_core::Secret::new(TOKEN));
        c.metrics.token_protects_metrics = true;
    })
    .await;
    let http = running.metrics_addr();
    assert_eq!(http_request(http, "/metrics", &[]).await.0, 401);
    assert_eq!(http_request(http, "/metrics", &with_token).await.0, 200);
    assert_eq!(http_request(http, "/healthz", &[]).await.0, 200);
    running.shutdown().await;
}

/// Whether the server closes `stream` within 10 s (reading nothing else).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_surplus_connections_are_closed_and_one_address_is_held_to_its_rate() {
    let (running, _dir) = without_node(|c| {
        c.metrics.max_connections = 4;
        c.metrics.timeout_seconds = 3.0;
        c.metrics.requests_per_second = 5;
    })
    .await;
    let http = running.metrics_addr();

    // Four connections that never send a request hold every place: a fifth
    // is closed on arrival, and the four at their timeout.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(http).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut surplus = TcpStream::connect(http).await.unwrap();
    assert!(closed_by_server(&mut surplus).await, "the fifth is refused");
    // ... on arrival: the four are still open.
    let mut buffer = [0u8; 16];
    let still_open = idle[0].try_read(&mut buffer);
    assert!(
        matches!(&still_open, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{still_open:?}"
    );
    for stream in &mut idle {
        assert!(
            closed_by_server(stream).await,
            "an idle connection outlived its timeout"
        );
    }
    // A client that asks and never reads is closed too.
    let mut reader = TcpStream::connect(http).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {http}\r\n\r\n");
    reader.write_all(request.as_bytes()).await.unwrap();
    assert!(closed_by_server(&mut reader).await);

    // Ten requests at once from one address: five pass, the rest wait.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let mut stream = connect_from([127, 0, 0, 1], http).await;
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        statuses.push(answer.split_whitespace().nth(1).unwrap().to_owned());
    }
    let refused = statuses.iter().filter(|s| *s == "429").count();
    assert_eq!(statuses[0], "200", "{statuses:?}");
    assert!(refused >= 4, "{statuses:?}");
    // Another address has its own allowance.
    let mut other = connect_from([127, 0, 0, 2], http).await;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
    other.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    other.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    running.shutdown().await;
}
