//! Stratum over TLS (`stratum+tls`) against Bitcoin Core regtest, with
//! OpenSSL's own client (`openssl s_client`, verifying the certificate as
//! ESP-Miner does with a pasted PEM) carrying the miner's lines: a block
//! mined through it, a plain-text miner on the TLS port turned away, a
//! renewed certificate served after a reload and a broken one not.

use ndas_testkit as common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::node::RegtestPair;
use common::{ready_miner, regtest_config, start_ndas, submit_block, temp_dir, wait_for_metric};
use ndas::config::{Config, PortConfig};
use ndas_tools::miner::Client;
use serde_json::json;
use tokio::io::AsyncReadExt;

/// A self-signed certificate for `localhost` and its key, as an operator
/// makes one with OpenSSL; (cert, key).
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost", "-addext"])
        .arg("subjectAltName=DNS:localhost,IP:127.0.0.1")
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl (installed by .ci/run)");
    assert!(made.success(), "openssl req failed");
    (cert, key)
}

/// The regtest config with one more port, `tls`, serving `cert` and `key`.
fn with_tls_port(mut config: Config, cert: &Path, key: &Path) -> Config {
    config.stratum.ports = vec![PortConfig {
        name: "tls".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        start: config.difficulty.start,
        min: None,
        max: None,
        tls_cert: Some(cert.to_owned()),
        tls_key: Some(key.to_owned()),
    }];
    config
}

/// A miner whose lines go through `openssl s_client`, which trusts `ca`
/// alone and checks the name `localhost`; the process ends with the client.
fn through_openssl(addr: std::net::SocketAddr, ca: &Path) -> (Client, tokio::process::Child) {
    let mut child = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error"])
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .arg("-connect")
        .arg(addr.to_string())
        .arg("-CAfile")
        .arg(ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl s_client");
    let (stdout, stdin) = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    (Client::over(Box::new(stdout), Box::new(stdin)), child)
}

/// Waits for `what` at most 30 s.
async fn within<T>(what: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), what)
        .await
        .expect("an answer within 30 s")
}

/// Subscribes and authorizes through `client`; its first job.
async fn ready(client: &mut Client, worker: &str) -> ndas_tools::miner::Work {
    within(client.subscribe("cpuminer-opt/23.15"))
        .await
        .unwrap();
    let authorized = within(client.authorize(worker)).await.unwrap();
    assert_eq!(authorized["result"], json!(true), "{authorized}");
    within(client.next_job(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("a job after authorize")
}

/// A regtest pair, a directory, a payout address and a config with a TLS
/// port serving a fresh `pool.crt`/`pool.key` from that directory.
struct Pool {
    pair: RegtestPair,
    dir: tempfile::TempDir,
    payout: String,
    cert: PathBuf,
    key: PathBuf,
    config: Config,
}

async fn pool() -> Pool {
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    let payout = pair.new_address().await;
    let (cert, key) = certificate(dir.path(), "pool");
    let config = with_tls_port(regtest_config(&pair, dir.path(), &payout), &cert, &key);
    Pool {
        pair,
        dir,
        payout,
        cert,
        key,
        config,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_miner_mines_a_block_core_accepts() {
    let Pool {
        pair,
        dir: _dir,
        payout,
        cert,
        key: _,
        config,
    } = pool().await;
    let running = start_ndas(config).await;
    let tls = running.port_addr("tls").unwrap();
    let (mut client, _openssl) = through_openssl(tls, &cert);
    let work = ready(&mut client, &format!("{payout}.bitaxe")).await;
    let height = pair.main.height().await;
    submit_block(&mut client, &work, &format!("{payout}.bitaxe"), 1).await;
    pair.wait_height(height + 1).await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_text_miner_on_a_tls_port_is_closed_counted_and_disturbs_no_one() {
    let Pool {
        pair: _pair,
        dir: _dir,
        payout,
        cert: _,
        key: _,
        config,
    } = pool().await;
    let running = start_ndas(config).await;
    let (tls, metrics) = (running.port_addr("tls").unwrap(), running.metrics_addr());
    // A miner on the plain port, mining before and after.
    let worker = format!("{payout}.plain");
    let (mut plain, work) = ready_miner(running.stratum_addr(), "cgminer/4.11", &worker).await;

    let mut stream = tokio::net::TcpStream::connect(tls).await.unwrap();
    let line = json!({"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.11"]});
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the port closes the connection, not waits for more");
    // Closed (or reset after a TLS alert), never answered in stratum.
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.contains("result"), "{read:?} {answer}");
    let series = "ndas_disconnects_total{port=\"tls\",reason=\"tls\"}";
    wait_for_metric(metrics, series, |n| n == 1.0).await;

    submit_block(&mut plain, &work, &worker, 2).await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_a_renewed_certificate_and_keeps_it_when_the_next_is_broken() {
    let Pool {
        pair: _pair,
        dir,
        payout,
        cert: old,
        key,
        config,
    } = pool().await;
    let mut running = start_ndas(config.clone()).await;
    let tls = running.port_addr("tls").unwrap();
    let old_copy = dir.path().join("old.crt");
    std::fs::copy(&old, &old_copy).unwrap();

    // Renewed in place: a new key and certificate at the same paths.
    let (new, new_key) = certificate(dir.path(), "renewed");
    std::fs::copy(&new, &old).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    let said = running.reload(config.clone());
    assert!(
        said.iter().any(|s| s.contains("certificate read again")),
        "{said:?}"
    );
    let (mut client, _openssl) = through_openssl(tls, &new);
    ready(&mut client, &format!("{payout}.renewed")).await;
    // A client that trusts only the old certificate is refused now.
    let (mut stale, _openssl) = through_openssl(tls, &old_copy);
    let refused = within(stale.subscribe("x")).await;
    assert!(refused.is_err(), "the old certificate is still served");

    // A broken renewal: the renewed certificate is still served.
    std::fs::write(&old, "not a certificate").unwrap();
    let said = running.reload(config);
    assert!(
        said.iter()
            .any(|s| s.contains("the certificate served before stays")),
        "{said:?}"
    );
    let (mut client, _openssl) = through_openssl(tls, &new);
    ready(&mut client, &format!("{payout}.after")).await;
    running.shutdown().await;
}
