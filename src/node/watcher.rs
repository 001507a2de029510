//! Follows the nodes' tips and mempool and publishes each changed template
//! ([`NewTemplate`], on a `watch` channel) for the job stage to build from.
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

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

pub use super::handoff::{handoff, Handoff, JobsIn, NewTemplate};
use super::nodes::{Node, Nodes, Tip};
use super::rpc::Backoff;
use ndas_core::chain::{Hash256, Network};
use ndas_core::events::{Events, NodeEvent};
use ndas_core::template::Template;
use ndas_core::work::limits::CoinbaseBounds;

/// How often a waiting fetch looks whether every node's poll has failed.
const NONE_ANSWERING_CHECK: Duration = Duration::from_millis(250);

/// How the watcher runs.
#[derive(Clone, Debug)]
pub struct WatcherConfig {
    pub network: Network,
    /// How often transactions are refreshed; changed by a config reload.
    pub refresh: watch::Receiver<Duration>,
    pub poll: Duration,
    /// How long one longpoll request may wait for the node.
    pub longpoll_timeout: Duration,
    /// The largest coinbase a job can have: what a template must leave
    /// room for ([`ndas_core::work::limits::fit`]).
    pub coinbase: CoinbaseBounds,
    /// How long no node may give a template before miners' work is
    /// withdrawn (`mining.when_no_node = "disconnect"`); none: they keep
    /// the last job.
    pub withdraw_after: Option<Duration>,
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

/// Runs until `shutdown`, handing each changed template to the job stage;
/// `wake` makes it fetch at once.
pub async fn run(
    nodes: Arc<Nodes>,
    mut jobs: Handoff,
    wake: Arc<Notify>,
    config: WatcherConfig,
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
    tokio::spawn(super::longpoll::run(
        wake.clone(),
        longpoll_rx,
        config.network,
        config.longpoll_timeout,
        shutdown.clone(),
    ));

    let retry = Backoff {
        first: Duration::from_millis(250),
        max: Duration::from_secs(10),
        attempts: u32::MAX,
    };
    let mut failures = 0u32;
    // When the work is withdrawn if no node serves by then.
    let mut withdraw_at: Option<tokio::time::Instant> = None;
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
            _ = until(withdraw_at) => {
                withdraw_at = None;
                // The next template is a new tip's: miners get clean jobs.
                published = None;
                withdraw(&mut jobs, &config);
                continue;
            }
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
        // The bound runs from the first sign that no node serves: every
        // node's poll failing (checked while a fetch waits too), or a fetch
        // failing, whichever comes first. A fetch from a node that hangs
        // must not hold the bound back: the work is withdrawn on time
        // while the fetch goes on.
        let fetch = fetch_from_first(&nodes, stay, &config, &mut rule);
        tokio::pin!(fetch);
        let mut check = tokio::time::interval(NONE_ANSWERING_CHECK);
        let fetched = loop {
            tokio::select! {
                fetched = &mut fetch => break fetched,
                _ = until(withdraw_at) => {
                    withdraw_at = None;
                    published = None;
                    withdraw(&mut jobs, &config);
                }
                _ = check.tick(), if withdraw_at.is_none() && published.is_some() => {
                    if nodes.none_answering() {
                        withdraw_at = config
                            .withdraw_after
                            .map(|after| tokio::time::Instant::now() + after);
                    }
                }
            }
        };
        let (node, template, mark) = match fetched {
            Fetched::Template(node, template, mark) => (node, *template, mark),
            // The template was made before the tip a poll has since seen:
            // asked again shortly, nothing failed.
            Fetched::BelowBest => {
                retry_later(&wake, Duration::from_millis(200));
                continue;
            }
            Fetched::Nothing => {
                failures += 1;
                if failures == 1 && withdraw_at.is_none() {
                    withdraw_at = config
                        .withdraw_after
                        .map(|after| tokio::time::Instant::from_std(started) + after);
                }
                note_failure(&nodes, failures);
                retry_later(&wake, retry.delay(failures));
                continue;
            }
        };
        if let Some(mark) = mark {
            at_mark = mark.map(after_mark);
        }
        note_served(&nodes, &node, &template, started);
        failures = 0;
        withdraw_at = None;
        super::longpoll::follow(&longpoll_ids, &node, &template);
        let new_tip = published
            .as_ref()
            .is_none_or(|p| p.prev_hash != template.prev_hash);
        if !new_tip && published.as_ref().is_some_and(|p| p.same_work(&template)) {
            continue;
        }
        let next = Published::of(&template);
        let Some(template) = within_limits(template, config.coinbase, &nodes.events) else {
            continue;
        };
        published = Some(next);
        jobs.publish(template, started, new_tip, &shutdown).await;
    }
}

impl Published {
    fn of(template: &Template) -> Published {
        Published {
            prev_hash: template.prev_hash,
            height: template.height,
            bits: template.bits,
            bits_time: template.bits_time.clone(),
            txids: template.txids.clone(),
            coinbase_value: template.coinbase_value,
        }
    }

    /// Whether `template` (on the same tip) gives miners nothing new: the
    /// same transactions, reward and bits.
    fn same_work(&self, template: &Template) -> bool {
        self.txids == template.txids
            && self.coinbase_value == template.coinbase_value
            && self.bits == template.bits
            && self.bits_time == template.bits_time
    }
}

/// A template fetched from `node`: it serves now, at the tip the template
/// builds on, and the node side is up.
fn note_served(nodes: &Nodes, node: &Arc<Node>, template: &Template, started: std::time::Instant) {
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
    let seconds = started.elapsed().as_secs_f64();
    if nodes.tell_flowing(NodeEvent::TemplateFetched { seconds }) {
        tracing::info!(
            node = %node.name,
            height = template.height,
            "node state: up; templates flowing"
        );
    }
}

/// `template` cut to what the largest coinbase leaves room for (see
/// [`ndas_core::work::limits`]), told in the log and the metrics; `None` when
/// it cannot be, and nothing is published from it.
fn within_limits(
    template: Template,
    coinbase: CoinbaseBounds,
    events: &Events,
) -> Option<Template> {
    let height = template.height;
    let over_limits = |outcome| events.node(NodeEvent::OverLimits { outcome });
    match ndas_core::work::limits::fit(template, coinbase) {
        Ok((template, None)) => Some(template),
        Ok((template, Some(cut))) => {
            over_limits("trimmed");
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
            over_limits("refused");
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
        super::chain_check::check(rpc, config.network, rpc.timeout())
            .await
            .map_err(|e| e.to_string())?;
        node.set_chain_checked();
    }
    let raw = rpc
        .call::<ndas_core::template::RawTemplate>(
            "getblocktemplate",
            super::longpoll::template_request(config.network, None),
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

/// No node has served for the bound: miners' work is withdrawn until the
/// next template.
fn withdraw(jobs: &mut Handoff, config: &WatcherConfig) {
    tracing::warn!(
        after_seconds = config.withdraw_after.unwrap_or_default().as_secs(),
        "no node has given a template: miners are closed until one does (mining.when_no_node)"
    );
    jobs.withdraw();
}

/// Marks the pool without templates, with every node's reason.
fn note_failure(nodes: &Nodes, failures: u32) {
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
    if nodes.tell_flowing(NodeEvent::NoTemplates { why: why.clone() }) {
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
