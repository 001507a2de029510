//! NDAS: a Stratum V1 pool-proxy for Bitcoin ASIC fleets.
//!
//! The pipeline: node (UTEK backend) → template → job → session → share →
//! block → node. [`start`] runs it all and hands back the bound address, so
//! tests start a server on port 0.

pub mod chain;
pub mod config;
pub mod miner;
pub mod node;
pub mod server;
pub mod session;
pub mod stats;
pub mod stratum;
pub mod work;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use config::Config;
use node::submitter::{Journal, Submitter};
use node::watcher::WatcherConfig;
use session::connection::ConnectionContext;
use session::vardiff::VardiffConfig;
use session::SessionConfig;
use stats::Stats;
use work::{ExtranonceAllocator, JobConfig, JobManager};

/// Version bits miners may roll (BIP310's recommended general-purpose mask).
pub const VERSION_ROLLING_MASK: u32 = 0x1fff_e000;

/// Why NDAS could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("node access: {0}")]
    Node(#[from] node::EndpointError),
    #[error("node client: {0}")]
    Rpc(#[from] node::RpcError),
    #[error("cannot use data_dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen for miners on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running NDAS.
pub struct Running {
    stratum_addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    stats: Arc<Stats>,
}

impl Running {
    /// Where miners connect (the real port when configured with port 0).
    pub fn stratum_addr(&self) -> SocketAddr {
        self.stratum_addr
    }

    /// Pool-wide counts.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The token that stops everything when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Tells miners to reconnect, submits blocks in flight, and waits for every task.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until every task has ended (after the token is cancelled).
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Validates `config`, checks the licence, binds the stratum port and starts
/// the watcher, submitter and listener.
pub async fn start(config: Config) -> Result<Running, StartError> {
    config.validate()?;
    let endpoint = node::endpoint(&config.node, config.network)?;
    let timeout = Duration::from_secs_f64(config.node.timeout_seconds);
    let rpc = Arc::new(node::RpcClient::new(&endpoint, timeout)?);
    let journal = Journal::open(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let payout_script =
        chain::address::payout_script(&config.mining.payout_address, config.network)
            .expect("validate() checked the payout address");
    let first_job_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_secs() << 8);
    let job_config = JobConfig {
        payout_script,
        coinbase_tag: config.mining.coinbase_tag.clone().into_bytes(),
        extranonce2_size: config.stratum.extranonce2_size,
    };
    let (manager, jobs) = JobManager::new(job_config, first_job_id);
    let listener = TcpListener::bind(config.stratum.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.stratum.listen,
            source,
        })?;
    let stratum_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.stratum.listen,
        source,
    })?;

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let stats = Arc::new(Stats::default());
    let wake = Arc::new(Notify::new());
    let (blocks, found) = mpsc::unbounded_channel();

    tasks.spawn(node::watcher::run(
        rpc.clone(),
        manager,
        wake.clone(),
        WatcherConfig {
            network: config.network,
            refresh: Duration::from_secs(config.mining.job_refresh_seconds),
            poll: Duration::from_millis(config.node.poll_interval_ms),
            longpoll_timeout: Duration::from_secs(300),
        },
        stats.clone(),
        shutdown.clone(),
    ));
    if let Some(endpoint) = config.node.zmq_hashblock.clone() {
        tasks.spawn(node::zmq::run(
            endpoint,
            wake.clone(),
            stats.clone(),
            shutdown.clone(),
        ));
    }
    let submitter = Submitter {
        rpc,
        journal,
        wake,
        stats: stats.clone(),
        drain: Duration::from_secs(10),
    };
    tasks.spawn(submitter.run(found, shutdown.clone()));

    let d = &config.difficulty;
    let session_config = Arc::new(SessionConfig {
        extranonce2_size: config.stratum.extranonce2_size,
        version_mask: VERSION_ROLLING_MASK,
        vardiff: VardiffConfig {
            start: d.start,
            min: d.min,
            max: d.max,
            target_share_seconds: d.target_share_seconds,
        },
    });
    let context = ConnectionContext {
        jobs,
        blocks,
        shutdown: shutdown.clone(),
        max_line_bytes: config.stratum.max_line_bytes,
        write_timeout: Duration::from_secs(10),
        stats: stats.clone(),
    };
    tasks.spawn(server::accept_loop(
        listener,
        session_config,
        Arc::new(ExtranonceAllocator::new(config.instance_id)),
        context,
        tasks.clone(),
    ));
    tracing::info!(%stratum_addr, network = %config.network, node = %format!("{}:{}", endpoint.host, endpoint.port), "NDAS serving");
    Ok(Running {
        stratum_addr,
        shutdown,
        tasks,
        stats,
    })
}
