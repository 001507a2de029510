//! Follows the nodes' tips and mempool and turns each change into a job.
//!
//! Four things wake the fetcher: each node's tip poll (`getbestblockhash`
//! every `poll_interval_ms`, see [`super::nodes::follow`]), each node's ZMQ,
//! a longpoll `getblocktemplate` that the serving node answers when its
//! template changes, and the submitter after a block of ours is accepted.
//! A timer refreshes transactions every `job_refresh_seconds`. Each fetch
//! asks the nodes in the order [`Nodes::candidates`] gives, until one
//! answers.

use std::sync::Arc;
use std::time::Duration;

use serde::de::IgnoredAny;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::nodes::{Node, Nodes, Tip};
use super::rpc::Backoff;
use crate::stats::Stats;
use crate::work::JobManager;
use ndas_core::chain::{Hash256, Network};
use ndas_core::template::Template;

/// How the watcher runs.
#[derive(Clone, Debug)]
pub struct WatcherConfig {
    pub network: Network,
    /// How often transactions are refreshed; changed by a config reload.
    pub refresh: watch::Receiver<Duration>,
    pub poll: Duration,
    /// How long one longpoll request may wait for the node.
    pub longpoll_timeout: Duration,
}

/// The `getblocktemplate` request: segwit always, signet where Core requires it.
pub fn template_request(network: Network, longpoll_id: Option<&str>) -> Value {
    let mut rules = vec!["segwit"];
    if network == Network::Signet {
        rules.push("signet");
    }
    let mut request = json!({ "rules": rules });
    if let Some(id) = longpoll_id {
        request["longpollid"] = json!(id);
    }
    json!([request])
}

/// What the last published job was built from, to tell changes apart.
struct Published {
    prev_hash: Hash256,
    /// The height of the block the job builds.
    height: u32,
    /// Testnet's 20-minute rule changes the target at the same tip: a block
    /// must carry exactly the bits its time calls for.
    bits: u32,
    /// And the times those bits are for (the same bits on both sides of
    /// the mark are still a new job: its times are no longer bounded).
    bits_time: std::ops::RangeInclusive<u32>,
    txids: Vec<Hash256>,
    coinbase_value: u64,
}

/// Runs until `shutdown`; `wake` makes it fetch at once.
pub async fn run(
    nodes: Arc<Nodes>,
    manager: std::sync::Arc<JobManager>,
    wake: Arc<Notify>,
    config: WatcherConfig,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let (longpoll_ids, longpoll_rx) = watch::channel(None::<(Arc<Node>, String)>);
    for node in &nodes.list {
        tokio::spawn(super::nodes::follow(
            node.clone(),
            nodes.clone(),
            wake.clone(),
            shutdown.clone(),
        ));
    }
    tokio::spawn(longpoll(
        wake.clone(),
        longpoll_rx,
        config.clone(),
        shutdown.clone(),
    ));

    let retry = Backoff {
        first: Duration::from_millis(250),
        max: Duration::from_secs(10),
        attempts: u32::MAX,
    };
    let mut failures = 0u32;
    let mut published: Option<Published> = None;
    let mut rule = super::testnet::MinDifficultyRule::default();
    // Testnet: when the template's bits stop being valid (the 20-minute mark).
    let mut at_mark: Option<tokio::time::Instant> = None;
    let mut refresh_every = config.refresh.clone();
    let mut refresh = refresh_timer(*refresh_every.borrow_and_update());
    loop {
        // A refresh may move templates back to a node of higher priority;
        // other wakes keep the serving node while it is at the best tip.
        let mut stay = true;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = refresh.tick() => stay = false,
            _ = until(at_mark) => at_mark = None,
            Ok(()) = refresh_every.changed() => {
                refresh = refresh_timer(*refresh_every.borrow_and_update());
                continue;
            }
        }
        // When the tip changed, this is when NDAS noticed.
        let started = std::time::Instant::now();
        // A tip higher than the one the job is on: the first node at it
        // serves. (Two nodes on sibling blocks of one height are not a
        // reason to move miners from one to the other.)
        if nodes
            .best()
            .is_some_and(|best| published.as_ref().is_none_or(|p| best.height >= p.height))
        {
            stay = false;
        }
        let (node, template, mark) = match fetch_from_first(&nodes, stay, &config, &mut rule).await
        {
            Fetched::Template(node, template, mark) => (node, *template, mark),
            // The template was made before the tip a poll has since seen:
            // asked again shortly, nothing failed.
            Fetched::BelowBest => {
                retry_later(&wake, Duration::from_millis(200));
                continue;
            }
            Fetched::Nothing => {
                failures += 1;
                note_failure(&nodes, &stats, failures);
                retry_later(&wake, retry.delay(failures));
                continue;
            }
        };
        if let Some(mark) = mark {
            at_mark = mark.map(after_mark);
        }
        if nodes.set_serving(Some(node.index)) {
            tracing::info!(node = %node.name, height = template.height, "templates now from this node");
        }
        // Its tip, as its template says (so a node that is polled slowly is
        // still known to be at the tip it serves).
        node.served(Tip {
            hash: template.prev_hash,
            height: template.height.saturating_sub(1),
        });
        nodes.publish(std::time::Instant::now());
        stats
            .metrics
            .template_fetch_seconds
            .observe(started.elapsed().as_secs_f64());
        if stats.set_node_up(true, None) {
            tracing::info!(
                node = %node.name,
                height = template.height,
                "node state: up; templates flowing"
            );
        }
        failures = 0;
        stats.template_fresh();
        // Changed only when the node or its id is new: an open longpoll is
        // not dropped for the same one (Core keeps a thread on it).
        let longpoll = template.longpoll_id.clone().map(|id| (node.clone(), id));
        longpoll_ids.send_if_modified(|current| {
            let same = match (&*current, &longpoll) {
                (Some((a, x)), Some((b, y))) => a.index == b.index && x == y,
                (None, None) => true,
                _ => false,
            };
            if !same {
                *current = longpoll;
            }
            !same
        });
        let new_tip = published
            .as_ref()
            .is_none_or(|p| p.prev_hash != template.prev_hash);
        let changed = new_tip
            || published.as_ref().is_some_and(|p| {
                p.txids != template.txids
                    || p.coinbase_value != template.coinbase_value
                    || p.bits != template.bits
                    || p.bits_time != template.bits_time
            });
        if !changed {
            continue;
        }
        let next = Published {
            prev_hash: template.prev_hash,
            height: template.height,
            bits: template.bits,
            bits_time: template.bits_time.clone(),
            txids: template.txids.clone(),
            coinbase_value: template.coinbase_value,
        };
        let Some(template) = within_limits(template, &manager, &stats) else {
            continue;
        };
        let (height, transactions, prev_hash) =
            (template.height, template.tx_count, template.prev_hash);
        match manager.publish_off_runtime(template).await {
            Ok(job) => {
                let job = job.map_or_else(|| "none".to_owned(), |job| job.id.to_string());
                published = Some(next);
                stats.template_published(height, transactions, prev_hash.to_string());
                if new_tip {
                    stats
                        .metrics
                        .tip_to_job_seconds
                        .observe(started.elapsed().as_secs_f64());
                }
                tracing::info!(
                    height,
                    transactions,
                    job,
                    groups = manager.groups().group_count(),
                    clean = new_tip,
                    fetch_ms = started.elapsed().as_millis() as u64,
                    "new job"
                );
            }
            Err(error) => tracing::error!(%error, height, "cannot build a job from the template"),
        }
    }
}

