//! Notifications against a local HTTP receiver, with NDAS mining on Bitcoin
//! Core regtest: a found block and its verdict reach a JSON webhook, ntfy,
//! Telegram and Discord in their formats, a node going down and coming back
//! reaches the webhook, a failing target is retried, and a target that never
//! answers holds up neither mining nor the other targets.

use ndas_testkit as common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    metric, ready_miner, regtest_config, start_ndas, submit_block, temp_dir, RegtestPair,
};
use ndas::config::NotifyConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// One request as the receiver read it.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// An HTTP/1.1 receiver that keeps every request, answering 500 to the
/// first `fail_first` requests for `/hook` and 200 to the rest.
async fn receiver(fail_first: usize) -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::<Received>::new()));
    let kept = seen.clone();
    tokio::spawn(async move {
        let failures = Arc::new(Mutex::new(fail_first));
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (seen, failures) = (kept.clone(), failures.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let mut headers = Vec::new();
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).await.unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        let (name, value) = line.split_once(':').unwrap();
                        headers.push((name.to_owned(), value.trim().to_owned()));
                    }
                    let length: usize = headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .map_or(0, |(_, v)| v.parse().unwrap());
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).await.unwrap();
                    let fail = path == "/hook" && {
                        let mut left = failures.lock().unwrap();
                        let fail = *left > 0;
                        *left = left.saturating_sub(1);
                        fail
                    };
                    seen.lock().unwrap().push(Received {
                        path,
                        headers,
                        body: String::from_utf8(body).unwrap(),
                    });
                    let status = if fail {
                        "500 Internal Server Error"
                    } else {
                        "200 OK"
                    };
                    let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                    write.write_all(answer.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (addr, seen)
}

fn target(value: Value) -> NotifyConfig {
    serde_json::from_value(value).unwrap()
}

/// Waits until the receiver has a request for `path` that `check` likes.
async fn wait_for(
    seen: &Mutex<Vec<Received>>,
    path: &str,
    check: impl Fn(&Received) -> bool,
) -> Received {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = seen
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.path == path && check(r))
            .cloned();
        if let Some(found) = found {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing for {path} that fits; got {:#?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_node_changes_reach_every_target_in_its_format() {
    let mut pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let (addr, seen) = receiver(1).await;
    // A target that takes the request and never answers.
    let stuck = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck_addr = stuck.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            open.push(stuck.accept().await.unwrap());
        }
    });
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    config.notify = vec![
        target(json!({"name": "stuck", "kind": "webhook", "url": format!("http://{stuck_addr}/")})),
        target(
            json!({"name": "hook", "kind": "webhook", "url": format!("http://{addr}/hook"),
                      "token": "hook-secret-token"}),
        ),
        target(
            json!({"name": "phone", "kind": "ntfy", "url": format!("http://{addr}/ndas-topic"),
                      "events": ["block_found"]}),
        ),
        target(
            json!({"name": "tg", "kind": "telegram", "url": format!("http://{addr}"),
                      "token": "123:tg-secret", "chat_id": "-100"}),
        ),
        target(
            json!({"name": "discord", "kind": "discord", "url": format!("http://{addr}/discord/x"),
                      "events": ["block_accepted"]}),
        ),
    ];
    config.validate().unwrap();
    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    let (mut client, work) =
        ready_miner(running.stratum_addr(), "t/1", "acct.rack12-s19-004").await;
    let block = submit_block(&mut client, &work, "acct.rack12-s19-004", 1).await;
    let hash = block.hash.to_string();

    // The webhook: both events as JSON, its token as a bearer; its first
    // answer was a 500, so what it got was retried.
    let found = wait_for(&seen, "/hook", |r| r.json()["event"] == "block_found").await;
    assert_eq!(
        found.header("authorization"),
        Some("Bearer hook-secret-token")
    );
    assert_eq!(found.json()["details"]["hash"], json!(hash));
    assert_eq!(
        found.json()["details"]["worker"],
        json!("acct.rack12-s19-004")
    );
    let accepted = wait_for(&seen, "/hook", |r| r.json()["event"] == "block_accepted").await;
    assert_eq!(accepted.json()["details"]["outcome"], json!("accepted"));
    // ntfy: text, with a title and priority; only the event it takes.
    let phone = wait_for(&seen, "/ndas-topic", |_| true).await;
    assert!(phone.body.contains(&hash), "{phone:?}");
    assert!(
        phone.header("title").unwrap().starts_with("NDAS: Block"),
        "{phone:?}"
    );
    assert_eq!(phone.header("priority"), Some("4"));
    // Telegram: sendMessage for the bot, to the chat.
    let telegram = wait_for(&seen, "/bot123:tg-secret/sendMessage", |r| {
        r.json()["text"].as_str().unwrap().contains("accepted")
    })
    .await;
    assert_eq!(telegram.json()["chat_id"], json!("-100"));
    // Discord: the verdict alone, mentions off (a worker's name is a miner's text).
    let discord = wait_for(&seen, "/discord/x", |_| true).await;
    assert!(discord.json()["content"]
        .as_str()
        .unwrap()
        .contains("accepted"));
    assert_eq!(discord.json()["allowed_mentions"], json!({"parse": []}));

    // The node goes down and comes back: the webhook hears both.
    pair.main.stop();
    wait_for(&seen, "/hook", |r| r.json()["event"] == "node_down").await;
    pair.main.restart().await;
    let up = wait_for(&seen, "/hook", |r| r.json()["event"] == "node_up").await;
    assert_eq!(up.json()["details"]["node"], json!("primary"));

    let requests = seen.lock().unwrap().clone();
    assert_eq!(
        requests.iter().filter(|r| r.path == "/ndas-topic").count(),
        1,
        "ntfy took only block_found"
    );
    assert!(
        metric(
            http,
            "ndas_notifications_total{target=\"hook\",outcome=\"sent\"}"
        )
        .await
            >= 4.0
    );
    assert_eq!(
        metric(
            http,
            "ndas_notifications_total{target=\"hook\",outcome=\"failed\"}"
        )
        .await,
        0.0,
        "the 500 was retried, not given up on"
    );
    drop(client);
    running.shutdown().await;
}
