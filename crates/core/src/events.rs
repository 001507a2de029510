//! What the stages tell the operator side, as data. The node side, the job
//! stage, the block path and the payout side each emit typed events; the
//! read models (the server's stats, metrics and notifications) apply them.
//! No stage knows which read models there are, so a second source of work
//! or a second store is one more emitter or one more model, not a new call
//! into every stage.
//!
//! A miner's session has its own events ([`crate::session::Event`]), read
//! by its connection: they are per share, on the hot path, and stay there.
//! These are per template, per poll and per block.
//!
//! Delivery is synchronous and in order, on the emitter's thread: a read
//! model never blocks or waits (a short lock, an atomic, a queue it does
//! not wait on), and what an emitter told is visible as soon as it returns.

use std::sync::Arc;

/// Something a stage tells.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Node(NodeEvent),
    Job(JobEvent),
    Block(BlockEvent),
    Payout(PayoutEvent),
}

/// The nodes, as their watcher, fetcher and ZMQ subscribers see them.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeEvent {
    /// The configured nodes, by name in the config's order, once at start.
    Configured { names: Vec<String> },
    /// Every node's state, in the config's order, on each poll; `serving`
    /// is the index of the node templates come from.
    States {
        nodes: Vec<NodeStatus>,
        serving: Option<usize>,
    },
    /// A template was fetched in `seconds`, whether or not it changed.
    TemplateFetched { seconds: f64 },
    /// No node gives a template; `why` names each node's error.
    NoTemplates { why: String },
    /// A template was `trimmed` to fit the block limits, or `refused`.
    OverLimits { outcome: &'static str },
    /// A node's ZMQ subscription is up, or ended.
    Zmq { node: String, up: bool },
    /// A node's ZMQ subscription went silent while its tip moved.
    ZmqSilent { node: String },
    /// A node's ZMQ announced a block.
    Hashblock { node: String },
    /// A node's verdict on a block submitted to it (an outcome label).
    BlockVerdict { node: String, outcome: &'static str },
}

/// One configured node, as the operator sees it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NodeStatus {
    /// Its config name (never its address).
    pub name: String,
    /// `up`, `behind` (its tip trails the best for a while), `down`, or
    /// `unknown` before it first answers.
    pub state: &'static str,
    /// Whether templates come from it now.
    pub serving: bool,
    pub height: Option<u32>,
    pub tip: Option<String>,
    pub last_error: Option<String>,
    /// Unix seconds it last started or stopped answering.
    pub since: u64,
    /// It answers and its templates do not keep failing.
    #[serde(skip)]
    pub up: bool,
    /// Its tip has trailed the best for long enough (even while down).
    #[serde(skip)]
    pub behind: bool,
}

/// The job stage.
#[derive(Clone, Debug, PartialEq)]
pub enum JobEvent {
    /// A changed template's jobs went out to every payout group.
    Published {
        height: u32,
        transactions: usize,
        prev_hash: String,
        /// For a new tip: seconds from noticing it to its jobs.
        tip_to_job: Option<f64>,
    },
    /// No node served for `mining.failover_after_seconds`: every group's
    /// work is withdrawn and its connections closed, until the next
    /// template is published.
    Withdrawn,
    /// No node served for `mining.failover_after_seconds`: every group
    /// mines the jobs of upstream pool `name` (once per move, not per job)
    /// until the next template is published.
    OnUpstream { name: String },
}

/// A found block's way from the journal to the nodes' verdict.
#[derive(Clone, Debug, PartialEq)]
pub enum BlockEvent {
    /// A batch of blocks was made durable in `seconds`.
    Journaled { seconds: f64 },
    /// A block could not be journaled (it is submitted anyway).
    Unjournaled,
    /// Blocks after their parent's first, by what became of them
    /// (`kept`, `dropped_full`, `dropped_superseded`, `submitted`, `discarded`).
    Siblings { outcome: &'static str, count: u64 },
    /// The siblings kept now, and their bytes.
    Kept { blocks: usize, bytes: u64 },
    /// A `submitblock` call goes out (every attempt, to every node).
    Submitting,
    /// A block is submitted as the first on its parent, `delay` seconds
    /// after its share was read.
    Found {
        height: u32,
        hash: String,
        worker: String,
        payout: String,
        /// Every output its coinbase pays (splits first, the main last).
        paid: Vec<crate::work::payout::Paid>,
        delay: f64,
    },
    /// The nodes' verdict (`accepted`, `duplicate`, `inconclusive`,
    /// `rejected`), for a block of this run or an earlier one.
    Settled {
        height: u32,
        hash: String,
        worker: String,
        /// Unix seconds its share arrived.
        found_at: u64,
        payout: String,
        paid: Vec<crate::work::payout::Paid>,
        outcome: &'static str,
    },
}

/// The payout side: what sessions kept for their miners' return hold.
#[derive(Clone, Debug, PartialEq)]
pub enum PayoutEvent {
    /// The parked sessions now, and about the bytes their jobs hold.
    Parked { sessions: usize, bytes: usize },
}

/// Something that keeps a view of what the stages told.
pub trait ReadModel: Send + Sync {
    /// Applies one event; never blocks (see the module's comment).
    fn apply(&self, event: &Event);
}

/// Where a stage emits: every read model, in order. Cheap to clone.
#[derive(Clone, Default)]
pub struct Events {
    models: Arc<[Arc<dyn ReadModel>]>,
}

impl Events {
    pub fn new(models: Vec<Arc<dyn ReadModel>>) -> Events {
        Events {
            models: models.into(),
        }
    }

    /// Hands `event` to every read model.
    pub fn emit(&self, event: Event) {
        for model in self.models.iter() {
            model.apply(&event);
        }
    }

    pub fn node(&self, event: NodeEvent) {
        self.emit(Event::Node(event));
    }

    pub fn job(&self, event: JobEvent) {
        self.emit(Event::Job(event));
    }

    pub fn block(&self, event: BlockEvent) {
        self.emit(Event::Block(event));
    }

    pub fn payout(&self, event: PayoutEvent) {
        self.emit(Event::Payout(event));
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Events({} read models)", self.models.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<Event>>);

    impl ReadModel for Log {
        fn apply(&self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    #[test]
    fn every_read_model_gets_every_event_in_order() {
        let (a, b) = (Arc::new(Log::default()), Arc::new(Log::default()));
        let events = Events::new(vec![a.clone(), b.clone()]);
        events.block(BlockEvent::Submitting);
        events.payout(PayoutEvent::Parked {
            sessions: 1,
            bytes: 2,
        });
        let want = vec![
            Event::Block(BlockEvent::Submitting),
            Event::Payout(PayoutEvent::Parked {
                sessions: 1,
                bytes: 2,
            }),
        ];
        assert_eq!(*a.0.lock().unwrap(), want);
        assert_eq!(*b.0.lock().unwrap(), want);
    }

    #[test]
    fn a_node_status_shows_its_state_not_the_flags_it_was_made_from() {
        let status = NodeStatus {
            name: "a".into(),
            state: "down",
            serving: false,
            height: None,
            tip: None,
            last_error: Some("refused".into()),
            since: 1,
            up: false,
            behind: true,
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["state"], "down");
        assert!(json.get("up").is_none() && json.get("behind").is_none());
    }
}
