//! A running NDAS: its addresses, the instance lock, live reload and shutdown.

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, Port};
use crate::session::SessionConfig;
use crate::stats::Stats;
use ndas_core::vardiff::VardiffConfig;

/// Why NDAS could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("node access ({key}, node {name:?}): {source}")]
    Node {
        key: String,
        name: String,
        source: crate::node::EndpointError,
    },
    #[error("node client: {0}")]
    Rpc(#[from] crate::node::RpcError),
    #[error("refusing node {name:?}: {mismatch}")]
    Chain {
        name: String,
        mismatch: crate::node::chain_check::ChainMismatch,
    },
    #[error("cannot use data_dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("another NDAS already runs on data_dir (lock {path} is held, by instance_id {holder}); give each instance its own data_dir")]
    Locked { holder: String, path: String },
    #[error(transparent)]
    Token(#[from] crate::config::TokenError),
    #[error("cannot read the block journal {path}: {source}. NDAS will not start as if no block were pending: fix the disk or the file's permissions and start again; a damaged log is kept beside it as found.log.damaged-*, and its readable records are carried over once it can be written")]
    Journal {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot start the block journal thread: {0}")]
    JournalThread(std::io::Error),
    #[error("stratum port {port}: {source}")]
    Tls {
        port: String,
        source: crate::tls::TlsError,
    },
    #[error("the Stratum V2 authority key: {0}")]
    Sv2Key(#[from] crate::sv2::keys::KeyError),
    #[error(transparent)]
    Fleet(#[from] crate::history::fleet::FleetError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Takes `data_dir/ndas.lock`, whatever the instance id: one journal, one
/// writer. Held until the process ends; it names the holder's instance id.
pub(crate) fn lock_instance(data_dir: &Path, instance_id: u8) -> Result<File, StartError> {
    use std::io::{Read, Seek, Write};
    let path = data_dir.join("ndas.lock");
    let shown = path.display().to_string();
    let data_error = |source| StartError::DataDir {
        path: shown.clone(),
        source,
    };
    let mut file = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(data_error)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).map_err(data_error)?;
            file.rewind().map_err(data_error)?;
            writeln!(file, "{instance_id}").map_err(data_error)?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            Err(StartError::Locked {
                holder: if holder.is_empty() {
                    "?".into()
                } else {
                    holder.into()
                },
                path: shown,
            })
        }
        Err(std::fs::TryLockError::Error(source)) => Err(StartError::DataDir {
            path: shown,
            source,
        }),
    }
}

/// The session settings that follow from `config` for `port`.
pub fn session_config(config: &Config, port: &Port) -> SessionConfig {
    let d = &config.difficulty;
    SessionConfig {
        extranonce2_size: config.stratum.extranonce2_size,
        version_mask: ndas_core::chain::header::BIP320_MASK,
        vardiff: VardiffConfig {
            start: port.start,
            min: port.min,
            max: port.max,
            target_share_seconds: d.target_share_seconds,
            rounding: d.rounding,
        },
        agents: d.agents.clone(),
    }
}

/// Forgets workers gone for a day, every ten minutes.
pub(crate) async fn prune_workers(stats: Arc<Stats>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => stats.prune_workers(Duration::from_secs(86_400)),
        }
    }
}

/// Tells the notification targets how many workers are offline, each
/// `every` (they decide against their own thresholds whether that is news).
pub(crate) async fn watch_workers(
    stats: Arc<Stats>,
    notifications: crate::notifications::Sink,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // The count walks every worker at most every 10 s: off the runtime's threads.
        let counting = stats.clone();
        if let Ok((online, offline)) =
            tokio::task::spawn_blocking(move || counting.worker_states()).await
        {
            notifications.send(crate::notifications::Notice::Workers { online, offline });
        }
    }
}

pub(crate) struct Parts {
    pub metrics_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    pub stats: Arc<Stats>,
    pub config: Config,
    pub refresh: watch::Sender<Duration>,
    /// Each port as bound, with its sessions' settings; `stratum.listen` first.
    pub ports: Vec<(Port, watch::Sender<Arc<SessionConfig>>)>,
    /// Each TLS port's certificate, by port name, read again on reload.
    pub tls: Vec<(String, Arc<crate::tls::Tls>)>,
    pub lock: File,
    pub journal: crate::blocks::Journal,
}

