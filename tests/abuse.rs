//! One bad client never costs the others: connection bounds, slow and silent
//! connections, line floods and miners that stop reading are each closed,
//! counted in `ndas_disconnects_total` / `ndas_connections_refused_total`,
//! while an honest miner beside them keeps getting answers.

use ndas_testkit as common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{
    connect_from, metric, ready_miner, regtest_config, start_ndas, temp_dir, RegtestPair,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);

/// Sends a subscribe; the server's first line back, or `None` if it closed.
async fn subscribe(stream: &mut TcpStream) -> Option<String> {
    let line = "{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"abuse/1\"]}\n";
    if stream.write_all(line.as_bytes()).await.is_err() {
        return None;
    }
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("an answer or a close")
        {
            Ok(1) if byte[0] == b'\n' => return Some(String::from_utf8(answer).unwrap()),
            Ok(1) => answer.push(byte[0]),
            _ => return None,
        }
    }
}

/// Everything the server sends until it closes the connection.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("the server closes the connection")
        {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Waits until `series` reaches at least `wanted`.
async fn wait_for_metric(addr: SocketAddr, series: &str, wanted: f64) {
    common::wait_for_metric(addr, series, |value| value >= wanted).await;
}

/// A regtest pair and NDAS on it, with `adjust` applied to its config; the
/// pair and folder live as long as the stack.
struct Stack {
    _pair: RegtestPair,
    _dir: tempfile::TempDir,
    payout: String,
    running: ndas::Running,
}

async fn stack(adjust: impl FnOnce(&mut ndas::config::Config)) -> Stack {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    adjust(&mut config);
    let running = start_ndas(config).await;
    Stack {
        _pair: pair,
        _dir: dir,
        payout,
        running,
    }
}

/// The honest miner still gets its answers.
async fn still_served(client: &mut ndas_tools::miner::Client) {
    let answer = client
        .request("mining.suggest_difficulty", json!([1]))
        .await
        .unwrap();
    assert_eq!(answer["error"], json!(null), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_bounds_are_closed_and_the_rest_served() {
    let Stack {
        _pair,
        _dir,
        payout: _,
        running,
    } = stack(|c| {
        c.stratum.max_connections = 3;
        c.stratum.max_connections_per_ip = 2;
    })
    .await;
    let (addr, metrics) = (running.stratum_addr(), running.metrics_addr());

    let mut first = connect_from([127, 0, 0, 1], addr).await;
    let mut second = connect_from([127, 0, 0, 1], addr).await;
    assert!(subscribe(&mut first).await.is_some());
    assert!(subscribe(&mut second).await.is_some());
    let mut third_from_same = connect_from([127, 0, 0, 1], addr).await;
    assert_eq!(
        subscribe(&mut third_from_same).await,
        None,
        "a third connection from one address is closed"
    );
    let mut other = connect_from([127, 0, 0, 2], addr).await;
    assert!(
        subscribe(&mut other).await.is_some(),
        "the per-address bound is per address"
    );
    let mut over_total = connect_from([127, 0, 0, 3], addr).await;
    assert_eq!(
        subscribe(&mut over_total).await,
        None,
        "over max_connections"
    );
    let per_ip = "ndas_connections_refused_total{reason=\"max_connections_per_ip\"}";
    let total = "ndas_connections_refused_total{reason=\"max_connections\"}";
    assert_eq!(metric(metrics, per_ip).await, 1.0);
    assert_eq!(metric(metrics, total).await, 1.0);

    // A place freed is a place taken again.
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut again = connect_from([127, 0, 0, 1], addr).await;
        if subscribe(&mut again).await.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        subscribe(&mut second).await.is_some(),
        "the admitted miners were never disturbed"
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_their_handshake_cannot_take_every_place() {
    let Stack {
        _pair,
        _dir,
        payout,
        running,
    } = stack(|c| {
        c.stratum.max_connections = 50;
        c.stratum.max_handshaking = 2;
    })
    .await;
    let (addr, metrics) = (running.stratum_addr(), running.metrics_addr());
    // An authorized miner holds no handshake place.
    let (mut honest, _) = ready_miner(addr, "honest/1", &format!("{payout}.honest")).await;
    let mut silent: Vec<TcpStream> = Vec::new();
    for source in [[127, 0, 0, 5], [127, 0, 0, 6]] {
        silent.push(connect_from(source, addr).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A third half-open connection is closed on arrival, whatever its address.
    let mut third = connect_from([127, 0, 0, 7], addr).await;
    assert_eq!(subscribe(&mut third).await, None);
    let refused = "ndas_connections_refused_total{reason=\"max_handshaking\"}";
    assert_eq!(metric(metrics, refused).await, 1.0);
    still_served(&mut honest).await;
    // One silent connection gone: a miner gets in and, authorized, gives
    // its place back at once.
    drop(silent.pop());
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut joined = loop {
        let mut client = ndas_tools::miner::Client::connect(addr).await.unwrap();
        if client.subscribe("late/1").await.is_ok() {
            let name = format!("{payout}.late");
            assert_eq!(
                client.authorize(&name).await.unwrap()["result"],
                json!(true)
            );
            break client;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    still_served(&mut joined).await;
    // Authorized, it gave its place back: one is free beside the silent one.
    let mut another = connect_from([127, 0, 0, 9], addr).await;
    assert!(subscribe(&mut another).await.is_some());
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_and_flooding_miners_are_closed_while_others_are_served() {
    let Stack {
        _pair,
        _dir,
        payout,
        running,
    } = stack(|c| {
        c.stratum.handshake_timeout_seconds = 1.0;
        c.stratum.max_lines_per_second = 20;
    })
    .await;
    let (addr, metrics) = (running.stratum_addr(), running.metrics_addr());
    let (mut honest, _) = ready_miner(addr, "honest/1", &format!("{payout}.honest")).await;

    // Slowloris: a byte at a time, never a whole handshake.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let (mut slow_reader, mut slow_writer) = slow.split();
    let dribble = async {
        for byte in b"{\"id\":1,\"method\":\"mining.subscr".iter().cycle() {
            if slow_writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let closed = async {
        let mut received = Vec::new();
        let _ = tokio::time::timeout(WAIT, slow_reader.read_to_end(&mut received)).await;
        String::from_utf8_lossy(&received).into_owned()
    };
    let said = tokio::select! {
        said = closed => said,
        _ = dribble => panic!("the dribble ended first"),
    };
    assert!(
        said.contains("not subscribed and authorized in time"),
        "{said}"
    );

    // Half-open: connects and says nothing.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let said = read_until_closed(&mut silent).await;
    assert!(
        said.contains("not subscribed and authorized in time"),
        "{said}"
    );
    still_served(&mut honest).await;

    // A flood of lines: answered up to the budget, then closed.
    let mut flood = TcpStream::connect(addr).await.unwrap();
    let lines: String = (0..500)
        .map(|id| {
            format!("{{\"id\":{id},\"method\":\"mining.extranonce.subscribe\",\"params\":[]}}\n")
        })
        .collect();
    let _ = flood.write_all(lines.as_bytes()).await;
    let said = read_until_closed(&mut flood).await;
    assert!(said.contains("too many lines"), "{said}");
    let answered = said
        .lines()
        .filter(|l| l.contains("\"result\":true"))
        .count();
    assert!(
        (1..=40).contains(&answered),
        "about one second's budget answered, not all 500: {answered}"
    );
    still_served(&mut honest).await;

    // Counted once each connection is gone (after its linger).
    for (reason, count) in [("handshake_timeout", 2.0), ("flood", 1.0)] {
        let series = format!("ndas_disconnects_total{{reason=\"{reason}\"}}");
        wait_for_metric(metrics, &series, count).await;
    }
    still_served(&mut honest).await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_that_stops_reading_is_closed_while_others_are_served() {
    let Stack {
        _pair,
        _dir,
        payout,
        running,
    } = stack(|c| {
        c.stratum.write_timeout_seconds = 1.0;
        // No line budget in the way: only the stalled write may close it.
        c.stratum.max_lines_per_second = 1_000_000;
    })
    .await;
    let (addr, metrics) = (running.stratum_addr(), running.metrics_addr());
    let (mut honest, _) = ready_miner(addr, "honest/1", &format!("{payout}.honest")).await;

    // Asks and asks, and never reads an answer.
    let deaf = TcpStream::connect(addr).await.unwrap();
    let (_deaf_reader, mut deaf_writer) = deaf.into_split();
    let asks: String = (0..1000)
        .map(|_| "{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"deaf/1\"]}\n")
        .collect();
    let writer =
        tokio::spawn(async move { while deaf_writer.write_all(asks.as_bytes()).await.is_ok() {} });
    wait_for_metric(
        metrics,
        "ndas_disconnects_total{reason=\"write_stalled\"}",
        1.0,
    )
    .await;
    writer.abort();
    // Its task is gone: only the honest miner is still counted.
    wait_until_connections(metrics, 1.0).await;
    still_served(&mut honest).await;
    running.shutdown().await;
}

async fn wait_until_connections(addr: SocketAddr, wanted: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(addr, "ndas_connections").await != wanted {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ndas_connections never came to {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_silent_past_the_idle_timeout_is_closed() {
    let Stack {
        _pair,
        _dir,
        payout,
        running,
    } = stack(|c| {
        c.stratum.idle_timeout_seconds = 1.0;
    })
    .await;
    let (mut quiet, _) =
        ready_miner(running.stratum_addr(), "quiet/1", &format!("{payout}.q")).await;
    let closed = tokio::time::timeout(WAIT, async {
        while let Ok(Some(_)) = quiet.read_message().await {}
    })
    .await;
    assert!(closed.is_ok(), "the silent miner was never closed");
    assert_eq!(
        metric(
            running.metrics_addr(),
            "ndas_disconnects_total{reason=\"idle\"}"
        )
        .await,
        1.0
    );
    running.shutdown().await;
}

/// Subscribes and authorizes from `source`, sends `count` shares with a wrong
/// extranonce2 size for the first job, then reads until the server closes;
/// everything it said after the job.
async fn send_invalid_shares(addr: SocketAddr, source: [u8; 4], count: usize) -> String {
    use tokio::io::AsyncBufReadExt;
    let stream = connect_from(source, addr).await;
    let (reader, mut writer) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(reader).lines();
    writer
        .write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"bad.rig\",\"x\"]}\n")
        .await
        .unwrap();
    let notify = loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a job")
            .unwrap()
            .expect("a job before the connection closes");
        if line.contains("\"method\":\"mining.notify\"") {
            break serde_json::from_str::<serde_json::Value>(&line).unwrap();
        }
    };
    let (job, ntime) = (&notify["params"][0], &notify["params"][7]);
    for id in 0..count {
        let submit = json!({"id": 10 + id, "method": "mining.submit", "params": ["bad.rig", job, "00", ntime, "00000000"]});
        if writer
            .write_all(format!("{submit}\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
    }
    let mut said = String::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, lines.next_line()).await {
        said += &line;
        said.push('\n');
    }
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_shares_get_a_reconnect_then_the_address_a_ban() {
    let Stack {
        _pair,
        _dir,
        payout,
        running,
    } = stack(|c| {
        c.stratum.max_invalid_shares = 4;
        c.stratum.ban_after_drops = 2;
        c.stratum.ban_seconds = 600.0;
    })
    .await;
    let (addr, metrics) = (running.stratum_addr(), running.metrics_addr());
    let (mut honest, _) = ready_miner(addr, "honest/1", &format!("{payout}.honest")).await;

    // Fewer than the bound: answered, and the connection stays.
    let said = tokio::time::timeout(
        Duration::from_secs(3),
        send_invalid_shares(addr, [127, 0, 0, 3], 3),
    )
    .await;
    assert!(
        said.is_err(),
        "three invalid shares do not close the connection"
    );
    // Hanging up does not wipe them: the address's next connection is
    // closed at its first (3 + 1).
    wait_until_connections(metrics, 1.0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let said = send_invalid_shares(addr, [127, 0, 0, 3], 4).await;
    assert_eq!(said.matches("\"error\":[20").count(), 1, "{said}");
    assert!(said.contains("client.reconnect"), "{said}");
    // That drop counted; the next connection starts afresh.
    let said = send_invalid_shares(addr, [127, 0, 0, 3], 4).await;
    assert_eq!(said.matches("\"error\":[20").count(), 4, "{said}");
    assert!(said.contains("client.reconnect"), "{said}");
    wait_for_metric(
        metrics,
        "ndas_disconnects_total{reason=\"invalid_shares\"}",
        2.0,
    )
    .await;
    // Two drops: the address is refused now, and only that address.
    let mut banned = connect_from([127, 0, 0, 3], addr).await;
    assert_eq!(subscribe(&mut banned).await, None);
    assert_eq!(
        metric(metrics, "ndas_connections_refused_total{reason=\"banned\"}").await,
        1.0
    );
    let mut other = connect_from([127, 0, 0, 2], addr).await;
    assert!(subscribe(&mut other).await.is_some());
    still_served(&mut honest).await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_agents_and_numbers_are_refused_or_neutralized() {
    let Stack {
        _pair,
        _dir,
        payout: _,
        running,
    } = stack(|c| {
        c.stratum.max_line_bytes = 16_384;
    })
    .await;
    let (addr, http) = (running.stratum_addr(), running.metrics_addr());
    let mut client = ndas_tools::miner::Client::connect(addr).await.unwrap();
    client
        .subscribe("evil\u{1b}[31m\u{7}agent\r\n")
        .await
        .unwrap();

    let long_name = format!("acct.{}", "w".repeat(10_000));
    for (name, why) in [
        (long_name.as_str(), "longer than 128 bytes"),
        ("acct.\u{1b}[2Jrig", "control or space characters"),
        ("acct.rig\nnext", "control or space characters"),
    ] {
        let answer = client.authorize(name).await.unwrap();
        let error = answer["error"].to_string();
        assert!(error.contains(why), "{name:?}: {answer}");
        assert!(!error.contains('\u{1b}'), "{answer}");
    }
    assert_eq!(
        client.authorize("acct.名前").await.unwrap()["result"],
        json!(true)
    );

    for difficulty in [json!(-1), json!(0), json!("inf"), json!(1e308), json!([1])] {
        let answer = client
            .request("mining.suggest_difficulty", json!([difficulty]))
            .await
            .unwrap();
        if difficulty == json!(1e308) {
            // Finite and positive: clamped to the configured maximum.
            assert_eq!(answer["result"], json!(true), "{answer}");
        } else {
            assert_eq!(answer["error"][0], json!(20), "{difficulty}: {answer}");
        }
    }
    // Numbers JSON allows but no machine type holds, and deep nesting.
    for line in [
        "{\"id\":1e999,\"method\":\"mining.suggest_difficulty\",\"params\":[1]}",
        "{\"id\":184467440737095516161844674407370955161,\"method\":\"mining.bogus\",\"params\":[]}",
        &format!("{{\"id\":1,\"method\":\"mining.bogus\",\"params\":{}{}}}", "[".repeat(5000), "]".repeat(5000)),
    ] {
        client.send_raw(format!("{line}\n").as_bytes()).await.unwrap();
        let answer = client.read_message().await.unwrap().expect("an answer, not a close");
        assert_eq!(answer["error"][0], json!(20), "{answer}");
    }
    still_served(&mut client).await;

    // A name earns its place in the registry with an accepted share.
    let work = client.latest_job().expect("a job after authorize");
    let en2 = vec![7; client.extranonce2_size];
    let share = ndas_tools::miner::grind(&work, &client.extranonce1, &en2, (None, 0), 1000, |s| {
        s.difficulty >= 2.5e-10 && !s.is_block
    })
    .unwrap();
    let answer = client.submit("acct.名前", &share).await.unwrap();
    assert_eq!(answer["result"], json!(true), "{answer}");

    // What the operator sees carries no control characters.
    let (_, page) = common::http_json(http, "/api/workers").await;
    let worker = &page["workers"][0];
    assert_eq!(worker["name"], json!("acct.名前"));
    let agent = worker["user_agent"].as_str().unwrap();
    assert!(!agent.chars().any(char::is_control), "{agent:?}");
    assert_eq!(agent, "evil[31magent");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_mistakes_never_close_or_ban_and_valid_shares_are_never_a_flood() {
    let Stack {
        _pair,
        _dir,
        payout,
        running,
    } = stack(|c| {
        c.stratum.max_invalid_shares = 4;
        c.stratum.ban_after_drops = 1;
        c.stratum.max_lines_per_second = 5;
        // Shares harder than regtest's, so some hashes are too low.
        c.difficulty.start = 4.0e-10;
        c.difficulty.min = 4.0e-10;
        c.difficulty.max = 4.0e-10;
    })
    .await;
    let (addr, metrics) = (running.stratum_addr(), running.metrics_addr());
    let worker = format!("{payout}.cpu");
    let (mut client, work) = ready_miner(addr, "cpuminer/2.5.1", &worker).await;
    let wanted = client.difficulty;
    let mut counter = 0u64;
    let mut next = |want_valid: bool| loop {
        counter += 1;
        let en2 = counter.to_be_bytes()[8 - client.extranonce2_size..].to_vec();
        let share =
            ndas_tools::miner::grind(&work, &client.extranonce1, &en2, (None, 0), 1, |_| true)
                .expect("a hash");
        if (share.difficulty >= wanted) == want_valid && !share.is_block {
            return share;
        }
    };
    // Twelve low-difficulty shares (three times max_invalid_shares) and a
    // resent one: each answered, none counted against the miner.
    let low: Vec<_> = (0..12).map(|_| next(false)).collect();
    let valid: Vec<_> = (0..40).map(|_| next(true)).collect();
    // (At four a second: within the line budget, as an honest miner is.)
    let pace = Duration::from_millis(250);
    for share in &low {
        let answer = client.submit(&worker, share).await.unwrap();
        assert_eq!(answer["error"][0], json!(23), "{answer}");
        tokio::time::sleep(pace).await;
    }
    let first = client.submit(&worker, &valid[0]).await.unwrap();
    assert_eq!(first["result"], json!(true), "{first}");
    for _ in 0..6 {
        let again = client.submit(&worker, &valid[0]).await.unwrap();
        assert_eq!(again["error"][0], json!(22), "{again}");
        tokio::time::sleep(pace).await;
    }
    // Forty valid shares at once, eight times the line budget: a CPU miner
    // on regtest, whose every line is a share vardiff cannot slow.
    let mut burst = String::new();
    for (n, share) in valid[1..].iter().enumerate() {
        let line = json!({"id": 1000 + n, "method": "mining.submit", "params": ndas_tools::miner::submit_params(&worker, share)});
        burst += &format!("{line}\n");
    }
    client.send_raw(burst.as_bytes()).await.unwrap();
    let mut accepted = 0;
    while accepted < valid.len() - 1 {
        let message = tokio::time::timeout(WAIT, client.read_message())
            .await
            .expect("answers in time")
            .unwrap()
            .expect("the connection stays open");
        if message["id"].as_u64().is_some_and(|id| id >= 1000) {
            assert_eq!(message["result"], json!(true), "{message}");
            accepted += 1;
        }
    }
    still_served(&mut client).await;
    assert_eq!(
        metric(metrics, "ndas_disconnects_total{reason=\"invalid_shares\"}").await,
        0.0
    );
    assert_eq!(
        metric(metrics, "ndas_disconnects_total{reason=\"flood\"}").await,
        0.0
    );
    // And the address is not banned: a second miner from it is served.
    let mut second = connect_from([127, 0, 0, 1], addr).await;
    assert!(subscribe(&mut second).await.is_some());
    running.shutdown().await;
}
