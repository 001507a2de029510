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
pub mod notifications;
pub mod server;
pub mod session;
mod stages;
pub mod stats;
pub mod sv2;
pub mod tls;
pub mod upstream;
pub mod work;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use blocks::Journal;
use config::Config;
use ndas_core::events::Events;
use stats::Stats;

pub use lifecycle::{session_config, Running, StartError};

/// Version bits miners may roll (BIP310's recommended general-purpose mask).
pub const VERSION_ROLLING_MASK: u32 = ndas_core::chain::header::BIP320_MASK;

/// Validates `config`, checks the licence, takes the instance lock, binds the
/// stratum and metrics ports, and starts the watcher, submitter and listeners.
pub async fn start(config: Config) -> Result<Running, StartError> {
    config.validate()?;
    let token = config.metrics.load_token()?;
    let endpoints = stages::node_endpoints(&config)?;
    let data_error = |source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    };
    let journal = Journal::open(&config.data_dir).map_err(data_error)?;
    let lock = lifecycle::lock_instance(&config.data_dir, config.instance_id)?;
    let history = stages::open_history(&config);
    let fleet = history::fleet::Fleet::open(&config)?;
    let manager = stages::job_manager(&config);
    let listeners = stages::bind_ports(&config).await?;
    let (http_listener, metrics_addr) = stages::bind(config.metrics.listen).await?;

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let metrics = Arc::new(metrics::Metrics::new());
    let stats = Arc::new(Stats::with_max_workers(
        metrics.clone(),
        config.stratum.worker_cap(),
    ));
    stats.set_offline_after(config.stratum.offline_after_share_intervals);
    let notifications =
        notifications::start(&config.notify, metrics.clone(), shutdown.clone(), &tasks);
    // The read models, before any stage: nothing the start does goes untold.
    let mut models: Vec<Arc<dyn ndas_core::events::ReadModel>> = vec![
        metrics.clone(),
        stats.clone(),
        Arc::new(notifications::Notifier::new(notifications.clone())),
    ];
    if let Some(fleet) = &fleet {
        models.push(fleet.collector.clone());
    }
    let events = Events::new(models);
    let nodes = stages::connect_nodes(&config, &endpoints, &events, &metrics).await?;
    let wake = Arc::new(Notify::new());
    let pending = stages::recover_journal(&journal, &config).await?;
    let triage = Arc::new(blocks::BlockTriage::new(blocks::triage::Bounds {
        siblings_per_parent: config.blocks.siblings_per_parent,
        kept_bytes: config.blocks.max_kept_bytes,
    }));
    let (blocks, prepared) =
        blocks::start_journal_thread(journal.clone(), triage.clone(), events.clone())
            .map_err(StartError::JournalThread)?;
    let refresh = Duration::from_secs(config.mining.job_refresh_seconds);
    let (refresh_tx, refresh_rx) = watch::channel(refresh);
    let stage = stages::Stage {
        events: &events,
        stats: &stats,
        notifications: &notifications,
        shutdown: &shutdown,
        tasks: &tasks,
    };
    let (pools, forwarders) = stage.upstream_side(&config, &manager);
    stage.node_side(
        &config,
        &nodes,
        &endpoints,
        &manager,
        (&wake, refresh_rx),
        pools,
    );
    let submitter = stages::submitter(&config, nodes, &journal, wake, &events, &manager, triage);
    tasks.spawn(submitter.run(pending, prepared, shutdown.clone()));
    let tls = listeners
        .iter()
        .filter_map(|bound| Some((bound.port.name.clone(), bound.tls.clone()?)))
        .collect();
    let ports = stage.stratum(&config, listeners, &manager, &blocks, forwarders);
    stats.set_ports(ports.iter().map(|(port, _)| port.clone()).collect());
    stats
        .listening
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let operator = stages::Operator {
        listener: http_listener,
        addr: metrics_addr,
        token,
        max_template_age: refresh * 3 + Duration::from_secs(10),
        history,
        fleet,
        manager: &manager,
    };
    stage.operator_side(&config, operator);
    stages::log_serving(&config, &ports, metrics_addr, &endpoints);
    Ok(Running::new(lifecycle::Parts {
        metrics_addr,
        shutdown,
        tasks,
        stats,
        config,
        refresh: refresh_tx,
        ports,
        tls,
        lock,
        journal,
    }))
}