/// `template` cut to what the largest coinbase leaves room for (see
/// [`ndas_core::work::limits`]), told in the log and the metrics; `None` when
/// it cannot be, and nothing is published from it.
fn within_limits(template: Template, manager: &JobManager, stats: &Stats) -> Option<Template> {
    let height = template.height;
    let over_limits = &stats.metrics.templates_over_limits_total;
    match ndas_core::work::limits::fit(template, manager.groups().coinbase_bounds()) {
        Ok((template, None)) => Some(template),
        Ok((template, Some(cut))) => {
            over_limits.with_label_values(&["trimmed"]).inc();
            tracing::error!(
                height,
                left_out = cut.transactions,
                left_out_weight = cut.weight,
                left_out_sigops = cut.sigops,
                fees_lost = cut.fees,
                "the node's template leaves too little room for this coinbase: {}; its last {} transactions are left out so that blocks stay valid: {}",
                cut.over,
                cut.transactions,
                cut.over.remedy(),
            );
            Some(template)
        }
        Err(error) => {
            over_limits.with_label_values(&["refused"]).inc();
            tracing::error!(
                height,
                "template refused, miners keep their last job: {error}; {}",
                error.overrun().remedy()
            );
            None
        }
    }
}

/// Sleeps until `deadline`; forever without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The instant the second after `mark` (Unix seconds) begins, when the
/// node's template takes the other bits; a second from now if the node's
/// clock is behind ours and that is past.
fn after_mark(mark: u32) -> tokio::time::Instant {
    let now = ndas_core::clock::since_epoch();
    let at = Duration::from_secs(u64::from(mark) + 1);
    let wait = at.checked_sub(now).filter(|wait| !wait.is_zero());
    tokio::time::Instant::now() + wait.unwrap_or(Duration::from_secs(1))
}

