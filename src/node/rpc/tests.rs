use super::*;

#[test]
fn backoff_doubles_up_to_its_cap() {
    let backoff = Backoff {
        first: Duration::from_millis(100),
        max: Duration::from_secs(2),
        attempts: 10,
    };
    assert_eq!(backoff.delay(1), Duration::from_millis(100));
    assert_eq!(backoff.delay(2), Duration::from_millis(200));
    assert_eq!(backoff.delay(4), Duration::from_millis(800));
    assert_eq!(backoff.delay(9), Duration::from_secs(2));
}

#[test]
fn transient_errors_are_told_apart() {
    let http = |status| RpcError::Http {
        method: "m".into(),
        status,
        detail: String::new(),
    };
    assert!(http(503).is_transient());
    assert!(!http(404).is_transient());
    assert!(RpcError::Rpc {
        method: "m".into(),
        code: -28,
        message: String::new()
    }
    .is_transient());
    assert!(!RpcError::Rpc {
        method: "m".into(),
        code: -22,
        message: String::new()
    }
    .is_transient());
    assert!(!RpcError::Unauthorized.is_transient());
}

#[test]
fn a_plain_text_error_body_is_shown_printable_and_short() {
    assert_eq!(
        http_detail(b"Work queue depth exceeded\r\n"),
        ": Work queue depth exceeded"
    );
    assert_eq!(http_detail(b""), "");
    let long = http_detail(&[b'x'; 5000]);
    assert!(long.len() < 130, "{}", long.len());
    assert!(!http_detail(b"bad\x1b[31m\n").contains('\x1b'));
}

/// Bitcoin Core answers a full work queue with 503 and plain text
/// (`tests/faults.rs` fills a real Core's queue; this one answers at once).
#[tokio::test]
async fn a_503_with_a_plain_text_body_is_a_transient_error_that_says_why() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).await.unwrap();
        let body = "Work queue depth exceeded";
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
    });
    let endpoint = NodeEndpoint {
        host: "127.0.0.1".into(),
        port,
        user: "u".into(),
        password: ndas_core::Secret::new("p"),
    };
    let client = RpcClient::new(&endpoint, Duration::from_secs(5)).unwrap();
    let error = client
        .call::<Value>("getblocktemplate", serde_json::json!([]))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "http");
    assert!(error.is_transient());
    assert_eq!(
        error.to_string(),
        "node answered getblocktemplate with HTTP 503: Work queue depth exceeded"
    );
}

#[test]
fn every_error_kind_is_a_metrics_label() {
    let errors = [
        RpcError::Unauthorized,
        RpcError::Timeout {
            method: "m".into(),
            timeout: Duration::from_secs(1),
        },
        RpcError::Decode {
            method: "m".into(),
            reason: String::new(),
        },
    ];
    for error in errors {
        assert!(RpcError::KINDS.contains(&error.kind()));
    }
}

/// A node (or a proxy in front of it) that answers without end: read
/// up to the bound, then an error, whether it says its length or not.
#[tokio::test]
async fn an_answer_over_the_bound_is_an_error_not_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        for declared in [true, false] {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await.unwrap();
            let head = if declared {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 3 << 20)
            } else {
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
            };
            stream.write_all(head.as_bytes()).await.unwrap();
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..48 {
                let piece = if declared {
                    chunk.clone()
                } else {
                    [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat()
                };
                if stream.write_all(&piece).await.is_err() {
                    break;
                }
            }
        }
    });
    let endpoint = NodeEndpoint {
        host: "127.0.0.1".into(),
        port,
        user: "u".into(),
        password: ndas_core::Secret::new("p"),
    };
    let client = RpcClient::new(&endpoint, Duration::from_secs(5))
        .unwrap()
        .with_max_response(1 << 20);
    for _ in 0..2 {
        let error = client
            .call::<Value>("getblocktemplate", serde_json::json!([]))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), "unreadable", "{error}");
        assert!(
            error
                .to_string()
                .contains("node.max_response_bytes (1048576 bytes)"),
            "{error}"
        );
    }
}
