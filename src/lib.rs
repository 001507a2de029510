//! NDAS: a Stratum V1 pool-proxy for Bitcoin ASIC fleets.
//!
//! The pipeline: node (UTEK backend) → template → job → session → share →
//! block → node. [`start`] runs it all and hands back the bound addresses, so
//! tests start a server on port 0.

pub mod blocks;
pub mod config;

pub mod history;
pub mod http;
mod lifecycle;
pub mod metrics;
pub mod node;
pub mod notify;
pub mod server;
pub mod session;
pub mod stats;
pub mod work;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use blocks::{Journal, Submitter};
use config::Config;
use ndas_core::work::{ExtranonceAllocator, JobConfig};
use node::watcher::WatcherConfig;
use session::connection::ConnectionContext;
use stats::Stats;
use work::JobManager;

pub use lifecycle::{session_config, Running, StartError};

/// Version bits miners may roll (BIP310's recommended general-purpose mask).
pub const VERSION_ROLLING_MASK: u32 = ndas_core::chain::header::BIP320_MASK;

/// How often the notification targets hear how many workers are offline.
const WORKERS_WATCH_EVERY: Duration = Duration::from_secs(60);

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let error = |source| StartError::Listen { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    Ok((listener, local))
}

/// Validates `config`, checks the licence, takes the instance lock, binds the
/// stratum and metrics ports, and starts the watcher, submitter and listeners.
pub async fn start(config: Config) -> Result<Running, StartError> {
    config.validate()?;
    let token = config.metrics.load_token()?;
    let mut endpoints = Vec::new();
    for (key, entry) in config.node.entries() {
        let endpoint =
            node::endpoint(entry, config.network).map_err(|source| StartError::Node {
                key,
                name: entry.name.clone(),
                source,
            })?;
        endpoints.push((entry, endpoint));
    }
    let data_error = |source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    };
    let journal = Journal::open(&config.data_dir).map_err(data_error)?;
    let lock = lifecycle::lock_instance(&config.data_dir, config.instance_id)?;
    // For display only: mining never waits on it. A file that cannot be
    // opened (a full disk, a newer schema) is left alone and logged.
    let history = match history::History::open(&config.data_dir, config.stratum.worker_cap()) {
        Ok(history) => Some(Arc::new(history)),
        Err(error) => {
            tracing::error!(%error, file = %config.data_dir.join("history.redb").display(), "history unavailable; mining goes on without it");
            None
        }
    };
    let first_job_id = ndas_core::work::job::first_job_id(std::time::SystemTime::now());
    let fixed = config.mining.fixed_payout(config.network);
    let job_config = JobConfig {
        payout_script: Vec::new(),
        coinbase_tag: config.mining.coinbase_tag.clone().into_bytes(),
        extranonce2_size: config.stratum.extranonce2_size,
        splits: config.mining.splits(config.network),
    };
    let by_username = config.mining.payout_mode == config::PayoutMode::Username;
    let manager = JobManager::new(
        job_config,
        first_job_id,
        ndas_core::work::groups::Payouts {
            fixed,
            by_username: by_username.then_some(config.network),
            max_groups: config.mining.max_payout_groups,
            max_new_per_source: config.mining.max_new_payout_groups_per_ip,
        },
    );
    let mut listeners = Vec::new();
    for port in config.ports() {
        let (listener, addr) = bind(port.listen).await?;
        listeners.push((
            listener,
            config::Port {
                listen: addr,
                ..port
            },
        ));
    }
    let (http_listener, metrics_addr) = bind(config.metrics.listen).await?;

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let stats = Arc::new(Stats::with_max_workers(
        Arc::new(metrics::Metrics::new()),
        config.stratum.worker_cap(),
    ));
    stats.set_offline_after(config.stratum.offline_after_share_intervals);
    stats.set_payouts(manager.clone());
    // First, so that nothing the start does goes untold.
    stats.set_notify(notify::start(
        &config.notify,
        stats.metrics.clone(),
        shutdown.clone(),
        &tasks,
    ));
    let mut list = Vec::new();
    for (index, (entry, endpoint)) in endpoints.iter().enumerate() {
        let rpc = node::RpcClient::new(endpoint, Duration::from_secs_f64(entry.timeout_seconds))?
            .with_observer(stats.metrics.clone())
            .with_max_response(entry.max_response_bytes);
        list.push(Arc::new(node::nodes::Node::new(
            entry.name.clone(),
            index,
            Arc::new(rpc),
            Duration::from_millis(entry.poll_interval_ms),
        )));
    }
    // A node on another chain, or a signet NDAS cannot sign for, is refused
    // now when it answers; the watcher checks again whenever it returns. A
    // node that hangs delays the start by two seconds at most (all nodes at
    // once), not a whole RPC timeout with miners waiting in the listen backlog.
    let checks = list.iter().map(|node| async {
        let start_check = node.rpc.timeout().min(Duration::from_secs(2));
        (
            node.name.clone(),
            node::chain::check(&node.rpc, config.network, start_check).await,
        )
    });
    for (name, check) in futures_util::future::join_all(checks).await {
        if let Err(node::chain::ChainCheckError::Mismatch(mismatch)) = check {
            return Err(StartError::Chain { name, mismatch });
        }
    }
    let nodes = node::nodes::Nodes::new(list, stats.clone());
    let wake = Arc::new(Notify::new());
    // A journal that cannot be read stops the start: starting as if no
    // block were pending could lose one for good.
    let pending = {
        let journal = journal.clone();
        tokio::task::spawn_blocking(move || journal.recover())
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|source| StartError::Journal {
                path: config
                    .data_dir
                    .join("blocks/found.log")
                    .display()
                    .to_string(),
                source,
            })?
    };
    let triage = Arc::new(blocks::BlockTriage::new(blocks::triage::Bounds {
        siblings_per_parent: config.blocks.siblings_per_parent,
        kept_bytes: config.blocks.max_kept_bytes,
    }));
    let (blocks, prepared) =
        blocks::start_journal_thread(journal.clone(), triage.clone(), stats.metrics.clone())
            .map_err(StartError::JournalThread)?;
    let refresh = Duration::from_secs(config.mining.job_refresh_seconds);
    let (refresh_tx, refresh_rx) = watch::channel(refresh);

    let watcher = WatcherConfig {
        network: config.network,
        refresh: refresh_rx,
        poll: Duration::from_millis(config.node.poll_interval_ms),
        longpoll_timeout: Duration::from_secs(300),
    };
    let template_jobs = manager.templates();
    let zmq_jobs = manager.templates();
    tasks.spawn(node::watcher::run(
        nodes.clone(),
        manager.clone(),
        wake.clone(),
        watcher,
        stats.clone(),
        shutdown.clone(),
    ));
    for (node, (entry, _)) in nodes.list.iter().zip(&endpoints) {
        if let Some(endpoint) = entry.zmq_hashblock.clone() {
            tasks.spawn(node::zmq::run(
                nodes.clone(),
                node.clone(),
                endpoint,
                wake.clone(),
                stats.clone(),
                zmq_jobs.clone(),
                shutdown.clone(),
            ));
        }
    }
    let submitter = Submitter {
        nodes,
        journal: journal.clone(),
        wake,
        stats: stats.clone(),
        // Two waits of at most 40 % of the grace each: blocks from
        // connections still closing, then submissions in flight.
        drain: config.blocks.grace().mul_f64(0.4),
        jobs: template_jobs,
        gates: (0..config.node.entries().count())
            .map(|_| blocks::gate::SubmitGate::new(blocks::gate::SUBMITS_IN_FLIGHT))
            .collect(),
        deliveries: (0..config.node.entries().count())
            .map(|_| blocks::NodeDeliveries::default())
            .collect(),
        triage,
        settling: tokio::sync::RwLock::new(false),
    };
    tasks.spawn(submitter.run(pending, prepared, shutdown.clone()));

    let extranonces = Arc::new(ExtranonceAllocator::new(config.instance_id));
    let resumptions = Arc::new(
        session::Resumptions::new(
            extranonces.clone(),
            Duration::from_secs_f64(config.stratum.resume_seconds),
        )
        .with_max_bytes(config.stratum.resume_max_bytes)
        .reporting({
            let sessions = stats.metrics.payouts.parked_sessions.clone();
            let bytes = stats.metrics.payouts.parked_bytes.clone();
            move |parked, held| {
                sessions.set(parked as i64);
                bytes.set(held as i64);
            }
        }),
    );
    let admission = server::Admission::new(server::Bounds {
        max_connections: config.stratum.max_connections,
        max_per_ip: config.stratum.max_connections_per_ip,
        max_handshaking: config.stratum.handshaking_cap(),
        accepts_per_second: config.stratum.accept_rate(),
        ban_after_drops: config.stratum.ban_after_drops,
        ban_for: Duration::from_secs_f64(config.stratum.ban_seconds),
    });
    // One listener per port; the bounds, extranonce1s and parked sessions
    // are shared, so a miner may come back on another port.
    let mut ports = Vec::new();
    for (listener, port) in listeners {
        let (session_tx, session_rx) = watch::channel(Arc::new(session_config(&config, &port)));
        let context = ConnectionContext {
            payouts: manager.clone(),
            blocks: blocks.clone(),
            config: session_rx,
            shutdown: shutdown.clone(),
            max_line_bytes: config.stratum.max_line_bytes,
            write_timeout: Duration::from_secs_f64(config.stratum.write_timeout_seconds),
            max_lines_per_second: config.stratum.max_lines_per_second,
            handshake_timeout: Duration::from_secs_f64(config.stratum.handshake_timeout_seconds),
            idle_timeout: Duration::from_secs_f64(config.stratum.idle_timeout_seconds),
            max_invalid_shares: config.stratum.max_invalid_shares,
            carried_strikes: 0,
            stats: stats.clone(),
            port: stats.metrics.port(&port.name),
        };
        tasks.spawn(server::accept_loop(
            listener,
            extranonces.clone(),
            resumptions.clone(),
            admission.clone(),
            context,
            tasks.clone(),
        ));
        ports.push((port, session_tx));
    }
    stats.set_ports(ports.iter().map(|(port, _)| port.clone()).collect());
    stats
        .listening
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let m = &config.metrics;
    if token.is_none() && !metrics_addr.ip().is_loopback() {
        tracing::warn!(
            %metrics_addr,
            "the operator port is reachable from the network and has no metrics.token: anyone who reaches it reads /api/* and the status page"
        );
    }
    let http = Arc::new(http::HttpContext {
        stats: stats.clone(),
        max_template_age: refresh * 3 + Duration::from_secs(10),
        guard: http::Guard::new(token, m.token_protects_metrics, m.requests_per_second),
        max_connections: m.max_connections,
        timeout: Duration::from_secs_f64(m.timeout_seconds),
        open: std::sync::atomic::AtomicUsize::new(0),
        working: http::answer_threads(),
        history: history.clone(),
    });
    tasks.spawn(http::serve(
        http_listener,
        http,
        shutdown.clone(),
        tasks.clone(),
    ));
    tasks.spawn(lifecycle::prune_workers(stats.clone(), shutdown.clone()));
    if let Some(history) = history {
        tasks.spawn(history::run(history, stats.clone(), shutdown.clone()));
    }
    if stats.notifies("workers_offline") {
        tasks.spawn(lifecycle::watch_workers(
            stats.clone(),
            WORKERS_WATCH_EVERY,
            shutdown.clone(),
        ));
    }
    let stratum_addr = ports[0].0.listen;
    for (port, _) in &ports[1..] {
        tracing::info!(port = %port.name, addr = %port.listen, start = port.start, min = port.min, "stratum port");
    }
    tracing::info!(
        %stratum_addr,
        %metrics_addr,
        network = %config.network,
        nodes = %endpoints
            .iter()
            .map(|(entry, e)| format!("{} {}:{}", entry.name, e.host, e.port))
            .collect::<Vec<_>>()
            .join(", "),
        "NDAS serving"
    );
    Ok(Running::new(lifecycle::Parts {
        metrics_addr,
        shutdown,
        tasks,
        stats,
        config,
        refresh: refresh_tx,
        ports,
        lock,
        journal,
    }))
}
