//! Notifications: a block found, a block's verdict, a node down or back, and
//! too many workers offline, told to each `[[notify]]` target (a JSON
//! webhook, ntfy, Telegram, Discord).
//!
//! Never in the way of mining: an event is put on each target's bounded
//! queue without waiting (a full queue drops it, counted), and each target
//! has its own task that sends, retries with backoff, and gives up. A
//! target's URL and token are secrets: logs name the target, never them.

mod events;
mod format;

pub use events::Notifier;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::NotifyConfig;
use crate::metrics::Metrics;
use ndas_core::clock::unix_now;

/// Events a target holds while it sends; more are dropped.
const QUEUE: usize = 64;
/// One attempt's longest wait for the target.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per event, waiting 1, 2, 4 and 8 s between them. A target
/// that took a request and timed out may get it twice.
const ATTEMPTS: u32 = 5;
/// How long after shutdown events are still sent.
const DRAIN: Duration = Duration::from_secs(5);

/// Something the operator is told.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    BlockFound {
        height: u32,
        hash: String,
        worker: String,
    },
    /// The nodes' verdict: `accepted`, `duplicate`, `inconclusive` or `rejected`.
    BlockSettled {
        height: u32,
        hash: String,
        worker: String,
        outcome: &'static str,
    },
    NodeDown {
        node: String,
    },
    NodeUp {
        node: String,
    },
    /// How many workers are online and offline now (each target decides
    /// against its own threshold whether that is news).
    Workers {
        online: usize,
        offline: usize,
    },
    /// No node served for the bound: miners closed and refused
    /// (`mining.when_no_node = "disconnect"`).
    MinersSentAway,
    /// A node serves again after that: miners are let back in (or back
    /// from an upstream pool).
    MinersBack,
    /// No node served for the bound: miners mine upstream pool `upstream`'s
    /// jobs (`mining.when_no_node = "upstream"`).
    MinersOnUpstream {
        upstream: String,
    },
}

impl Notice {
    /// The `events` name a target takes it by.
    pub fn name(&self) -> &'static str {
        match self {
            Notice::BlockFound { .. } => "block_found",
            Notice::BlockSettled {
                outcome: "accepted" | "duplicate",
                ..
            } => "block_accepted",
            Notice::BlockSettled { .. } => "block_rejected",
            Notice::NodeDown { .. } => "node_down",
            Notice::NodeUp { .. } => "node_up",
            Notice::Workers { .. } => "workers_offline",
            Notice::MinersSentAway => "miners_sent_away",
            Notice::MinersBack => "miners_back",
            Notice::MinersOnUpstream { .. } => "miners_on_upstream",
        }
    }
}

/// Where events are handed: every target's queue (none when no target is
/// configured). Cheap to clone.
#[derive(Clone, Default)]
pub struct Sink(Arc<Vec<Queue>>);

struct Queue {
    config: NotifyConfig,
    sender: mpsc::Sender<Notice>,
    metrics: Arc<Metrics>,
}

impl Sink {
    /// Puts `event` on the queue of every target that takes it, never
    /// waiting: a full queue drops it (`ndas_notifications_total{outcome="dropped"}`).
    pub fn send(&self, event: Notice) {
        for queue in self.0.iter().filter(|q| q.config.takes(event.name())) {
            if queue.sender.try_send(event.clone()).is_err() {
                queue.count("dropped");
            }
        }
    }

    /// Whether any target takes events named `name`.
    pub fn wants(&self, name: &str) -> bool {
        self.0.iter().any(|q| q.config.takes(name))
    }
}

impl Queue {
    fn count(&self, outcome: &str) {
        self.metrics
            .notifications_total
            .with_label_values(&[&self.config.name, outcome])
            .inc();
    }
}

