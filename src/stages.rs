//! The stages [`crate::start`] wires together, each made from the config:
//! the nodes and the node side (watcher, job stage, ZMQ), the block
//! submitter, the stratum listeners and the operator's side. `start` reads
//! as the order they come up in; the details of each are here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blocks::{self, BlockSink, BlockTriage, Journal, JournalEntry, Submitter};
use crate::config::NodeConfig;
use crate::config::{self, Config, Port};
use crate::history::{self, History};
use crate::lifecycle::{self, StartError};
use crate::metrics::Metrics;
use crate::node::nodes::{Node, Nodes};
use crate::node::utek::NodeEndpoint;
use crate::node::watcher::WatcherConfig;
use crate::notifications::Sink;
use crate::session::connection::{ConnectionContext, ConnectionLimits};
use crate::stats::Stats;
use crate::tls::Tls;
use crate::work::{self, JobManager};
use crate::{http, node, server, session};
use ndas_core::events::{Events, PayoutEvent};
use ndas_core::work::groups::Payouts;
use ndas_core::work::{ExtranonceAllocator, JobConfig};

/// How often the notification targets hear how many workers are offline.
const WORKERS_WATCH_EVERY: Duration = Duration::from_secs(60);

/// Each configured node with where to reach it.
pub type Endpoints<'a> = Vec<(&'a NodeConfig, NodeEndpoint)>;

/// Where each node is reached (the UTEK files or the RPC settings); the
/// first that cannot be is named with its config key.
pub fn node_endpoints(config: &Config) -> Result<Endpoints<'_>, StartError> {
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
    Ok(endpoints)
}

/// The history, for display only: mining never waits on it. A file that
/// cannot be opened (a full disk, a newer schema) is left alone and logged.
pub fn open_history(config: &Config) -> Option<Arc<History>> {
    match History::open(&config.data_dir, config.stratum.worker_cap()) {
        Ok(history) => Some(Arc::new(history)),
        Err(error) => {
            tracing::error!(%error, file = %config.data_dir.join("history.redb").display(), "history unavailable; mining goes on without it");
            None
        }
    }
}

/// The job manager and its payout groups, job ids starting from the clock.
pub fn job_manager(config: &Config) -> Arc<JobManager> {
    let first_job_id = ndas_core::work::job::first_job_id(std::time::SystemTime::now());
    let job_config = JobConfig {
        payout_script: Vec::new(),
        coinbase_tag: config.mining.coinbase_tag.clone().into_bytes(),
        extranonce2_size: config.stratum.extranonce2_size,
        splits: config.mining.splits(config.network),
    };
    let by_username = config.mining.payout_mode == config::PayoutMode::Username;
    JobManager::new(
        job_config,
        first_job_id,
        Payouts {
            fixed: config.mining.fixed_payout(config.network),
            by_username: by_username.then_some(config.network),
            max_groups: config.mining.max_payout_groups,
            max_new_per_source: config.mining.max_new_payout_groups_per_ip,
        },
    )
}

/// `addr` bound, with the address it got (a port 0 chosen).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let error = |source| StartError::Listen { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    Ok((listener, local))
}

/// A stratum port bound, with the address it got, and its certificate
/// when it speaks TLS.
pub struct Bound {
    pub listener: TcpListener,
    pub port: Port,
    pub tls: Option<Arc<Tls>>,
    /// The authority key and bounds, when it speaks Stratum V2.
    pub sv2: Option<Arc<crate::sv2::Endpoint>>,
}

