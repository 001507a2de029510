//! `ndas serve` as a process against the regtest pair: its config, its JSON
//! log, and signals by PID.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::node::{free_port, Kind};
use super::{write_utek_files, RegtestPair};

pub const WAIT: Duration = Duration::from_secs(30);

/// NDAS's config for `pair`, with `node_extra` lines added to `[node]`.
pub fn config_text(
    dir: &std::path::Path,
    pair: &RegtestPair,
    payout: &str,
    ports: (u16, u16),
    difficulty: f64,
    tag: &str,
    node_extra: &str,
) -> String {
    let utek = write_utek_files(
        dir,
        pair.main.rpc_port,
        &pair.main.user,
        &pair.main.password,
    );
    toml_text(dir, utek, payout, ports, difficulty, tag, node_extra)
}

/// As [`config_text`] at the tests' difficulty, with NDAS reaching the main
/// node at 127.0.0.1:`rpc_port` (a proxy in front of it) rather than directly.
pub fn config_text_via(
    dir: &std::path::Path,
    pair: &RegtestPair,
    rpc_port: u16,
    payout: &str,
    ports: (u16, u16),
) -> String {
    let utek = write_utek_files(dir, rpc_port, &pair.main.user, &pair.main.password);
    toml_text(dir, utek, payout, ports, 2.5e-10, "/NDAS/", "")
}

fn toml_text(
    dir: &std::path::Path,
    (metadata, conf): (std::path::PathBuf, std::path::PathBuf),
    payout: &str,
    ports: (u16, u16),
    difficulty: f64,
    tag: &str,
    node_extra: &str,
) -> String {
    format!(
        r#"network = "regtest"
data_dir = "{data}"
[stratum]
listen = "127.0.0.1:{stratum}"
[metrics]
listen = "127.0.0.1:{metrics}"
[difficulty]
start = {difficulty:e}
min = {difficulty:e}
max = {difficulty:e}
[mining]
payout_address = "{payout}"
coinbase_tag = "{tag}"
job_refresh_seconds = 1
[node]
utek_metadata = "{metadata}"
utek_conf = "{conf}"
poll_interval_ms = 100
{node_extra}
[log]
format = "json"
level = "info"
"#,
        data = dir.join("data").display(),
        stratum = ports.0,
        metrics = ports.1,
        metadata = metadata.display(),
        conf = conf.display(),
    )
}

pub fn log_lines(path: &std::path::Path) -> Vec<Value> {
    // Only whole lines: the process may be writing the last one.
    std::fs::read_to_string(path)
        .unwrap()
        .split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"))
        })
        .collect()
}

pub async fn wait_for_log(path: &std::path::Path, what: &str) -> Vec<Value> {
    wait_for_logs(path, what, 1).await
}

/// Waits until `count` log lines have a message containing `what`; all lines.
pub async fn wait_for_logs(path: &std::path::Path, what: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = log_lines(path);
        let seen = lines
            .iter()
            .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(what)))
            .count();
        if seen >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{seen} log lines with {what:?}, not {count}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `ndas` process, killed by PID if the test ends early.
pub struct Stopped(pub std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ndas serve --config config`, logging to `log`.
pub fn serve(config: &std::path::Path, log: &std::path::Path) -> Stopped {
    serve_with_env(config, log, &[])
}

/// As [`serve`], with `env` added to the process's environment.
pub fn serve_with_env(
    config: &std::path::Path,
    log: &std::path::Path,
    env: &[(&str, &std::ffi::OsStr)],
) -> Stopped {
    Stopped(
        Command::new(ndas_binary())
            .args(["serve", "--config", config.to_str().unwrap()])
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::from(std::fs::File::create(log).unwrap()))
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

/// Waits for the process to exit; its status.
pub async fn exit_of(child: &mut Stopped) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "ndas did not exit after the signal"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A regtest pair and `ndas serve` on it, serving its first job.
pub struct Served {
    pub pair: RegtestPair,
    pub payout: String,
    pub dir: tempfile::TempDir,
    pub ports: (u16, u16),
    pub config: std::path::PathBuf,
    pub log: std::path::PathBuf,
    pub child: Stopped,
}

impl Served {
    /// Where miners connect.
    pub fn stratum(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.ports.0))
    }

    /// Where `/metrics`, `/readyz` and the API answer.
    pub fn http(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.ports.1))
    }
}

pub async fn served() -> Served {
    served_with(&[], "").await
}

/// As [`served`], with `main_args` for the main node and `node_extra` for NDAS's `[node]`.
pub async fn served_with(main_args: &[String], node_extra: &str) -> Served {
    served_on(Kind::Core, main_args, node_extra).await
}

/// As [`served_with`], on a pair of `kind`.
pub async fn served_on(kind: Kind, main_args: &[String], node_extra: &str) -> Served {
    let pair = match kind {
        Kind::Core => RegtestPair::start_with(main_args).await,
        Kind::Sv => RegtestPair::start_sv_with(main_args).await,
    };
    let payout = pair.new_address().await;
    let dir = super::temp_dir();
    let ports = (free_port(), free_port());
    let config = dir.path().join("ndas.toml");
    std::fs::write(
        &config,
        config_text(
            dir.path(),
            &pair,
            &payout,
            ports,
            2.5e-10,
            "/NDAS/",
            node_extra,
        ),
    )
    .unwrap();
    let log = dir.path().join("ndas.log");
    let child = serve(&config, &log);
    wait_for_log(&log, "new job").await;
    Served {
        pair,
        payout,
        dir,
        ports,
        config,
        log,
        child,
    }
}

/// A memory figure of process `pid` (`VmRSS`: now, `VmHWM`: its peak), in
/// bytes, from `/proc/<pid>/status`.
pub fn memory_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    kib << 10
}

/// The `ndas` binary Cargo built for the integration test running now: a
/// test's own executable is `target/<profile>/deps/<test>-<hash>`, and
/// Cargo builds the package's binary beside `deps/` before its tests.
pub fn ndas_binary() -> std::path::PathBuf {
    let test = std::env::current_exe().expect("the running test's path");
    let profile = test
        .parent()
        .and_then(std::path::Path::parent)
        .expect("tests run from target/<profile>/deps");
    let binary = profile.join(format!("ndas{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} is missing: run the tests with cargo test, which builds it",
        binary.display()
    );
    binary
}
