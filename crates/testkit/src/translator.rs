//! The Stratum Reference Implementation's translator (`translator_sv2`
//! 0.6.0, an SV1 -> SV2 proxy) as a process on 127.0.0.1: SV1 miners connect
//! to it, and it speaks SV2 to the pool under test.
//!
//! The binary is built once per machine by `scripts/install-translator.sh`
//! (without its monitoring server). Each [`Translator`] has a temporary
//! folder with its TOML config and its log (stdout and stderr together, so
//! a config error, which it prints before its logging starts, is there too),
//! and is stopped by PID when dropped.
//!
//! Two things about 0.6.0 shape this wrapper: it opens its SV1 port only
//! after its SV2 upstream has answered (so [`Translator::start`] returns once
//! the pool took it), and it exits with status 1 when the upstream refuses
//! three tries, one second apart (so a missing pool shows as an exit, not a
//! hang). Its config: `src/lib/config.rs` of the crate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::node::free_port;

/// The translator's version, as `scripts/install-translator.sh` pins it.
pub const VERSION: &str = "0.6.0";

/// Where `scripts/install-translator.sh` caches it, under `$HOME` (keep in step).
const CACHE_DIR: &str = ".cache/ndas/translator_sv2-0.6.0";

/// How long the translator gets to listen, to exit, or to log a line.
pub const WAIT: Duration = Duration::from_secs(30);

/// The log lines a failure message quotes.
const TAIL_LINES: usize = 40;

/// The `translator_sv2` binary: `$TRANSLATOR_SV2`, else where
/// `scripts/install-translator.sh` puts it (`$TRANSLATOR_SV2_DIR/bin`, by
/// default under `~/.cache/ndas`). A missing binary fails the test: a test
/// that needs the translator never skips.
pub fn translator_bin() -> PathBuf {
    let path = match std::env::var_os("TRANSLATOR_SV2") {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("TRANSLATOR_SV2_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(CACHE_DIR))
            .join("bin/translator_sv2"),
    };
    assert!(
        path.is_file(),
        "translator_sv2 {VERSION} missing at {}: run scripts/install-translator.sh",
        path.display()
    );
    path
}

/// What a test chooses about a translator; the rest of its config is fixed.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The SV2 pool it connects to.
    pub upstream: SocketAddr,
    /// The pool's authority public key, base58check (51 characters): the
    /// translator checks the pool's Noise handshake against it.
    pub authority_pubkey: String,
    /// The account it opens channels as; each miner's channel is named
    /// `<user_identity>.miner<n>` unless it starts with `sri/`.
    pub user_identity: String,
    /// The extranonce2 bytes each SV1 miner rolls (2 to 8 for cgminer-likes).
    pub extranonce2_size: u16,
    /// One upstream channel for all miners (true) or one per miner (false).
    pub aggregate_channels: bool,
    /// The weakest miner's hashes per second: sets the first SV1 difficulty.
    pub min_hashrate: f64,
    /// The share rate its vardiff aims at, and the first difficulty's rate.
    pub shares_per_minute: f64,
    /// Whether the translator adjusts difficulty itself (false: the pool does).
    pub enable_vardiff: bool,
}

impl Settings {
    /// One channel per miner, no vardiff of its own, a first difficulty for
    /// a 10 MH/s miner at 6 shares a minute.
    pub fn new(
        upstream: SocketAddr,
        authority_pubkey: &str,
        user_identity: &str,
        extranonce2_size: u16,
    ) -> Settings {
        Settings {
            upstream,
            authority_pubkey: authority_pubkey.to_string(),
            user_identity: user_identity.to_string(),
            extranonce2_size,
            aggregate_channels: false,
            min_hashrate: 10_000_000.0,
            shares_per_minute: 6.0,
            enable_vardiff: false,
        }
    }