/// Every stratum port bound; a TLS port's certificate and key read (a port
/// that cannot serve them stops the start, naming the file).
pub async fn bind_ports(config: &Config) -> Result<Vec<Bound>, StartError> {
    let mut bound = Vec::new();
    for port in config.ports() {
        let tls = match port.tls.clone() {
            Some(files) => Some(Arc::new(Tls::load(files).map_err(|source| {
                StartError::Tls {
                    port: port.name.clone(),
                    source,
                }
            })?)),
            None => None,
        };
        let sv2 = match (port.sv2, &config.sv2) {
            (true, Some(sv2)) => Some(Arc::new(crate::sv2::Endpoint {
                key: crate::sv2::keys::AuthorityKey::load_or_create(&config.data_dir)?,
                static_key: crate::sv2::keys::StaticKey::load_or_create(&config.data_dir)?,
                limits: ndas_core::sv2::Sv2Limits {
                    max_channels: sv2.max_channels_per_connection,
                    // Their extranonce1s come from the space Stratum V1's
                    // connections are bounded in.
                    budget: ndas_core::sv2::ChannelBudget::new(config.stratum.max_connections),
                },
                max_frame_bytes: config.stratum.max_line_bytes,
            })),
            _ => None,
        };
        let (listener, addr) = bind(port.listen).await?;
        if let Some(endpoint) = &sv2 {
            tracing::info!(
                %addr,
                authority_key = %endpoint.key.public_text(),
                "Stratum V2: miners are given stratum2+tcp://<host>:{}/{}",
                addr.port(),
                endpoint.key.public_text()
            );
        }
        bound.push(Bound {
            listener,
            port: Port {
                listen: addr,
                ..port
            },
            tls,
            sv2,
        });
    }
    Ok(bound)
}

/// An RPC client per node, each node's chain checked.
///
/// A node on another chain, or a signet NDAS cannot sign for, is refused
/// now when it answers; the watcher checks again whenever it returns. A
/// node that hangs delays the start by two seconds at most (all nodes at
/// once), not a whole RPC timeout with miners waiting in the listen backlog.
pub async fn connect_nodes(
    config: &Config,
    endpoints: &Endpoints<'_>,
    events: &Events,
    metrics: &Arc<Metrics>,
) -> Result<Arc<Nodes>, StartError> {
    let mut list = Vec::new();
    for (index, (entry, endpoint)) in endpoints.iter().enumerate() {
        let rpc = node::RpcClient::new(endpoint, Duration::from_secs_f64(entry.timeout_seconds))?
            .with_observer(metrics.clone())
            .with_max_response(entry.max_response_bytes);
        list.push(Arc::new(Node::new(
            entry.name.clone(),
            index,
            Arc::new(rpc),
            Duration::from_millis(entry.poll_interval_ms),
        )));
    }
    let checks = list.iter().map(|node| async {
        let start_check = node.rpc.timeout().min(Duration::from_secs(2));
        (
            node.name.clone(),
            node::chain_check::check(&node.rpc, config.network, start_check).await,
        )
    });
    for (name, check) in futures_util::future::join_all(checks).await {
        if let Err(node::chain_check::ChainCheckError::Mismatch(mismatch)) = check {
            return Err(StartError::Chain { name, mismatch });
        }
    }
    Ok(Nodes::new(list, events.clone()))
}

/// The blocks an earlier run left pending. A journal that cannot be read
/// stops the start: starting as if no block were pending could lose one
/// for good.
pub async fn recover_journal(
    journal: &Journal,
    config: &Config,
) -> Result<Vec<JournalEntry>, StartError> {
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
        })
}

/// The block submitter: every node at once, one gate and one delivery
/// queue per node.
pub fn submitter(
    config: &Config,
    nodes: Arc<Nodes>,
    journal: &Journal,
    wake: Arc<Notify>,
    events: &Events,
    manager: &JobManager,
    triage: Arc<BlockTriage>,
) -> Submitter {
    let count = config.node.entries().count();
    Submitter {
        nodes,
        journal: journal.clone(),
        wake,
        events: events.clone(),
        // Two waits of at most 40 % of the grace each: blocks from
        // connections still closing, then submissions in flight.
        drain: config.blocks.grace().mul_f64(0.4),
        templates: manager.templates(),
        gates: (0..count)
            .map(|_| blocks::gate::SubmitGate::new(blocks::gate::SUBMITS_IN_FLIGHT))
            .collect(),
        deliveries: (0..count)
            .map(|_| blocks::NodeDeliveries::default())
            .collect(),
        triage,
        settling: tokio::sync::RwLock::new(false),
    }
}