/// Starts one task per target on `tracker`. At `shutdown` each keeps
/// sending what comes (the last blocks' verdicts) for [`DRAIN`] more.
pub fn start(
    targets: &[NotifyConfig],
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Sink {
    if targets.is_empty() {
        return Sink::default();
    }
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let mut queues = Vec::new();
    for config in targets {
        for outcome in ["sent", "failed", "dropped"] {
            metrics
                .notifications_total
                .with_label_values(&[&config.name, outcome]);
        }
        let (sender, receiver) = mpsc::channel(QUEUE);
        let queue = Queue {
            config: config.clone(),
            sender,
            metrics: metrics.clone(),
        };
        tracker.spawn(deliver(
            Target {
                config: config.clone(),
                client: client.clone(),
                metrics: metrics.clone(),
                workers_armed: true,
            },
            receiver,
            shutdown.clone(),
        ));
        queues.push(queue);
    }
    Sink(Arc::new(queues))
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Target {
    config: NotifyConfig,
    client: HttpClient,
    metrics: Arc<Metrics>,
    /// Whether the next rise past the offline threshold is news.
    workers_armed: bool,
}

/// Sends each event of `receiver` to the target until shutdown, then for
/// [`DRAIN`] more.
async fn deliver(
    mut target: Target,
    mut receiver: mpsc::Receiver<Notice>,
    shutdown: CancellationToken,
) {
    let mut until: Option<tokio::time::Instant> = None;
    loop {
        let event = match until {
            None => tokio::select! {
                _ = shutdown.cancelled() => {
                    until = Some(tokio::time::Instant::now() + DRAIN);
                    continue;
                }
                event = receiver.recv() => event,
            },
            Some(until) => tokio::time::timeout_at(until, receiver.recv())
                .await
                .ok()
                .flatten(),
        };
        let Some(event) = event else { return };
        if let Notice::Workers { online, offline } = event {
            if !target.workers_news(online, offline) {
                continue;
            }
        }
        let request = format::request(&target.config, &event, unix_now());
        let send = target.send(&request);
        tokio::pin!(send);
        // A send under way when shutdown comes has until the drain's end.
        let outcome = loop {
            match until {
                None => tokio::select! {
                    outcome = &mut send => break outcome,
                    _ = shutdown.cancelled() => until = Some(tokio::time::Instant::now() + DRAIN),
                },
                Some(until) => match tokio::time::timeout_at(until, &mut send).await {
                    Ok(outcome) => break outcome,
                    Err(_) => return,
                },
            }
        };
        let label = match outcome {
            Ok(()) => "sent",
            Err(why) => {
                tracing::warn!(target = %target.config.name, event = event.name(), %why, "notification not delivered");
                "failed"
            }
        };
        target
            .metrics
            .notifications_total
            .with_label_values(&[&target.config.name, label])
            .inc();
    }
}

impl Target {
    /// Whether `offline` of `online + offline` workers crossed the target's
    /// threshold now (news once, until it falls below half of it).
    fn workers_news(&mut self, online: usize, offline: usize) -> bool {
        let total = online + offline;
        if total == 0 {
            return false;
        }
        let percent = offline as f64 * 100.0 / total as f64;
        let threshold = self.config.workers_offline_percent;
        if percent < threshold / 2.0 {
            self.workers_armed = true;
        }
        if percent >= threshold && self.workers_armed {
            self.workers_armed = false;
            return true;
        }
        false
    }

    /// One event, tried up to [`ATTEMPTS`] times while the target fails in
    /// a way that may pass (no answer, 429, 5xx).
    async fn send(&self, request: &format::Request) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(Duration::from_secs(1 << (attempt - 2))).await;
            }
            let mut builder = hyper::Request::post(request.uri.expose());
            for (name, value) in &request.headers {
                builder = builder.header(*name, value.expose());
            }
            let http = builder
                .body(Full::new(Bytes::from(request.body.clone())))
                .map_err(|_| "the target's URL is not a valid URI".to_owned())?;
            match tokio::time::timeout(ATTEMPT_TIMEOUT, self.client.request(http)).await {
                Ok(Ok(answer)) if answer.status().is_success() => return Ok(()),
                Ok(Ok(answer)) => {
                    let status = answer.status();
                    last = format!("HTTP {}", status.as_u16());
                    if !(status.is_server_error() || status.as_u16() == 429) {
                        return Err(last);
                    }
                }
                // The error's text can hold the URL: only its kind is kept.
                Ok(Err(error)) if error.is_connect() => last = "cannot connect".into(),
                Ok(Err(_)) => last = "the connection failed".into(),
                Err(_) => last = format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
            }
        }
        Err(format!("{last} ({ATTEMPTS} attempts)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(percent: f64) -> Target {
        let config: NotifyConfig = serde_json::from_value(serde_json::json!({
            "name": "t", "kind": "webhook", "url": "http://127.0.0.1:1/",
            "workers_offline_percent": percent,
        }))
        .unwrap();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Target {
            config,
            client: Client::builder(TokioExecutor::new()).build(connector),
            metrics: Arc::new(Metrics::new()),
            workers_armed: true,
        }
    }

    #[test]
    fn workers_offline_is_news_once_until_it_falls_below_half_the_threshold() {
        let mut target = target(10.0);
        assert!(!target.workers_news(95, 5));
        assert!(target.workers_news(88, 12));
        assert!(!target.workers_news(85, 15), "said once");
        assert!(!target.workers_news(93, 7), "not yet re-armed");
        assert!(!target.workers_news(96, 4));
        assert!(target.workers_news(80, 20), "news again");
        assert!(!target.workers_news(0, 0));
    }

    #[test]
    fn each_verdict_goes_by_its_event_name() {
        let settled = |outcome| Notice::BlockSettled {
            height: 1,
            hash: "h".into(),
            worker: "w".into(),
            outcome,
        };
        assert_eq!(settled("accepted").name(), "block_accepted");
        assert_eq!(settled("duplicate").name(), "block_accepted");
        assert_eq!(settled("rejected").name(), "block_rejected");
        assert_eq!(settled("inconclusive").name(), "block_rejected");
    }
}