/// A running NDAS.
pub struct Running {
    parts: Parts,
}

impl Running {
    pub(crate) fn new(parts: Parts) -> Running {
        Running { parts }
    }

    /// Where miners connect (the real port when configured with port 0).
    pub fn stratum_addr(&self) -> SocketAddr {
        self.parts.ports[0].0.listen
    }

    /// Where the port named `name` listens, if there is one.
    pub fn port_addr(&self, name: &str) -> Option<SocketAddr> {
        let mut ports = self.parts.ports.iter().map(|(port, _)| port);
        ports.find(|port| port.name == name).map(|port| port.listen)
    }

    /// Where `/metrics`, `/healthz`, `/readyz` and `/api/*` are served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.parts.metrics_addr
    }

    /// Pool-wide figures and the Prometheus registry.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.parts.stats
    }

    /// The found-block journal, to count what is still unsettled after shutdown.
    pub fn journal(&self) -> &crate::blocks::Journal {
        &self.parts.journal
    }

    /// The token that stops everything when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.parts.shutdown.clone()
    }

    /// Applies what can change live from `new` (difficulty bounds and the job
    /// refresh interval); returns a line per change, and per key that needs a
    /// restart. The log level is the caller's: it owns the subscriber.
    pub fn reload(&mut self, new: Config) -> Vec<String> {
        let old = &self.parts.config;
        let mut said = Vec::new();
        let (a, b) = (&old.difficulty, &new.difficulty);
        for (key, before, after) in [
            ("difficulty.start", a.start, b.start),
            ("difficulty.min", a.min, b.min),
            ("difficulty.max", a.max, b.max),
            (
                "difficulty.target_share_seconds",
                a.target_share_seconds,
                b.target_share_seconds,
            ),
        ] {
            if before != after {
                said.push(format!("{key}: {before} -> {after}"));
            }
        }
        if a.rounding != b.rounding {
            said.push(format!(
                "difficulty.rounding: {:?} -> {:?}",
                a.rounding, b.rounding
            ));
        }
        if old.mining.job_refresh_seconds != new.mining.job_refresh_seconds {
            said.push(format!(
                "mining.job_refresh_seconds: {} -> {}",
                old.mining.job_refresh_seconds, new.mining.job_refresh_seconds
            ));
            self.parts
                .refresh
                .send_replace(Duration::from_secs(new.mining.job_refresh_seconds));
        }
        let (was, now) = (
            old.stratum.offline_after_share_intervals,
            new.stratum.offline_after_share_intervals,
        );
        if was != now {
            said.push(format!(
                "stratum.offline_after_share_intervals: {was} -> {now}"
            ));
            self.parts.stats.set_offline_after(now);
        }
        for (name, tls) in &self.parts.tls {
            match tls.reload() {
                Ok(()) => said.push(format!("stratum.ports {name}: certificate read again")),
                Err(error) => said.push(format!(
                    "stratum.ports {name}: {error}; the certificate served before stays"
                )),
            }
        }
        for (key, changed) in restart_keys(old, &new) {
            if changed {
                said.push(format!("{key} changed in the file; restart to apply it"));
            }
        }
        let mut effective = old.clone();
        if same_ports(old, &new) {
            effective.stratum.ports = new.stratum.ports;
        }
        effective.difficulty = new.difficulty;
        effective.mining.job_refresh_seconds = new.mining.job_refresh_seconds;
        effective.stratum.offline_after_share_intervals = now;
        effective.log = new.log;
        let now_served = effective.ports();
        for ((port, sender), wanted) in self.parts.ports.iter_mut().zip(&now_served) {
            if (port.start, port.min, port.max) != (wanted.start, wanted.min, wanted.max) {
                if port.name != effective.stratum.name {
                    said.push(format!(
                        "stratum.ports {}: start {} min {} max {} -> start {} min {} max {}",
                        port.name,
                        port.start,
                        port.min,
                        port.max,
                        wanted.start,
                        wanted.min,
                        wanted.max
                    ));
                }
                (port.start, port.min, port.max) = (wanted.start, wanted.min, wanted.max);
            }
            // Wake every connection only when its settings really changed.
            let sessions = session_config(&effective, port);
            sender.send_if_modified(|current| {
                let changed = **current != sessions;
                if changed {
                    *current = Arc::new(sessions);
                }
                changed
            });
        }
        if old.difficulty.agents != effective.difficulty.agents {
            said.push("difficulty.agents changed (new connections)".into());
        }
        self.parts.stats.set_ports(
            self.parts
                .ports
                .iter()
                .map(|(port, _)| port.clone())
                .collect(),
        );
        self.parts.config = effective;
        said
    }

    /// Tells miners to reconnect, submits blocks in flight, and waits for every task.
    pub async fn shutdown(self) {
        self.parts.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the token is cancelled, then for every task, at most
    /// 90 % of `blocks.shutdown_grace_seconds` (the rest is the caller's,
    /// to log and exit).
    pub async fn wait(self) {
        self.parts.shutdown.cancelled().await;
        self.parts.stats.listening.store(false, Ordering::Relaxed);
        self.parts.tasks.close();
        let grace = self.parts.config.blocks.grace().mul_f64(0.9);
        if tokio::time::timeout(grace, self.parts.tasks.wait())
            .await
            .is_err()
        {
            tracing::error!(?grace, "shutdown grace period over; exiting with tasks still running (pending blocks stay in the journal for the next start)");
        }
        drop(self.parts.lock);
    }
}