    /// The TOML config with the SV1 port at 127.0.0.1:`downstream_port`.
    /// Every key of 0.6.0's `TranslatorConfig` that has no default is here;
    /// the optional monitoring keys are left out (the build has no monitor).
    pub fn toml(&self, downstream_port: u16) -> String {
        // `{:?}` keeps the decimal point that a TOML float needs.
        format!(
            r#"downstream_address = "127.0.0.1"
downstream_port = {downstream_port}
max_supported_version = 2
min_supported_version = 2
downstream_extranonce2_size = {extranonce2}
aggregate_channels = {aggregate}
verify_payout = false

[downstream_difficulty_config]
min_individual_miner_hashrate = {hashrate:?}
shares_per_minute = {spm:?}
enable_vardiff = {vardiff}
job_keepalive_interval_secs = 60

[[upstreams]]
address = "{host}"
port = {port}
authority_pubkey = "{pubkey}"
user_identity = "{identity}"
"#,
            extranonce2 = self.extranonce2_size,
            aggregate = self.aggregate_channels,
            hashrate = self.min_hashrate,
            spm = self.shares_per_minute,
            vardiff = self.enable_vardiff,
            host = self.upstream.ip(),
            port = self.upstream.port(),
            pubkey = self.authority_pubkey,
            identity = self.user_identity,
        )
    }
}

/// One running `translator_sv2`, killed by PID when dropped.
pub struct Translator {
    child: Child,
    addr: SocketAddr,
    config: PathBuf,
    log: PathBuf,
    _dir: TempDir,
}

impl Translator {
    /// A translator for the pool at `upstream`, with [`Settings::new`]'s
    /// defaults, once its SV1 port accepts connections. Panics, quoting its
    /// log, when it exits first (no pool there, or a config error) or
    /// [`WAIT`] runs out.
    pub async fn start(
        upstream: SocketAddr,
        authority_pubkey: &str,
        user_identity: &str,
        extranonce2_size: u16,
    ) -> Translator {
        let settings = Settings::new(upstream, authority_pubkey, user_identity, extranonce2_size);
        Translator::start_with(&settings).await
    }

    /// As [`Translator::start`], with `settings`.
    pub async fn start_with(settings: &Settings) -> Translator {
        let mut translator = Translator::spawn(settings);
        translator.ready().await;
        translator
    }

    /// The process, started without waiting for anything: for a test of
    /// how it fails.
    pub fn spawn(settings: &Settings) -> Translator {
        let dir = super::temp_dir();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = dir.path().join("translator.toml");
        std::fs::write(&config, settings.toml(addr.port())).unwrap();
        let log = dir.path().join("translator.log");
        let out = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let mut command = Command::new(translator_bin());
        // No `-f`: it would write each line to the file and to stdout again.
        command.arg("-c").arg(&config);
        // The config is the file alone: `TPROXY__*` variables would
        // override it (even stand in for a missing one), and RUST_LOG would
        // change what it logs.
        for (key, _) in std::env::vars_os() {
            if key
                .to_str()
                .is_some_and(|k| k.to_ascii_uppercase().starts_with("TPROXY__"))
            {
                command.env_remove(key);
            }
        }
        let child = command
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start translator_sv2");
        Translator {
            child,
            addr,
            config,
            log,
            _dir: dir,
        }
    }

    /// Waits until the SV1 port accepts a TCP connection. The probe shows
    /// in its log as a downstream that connects and leaves; it opens no
    /// channel (that takes an SV1 message), so miner numbers are unchanged.
    pub async fn ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "translator_sv2 exited ({status}) before listening on {}; its log ends:\n{}",
                    self.addr,
                    self.tail()
                );
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "translator_sv2 not listening on {} after {WAIT:?}; its log ends:\n{}",
                self.addr,
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The SV1 address miners connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file it was started with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The log file: its stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until a log line contains `what`; that line. Panics with the
    /// log's tail after [`WAIT`] or when the process has exited without it.
    pub async fn wait_for_log(&mut self, what: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            // Read the exit before the log: a line written just before
            // exiting is then never missed.
            let exited = self.child.try_wait().unwrap();
            if let Some(line) = self.log().lines().find(|l| l.contains(what)) {
                return line.to_string();
            }
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "no translator_sv2 log line with {what:?} ({}); its log ends:\n{}",
                exited.map_or("still running".to_string(), |s| s.to_string()),
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the process to exit by itself; its status. Panics with the
    /// log's tail after [`WAIT`].
    pub async fn exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "translator_sv2 still running after {WAIT:?}; its log ends:\n{}",
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The log's last lines, for failure messages.
    pub fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }
}

impl Drop for Translator {
    fn drop(&mut self) {
        // This child only, by its PID; reaped so no zombie outlives the test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
