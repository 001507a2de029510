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
use super::template::Template;
use crate::chain::{Hash256, Network};
use crate::stats::Stats;
use crate::work::JobManager;

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
    mut manager: JobManager,
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
        // A tip that no job is on yet: the first node at it serves.
        if nodes
            .best()
            .is_some_and(|best| published.as_ref().is_none_or(|p| p.prev_hash != best.hash))
        {
            stay = false;
        }
        let Some((node, template, mark)) = fetch_from_first(&nodes, stay, &config, &mut rule).await
        else {
            failures += 1;
            note_failure(&nodes, &stats, failures);
            retry_later(&wake, retry.delay(failures));
            continue;
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
        longpoll_ids.send_replace(template.longpoll_id.clone().map(|id| (node.clone(), id)));
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
            bits: template.bits,
            bits_time: template.bits_time.clone(),
            txids: template.txids.clone(),
            coinbase_value: template.coinbase_value,
        };
        let (height, transactions, prev_hash) =
            (template.height, template.tx_count, template.prev_hash);
        match manager.publish(template) {
            Ok(job) => {
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
                    job = %job.id,
                    clean = new_tip,
                    fetch_ms = started.elapsed().as_millis() as u64,
                    "new job"
                );
            }
            Err(error) => tracing::error!(%error, height, "cannot build a job from the template"),
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
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
) -> Option<(Arc<Node>, Template, Option<Option<u32>>)> {
    for node in nodes.candidates(stay, std::time::Instant::now()) {
        match fetch(&node, config, rule).await {
            Ok((template, mark)) => return Some((node, template, mark)),
            Err(error) => {
                tracing::warn!(node = %node.name, %error, "cannot get a block template from this node");
                node.failed(error, std::time::Instant::now());
            }
        }
    }
    None
}

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
        .call::<super::template::RawTemplate>(
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
            // Templates moved to another node: its longpoll instead.
            _ = ids.changed() => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

/// Least time between the starts of two longpoll requests.
const LONGPOLL_MIN_INTERVAL: Duration = Duration::from_secs(1);