/// Whether both configs declare the same ports at the same addresses (their
/// difficulties may differ: those apply live).
fn same_ports(old: &Config, new: &Config) -> bool {
    let shape = |c: &Config| -> Vec<_> {
        c.stratum
            .ports
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.listen,
                    p.tls_cert.clone(),
                    p.tls_key.clone(),
                )
            })
            .collect()
    };
    shape(old) == shape(new)
}

/// `stratum` less what other keys report: its ports, name and address.
fn without_ports(config: &Config) -> crate::config::StratumConfig {
    let mut stratum = config.stratum.clone();
    stratum.ports.clear();
    stratum.name.clear();
    stratum.listen = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    // Live on SIGHUP.
    stratum.offline_after_share_intervals = 0.0;
    stratum
}

/// Keys that only take effect at start, and whether each differs.
/// `[mining]`'s keys of who gets paid, but the address itself.
fn payout_keys(config: &Config) -> crate::config::MiningConfig {
    crate::config::MiningConfig {
        payout_address: String::new(),
        coinbase_tag: String::new(),
        job_refresh_seconds: 0,
        ..config.mining.clone()
    }
}

fn restart_keys(old: &Config, new: &Config) -> Vec<(&'static str, bool)> {
    vec![
        ("network", old.network != new.network),
        ("notify", old.notify != new.notify),
        ("instance_id", old.instance_id != new.instance_id),
        ("data_dir", old.data_dir != new.data_dir),
        ("stratum.listen", old.stratum.listen != new.stratum.listen),
        (
            "stratum.extranonce2_size",
            old.stratum.extranonce2_size != new.stratum.extranonce2_size,
        ),
        (
            "stratum.max_line_bytes",
            old.stratum.max_line_bytes != new.stratum.max_line_bytes,
        ),
        (
            "stratum.ports (names, addresses or TLS files; their difficulties wait for it too)",
            !same_ports(old, new),
        ),
        ("stratum.name", old.stratum.name != new.stratum.name),
        (
            "stratum limits",
            format!("{:?}", without_ports(old)) != format!("{:?}", without_ports(new)),
        ),
        (
            "mining.payout_address",
            old.mining.payout_address != new.mining.payout_address,
        ),
        (
            "mining.coinbase_tag",
            old.mining.coinbase_tag != new.mining.coinbase_tag,
        ),
        (
            "mining payouts (payout_mode, username_fallback, max_payout_groups, max_new_payout_groups_per_ip, split, block_reserved_weight)",
            format!("{:?}", payout_keys(old)) != format!("{:?}", payout_keys(new)),
        ),
        ("metrics.listen", old.metrics.listen != new.metrics.listen),
        (
            "metrics (token and bounds)",
            format!("{:?}", old.metrics) != format!("{:?}", new.metrics)
                || old.metrics.token.as_ref().map(|t| t.expose())
                    != new.metrics.token.as_ref().map(|t| t.expose()),
        ),
        ("log.format", old.log.format != new.log.format),
        ("blocks", old.blocks != new.blocks),
        (
            "node",
            format!("{:?}", old.node) != format!("{:?}", new.node),
        ),
        ("upstream", old.upstream != new.upstream),
        ("route", old.route != new.route),
    ]
}