fn refresh_timer(every: Duration) -> tokio::time::Interval {
    let mut timer = tokio::time::interval(every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer
}

/// A template from the first candidate that gives one (see
/// [`Nodes::candidates`]): the node, its template, and for testnet the
/// 20-minute mark its bits are bounded by (`Some(None)`: none). Each node
/// that fails is passed over for a while, with why.
async fn fetch_from_first(
    nodes: &Nodes,
    stay: bool,
    config: &WatcherConfig,
    rule: &mut super::testnet::MinDifficultyRule,
) -> Fetched {
    let candidates = nodes.candidates(stay, std::time::Instant::now());
    let last = candidates.len().saturating_sub(1);
    let mut below_best = false;
    for (i, node) in candidates.into_iter().enumerate() {
        // With another node to ask, one that hangs costs a budget, not its
        // whole RPC timeout (twice, with its chain check).
        let budget = match i < last {
            true => CANDIDATE_BUDGET.min(node.rpc.timeout()),
            false => Duration::MAX,
        };
        let fetched = tokio::time::timeout(budget, fetch(&node, config, rule))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no template within {} ms; asking the next node",
                    budget.as_millis()
                ))
            });
        match fetched {
            // Never a template below the best tip an answering node
            // reports: it would send miners back to an older tip.
            Ok((template, _)) if nodes.best().is_some_and(|b| template.height <= b.height) => {
                tracing::debug!(node = %node.name, height = template.height, "template below the best tip; not used");
                below_best = true;
            }
            Ok((template, mark)) => return Fetched::Template(node, Box::new(template), mark),
            Err(error) => {
                tracing::warn!(node = %node.name, %error, "cannot get a block template from this node");
                node.failed(error, std::time::Instant::now());
            }
        }
    }
    match below_best {
        true => Fetched::BelowBest,
        false => Fetched::Nothing,
    }
}

/// What [`fetch_from_first`] got.
enum Fetched {
    /// A template, from that node, with testnet's mark (`Some(None)`: none).
    Template(Arc<Node>, Box<Template>, Option<Option<u32>>),
    /// Only templates below the best tip: the nodes are catching up.
    BelowBest,
    /// Nothing: every node failed.
    Nothing,
}

/// How long a node may take over its template while another could be asked.
const CANDIDATE_BUDGET: Duration = Duration::from_secs(2);

/// One node's template, checked: its chain first when not yet checked.
async fn fetch(
    node: &Node,
    config: &WatcherConfig,
    rule: &mut super::testnet::MinDifficultyRule,
) -> Result<(Template, Option<Option<u32>>), String> {
    let rpc = &node.rpc;
    if !node.chain_checked() {
        super::chain::check(rpc, config.network, rpc.timeout())
            .await
            .map_err(|e| e.to_string())?;
        node.set_chain_checked();
    }
    let raw = rpc
        .call::<ndas_core::template::RawTemplate>(
            "getblocktemplate",
            template_request(config.network, None),
        )
        .await
        .map_err(|e| e.to_string())?;
    // Checking a big template (every txid rehashed) takes milliseconds:
    // off the runtime threads that serve miners.
    let mut template = tokio::task::spawn_blocking(move || Template::from_raw(raw))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let mut mark = None;
    if super::testnet::has_min_difficulty_rule(config.network) {
        mark = Some(
            rule.apply(rpc, &mut template)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    Ok((template, mark))
}

/// Marks the pool without templates, with every node's reason.
fn note_failure(nodes: &Nodes, stats: &Stats, failures: u32) {
    nodes.set_serving(None);
    let why = nodes
        .list
        .iter()
        .map(|node| format!("{}: {}", node.name, node.last_error().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("; ");
    if failures == 1 {
        tracing::warn!(error = %why, "no node gives a block template; miners keep the last job");
    }
    if stats.set_node_up(false, Some(why.clone())) {
        tracing::warn!(error = %why, "node state: down");
    }
}

/// Wakes the fetcher again after `delay`.
fn retry_later(wake: &Arc<Notify>, delay: Duration) {
    let wake = wake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        wake.notify_one();
    });
}

/// Holds a longpoll `getblocktemplate` open on the serving node and wakes
/// the fetcher when it returns.
async fn longpoll(
    wake: Arc<Notify>,
    mut ids: watch::Receiver<Option<(Arc<Node>, String)>>,
    config: WatcherConfig,
    shutdown: CancellationToken,
) {
    loop {
        let current = ids.borrow_and_update().clone();
        let Some((node, id)) = current else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = ids.changed() => if changed.is_err() { return },
            }
            continue;
        };
        let request = template_request(config.network, Some(&id));
        let call = node.rpc.call_with_timeout::<IgnoredAny>(
            "getblocktemplate",
            request,
            config.longpoll_timeout,
        );
        // A node that ignores longpoll answers at once; never ask faster than this.
        let next = tokio::time::Instant::now() + LONGPOLL_MIN_INTERVAL;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            answer = call => if answer.is_ok() { wake.notify_one() },
            // Templates moved to another node: its longpoll instead. (A new
            // id from the same node is not a reason: it answers a stale one.)
            _ = other_node(&mut ids, node.index) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

/// Returns once the longpoll target is a node other than `index` (or none).
async fn other_node(ids: &mut watch::Receiver<Option<(Arc<Node>, String)>>, index: usize) {
    loop {
        if ids.changed().await.is_err() {
            return std::future::pending().await;
        }
        if ids
            .borrow()
            .as_ref()
            .is_none_or(|(node, _)| node.index != index)
        {
            return;
        }
    }
}

/// Least time between the starts of two longpoll requests.
const LONGPOLL_MIN_INTERVAL: Duration = Duration::from_secs(1);