/// The operator port's listener and what its answers read.
pub struct Operator<'a> {
    pub listener: TcpListener,
    pub addr: SocketAddr,
    pub token: Option<ndas_core::Secret>,
    /// `/readyz` fails when the template is older than this.
    pub max_template_age: Duration,
    pub history: Option<Arc<History>>,
    pub fleet: Option<Arc<history::fleet::Fleet>>,
    pub manager: &'a JobManager,
}

/// What every stage is started with: where it tells what happens, the
/// read models the operator side answers from, when it stops, and the
/// tracker that waits for it.
pub struct Stage<'a> {
    pub events: &'a Events,
    pub stats: &'a Arc<Stats>,
    pub notifications: &'a Sink,
    pub shutdown: &'a CancellationToken,
    pub tasks: &'a TaskTracker,
}

impl Stage<'_> {
    /// The watcher, which hands each changed template to the job stage
    /// and fetches again once its jobs are built; the job stage; and each
    /// node's ZMQ subscriber.
    pub fn node_side(
        &self,
        config: &Config,
        nodes: &Arc<Nodes>,
        endpoints: &Endpoints<'_>,
        manager: &Arc<JobManager>,
        (wake, refresh): (&Arc<Notify>, watch::Receiver<Duration>),
        pools: (work::Pools, Option<work::Routing>),
    ) {
        let watcher = WatcherConfig {
            network: config.network,
            refresh,
            poll: Duration::from_millis(config.node.poll_interval_ms),
            longpoll_timeout: Duration::from_secs(300),
            coinbase: manager.groups().coinbase_bounds(),
            withdraw_after: (config.when_no_node() != crate::config::WhenNoNode::Wait)
                .then(|| Duration::from_secs(config.mining.failover_after_seconds)),
        };
        let (handoff, jobs_in) = node::watcher::handoff();
        self.tasks.spawn(node::watcher::run(
            nodes.clone(),
            handoff,
            wake.clone(),
            watcher,
            self.shutdown.clone(),
        ));
        self.tasks.spawn(work::run(
            manager.clone(),
            jobs_in,
            pools,
            self.events.clone(),
            self.shutdown.clone(),
        ));
        for (node, (entry, _)) in nodes.list.iter().zip(endpoints) {
            if let Some(endpoint) = entry.zmq_hashblock.clone() {
                let subscriber = node::zmq::Subscriber {
                    nodes: nodes.clone(),
                    node: node.clone(),
                    endpoint,
                    wake: wake.clone(),
                    templates: manager.templates(),
                };
                self.tasks.spawn(subscriber.run(self.shutdown.clone()));
            }
        }
    }

    /// One accept loop per stratum port; the bounds, extranonce1s and
    /// parked sessions are shared, so a miner may come back on another
    /// port. Returns each port as served, with the sender of its session
    /// settings (a reload changes them).
    pub fn stratum(
        &self,
        config: &Config,
        listeners: Vec<Bound>,
        manager: &Arc<JobManager>,
        blocks: &BlockSink,
        upstreams: Option<Arc<crate::upstream::links::Forwarders>>,
    ) -> Vec<(Port, watch::Sender<Arc<session::SessionConfig>>)> {
        let stats = self.stats;
        let extranonces = Arc::new(ExtranonceAllocator::new(config.instance_id));
        let resumptions = Arc::new(
            session::Resumptions::new(
                extranonces.clone(),
                Duration::from_secs_f64(config.stratum.resume_seconds),
            )
            .with_max_bytes(config.stratum.resume_max_bytes)
            .reporting({
                let events = self.events.clone();
                move |sessions, bytes| events.payout(PayoutEvent::Parked { sessions, bytes })
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
        let limits = ConnectionLimits {
            max_line_bytes: config.stratum.max_line_bytes,
            write_timeout: Duration::from_secs_f64(config.stratum.write_timeout_seconds),
            max_lines_per_second: config.stratum.max_lines_per_second,
            handshake_timeout: Duration::from_secs_f64(config.stratum.handshake_timeout_seconds),
            idle_timeout: Duration::from_secs_f64(config.stratum.idle_timeout_seconds),
            max_invalid_shares: config.stratum.max_invalid_shares,
        };
        let mut ports = Vec::new();
        for Bound {
            listener,
            port,
            tls,
            sv2,
        } in listeners
        {
            let (session_tx, session_rx) =
                watch::channel(Arc::new(lifecycle::session_config(config, &port)));
            let context = ConnectionContext {
                payout_groups: manager.groups().clone(),
                blocks: blocks.clone(),
                config: session_rx,
                shutdown: self.shutdown.clone(),
                limits,
                carried_strikes: 0,
                stats: stats.clone(),
                port: stats.metrics.port(&port.name, port.protocol_index()),
                tls,
                sv2,
                reconnect_to: config
                    .mining
                    .reconnect_to
                    .as_deref()
                    .and_then(|target| crate::config::parse_host_port(target).ok())
                    .map(Arc::new),
                upstreams: upstreams.clone(),
            };
            self.tasks.spawn(server::accept_loop(
                listener,
                extranonces.clone(),
                resumptions.clone(),
                admission.clone(),
                context,
                self.tasks.clone(),
            ));
            ports.push((port, session_tx));
        }
        ports
    }

    /// The operator port, and the tasks that keep its figures: the worker
    /// registry's pruning, the history's writer, the offline-workers watch.
    pub fn operator_side(&self, config: &Config, operator: Operator<'_>) {
        let (stats, m) = (self.stats, &config.metrics);
        if operator.token.is_none() && !operator.addr.ip().is_loopback() {
            tracing::warn!(
                metrics_addr = %operator.addr,
                "the operator port is reachable from the network and has no metrics.token: anyone who reaches it reads /api/* and the status page"
            );
        }
        let http = Arc::new(http::HttpContext {
            stats: stats.clone(),
            max_template_age: operator.max_template_age,
            guard: http::Guard::new(
                operator.token,
                m.token_protects_metrics,
                m.requests_per_second,
            ),
            max_connections: m.max_connections,
            timeout: Duration::from_secs_f64(m.timeout_seconds),
            open: std::sync::atomic::AtomicUsize::new(0),
            working: http::answer_threads(),
            history: operator.history.clone(),
            fleet: operator.fleet.clone(),
            payout_groups: operator.manager.groups().clone(),
        });
        self.tasks.spawn(http::serve(
            operator.listener,
            http,
            self.shutdown.clone(),
            self.tasks.clone(),
        ));
        self.tasks.spawn(lifecycle::prune_workers(
            stats.clone(),
            self.shutdown.clone(),
        ));
        if let Some(history) = operator.history {
            self.tasks
                .spawn(history::run(history, stats.clone(), self.shutdown.clone()));
        }
        if let Some(fleet) = operator.fleet {
            stats.sessions.enable();
            self.tasks.spawn(history::fleet::run(
                fleet,
                stats.clone(),
                self.shutdown.clone(),
            ));
        }
        if self.notifications.wants("workers_offline") {
            self.tasks.spawn(lifecycle::watch_workers(
                stats.clone(),
                self.notifications.clone(),
                WORKERS_WATCH_EVERY,
                self.shutdown.clone(),
            ));
        }
    }
}

/// The start's last line: where NDAS serves, and from which nodes.
pub fn log_serving<T>(
    config: &Config,
    ports: &[(Port, T)],
    metrics_addr: SocketAddr,
    endpoints: &Endpoints<'_>,
) {
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
}

mod upstream;
