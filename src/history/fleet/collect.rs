//! Making a batch from what the replica keeps anyway: each worker's
//! figures since the last batch (taken from its registry entry, so the
//! share path adds nothing but a few sums under the lock it already
//! holds), the sessions log, the blocks the block path told of, and the
//! nodes' and upstream pools' states compared with the last batch's.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use ndas_core::events::{BlockEvent, Event, ReadModel};
use ndas_core::sync::LockAnyway;

use super::rows::{
    Batch, BlockRow, ReplicaMinute, SessionRow, SessionStart, StateRow, WorkerMinute,
};
use crate::stats::sessions::SessionRecord;
use crate::stats::{registry, MinuteFigures, Stats};

/// Most block rows held between two batches (a block is rare; a flood of
/// verdicts for old blocks at a restart is not, and must stay bounded).
const MAX_BLOCKS: usize = 10_000;

/// What the batches are made from, besides the stats.
pub struct Collector {
    pub replica: String,
    pub version: String,
    /// Unix seconds, and microseconds (the sessions' run), this run started.
    pub started_at: u64,
    pub run: u64,
    blocks: Mutex<Vec<BlockRow>>,
    /// Each node's and upstream's state (and since when) in the last batch.
    states: Mutex<HashMap<(String, String), (String, u64)>>,
}

impl Collector {
    pub fn new(replica: String, started_micros: u64) -> Collector {
        Collector {
            replica,
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: started_micros / 1_000_000,
            run: started_micros,
            blocks: Mutex::new(Vec::new()),
            states: Mutex::new(HashMap::new()),
        }
    }

    /// The batch for the minute starting at `minute` (Unix seconds), made
    /// at `now`; the random `id` keys it.
    pub fn batch(&self, stats: &Stats, minute: u64, now: u64, id: i64) -> Batch {
        // Workers that left the registry first (evicted or pruned with
        // shares not yet taken), then every kept one's minute.
        let row = |name: &str, figures: MinuteFigures| WorkerMinute {
            worker: name.to_owned(),
            minute,
            accepted: figures.accepted,
            rejected: figures.rejected,
            stale: figures.stale,
            accepted_difficulty: figures.accepted_difficulty,
            best_share: figures.best_share,
        };
        let (leftovers, leftovers_dropped) = stats.workers.take_leftovers();
        let mut workers: Vec<WorkerMinute> = leftovers
            .into_iter()
            .map(|(name, figures)| row(&name, figures))
            .collect();
        workers.extend(
            stats
                .workers
                .page(registry::From::Offset(0), usize::MAX)
                .into_iter()
                .filter_map(|worker| {
                    let figures = worker.take_minute();
                    (!figures.is_empty()).then(|| row(&worker.name, figures))
                }),
        );
        let (records, dropped) = stats.sessions.take();
        let (online, _) = stats.worker_states();
        let (_, connected) = stats.workers.counts();
        Batch {
            id,
            replica: self.replica.clone(),
            version: self.version.clone(),
            started_at: self.started_at,
            made_at: now,
            minute: Some(ReplicaMinute {
                minute,
                connections: stats.metrics.connections_open().max(0) as u64,
                workers_connected: connected as u64,
                workers_online: online as u64,
            }),
            workers,
            blocks: std::mem::take(&mut *self.blocks.lock_anyway()),
            sessions: sessions(self.run, records),
            states: self.states(stats),
            dropped_before: dropped + leftovers_dropped,
        }
    }

    /// The nodes' and upstreams' states that changed since the last batch.
    fn states(&self, stats: &Stats) -> Vec<StateRow> {
        let mut now: Vec<StateRow> = stats
            .node_statuses()
            .into_iter()
            .map(|node| StateRow {
                at: node.since,
                kind: "node".into(),
                name: node.name,
                state: node.state.into(),
                detail: node.last_error,
            })
            .collect();
        if let Some(upstreams) = stats.upstreams.get() {
            now.extend(upstreams.snapshot().into_iter().map(|pool| StateRow {
                at: pool.since,
                kind: "upstream".into(),
                name: pool.name,
                state: pool.state.into(),
                detail: pool.reason,
            }));
        }
        let mut last = self.states.lock_anyway();
        now.into_iter()
            .filter(|row| {
                let key = (row.kind.clone(), row.name.clone());
                let seen = (row.state.clone(), row.at);
                last.insert(key, seen.clone()).as_ref() != Some(&seen)
            })
            .collect()
    }
}

/// The log's records as rows, one per session (a start and its end in the
/// same minute are one row).
fn sessions(run: u64, records: Vec<SessionRecord>) -> Vec<SessionRow> {
    let mut rows: BTreeMap<u64, SessionRow> = BTreeMap::new();
    for record in records {
        match record {
            SessionRecord::Start {
                seq,
                worker,
                user_agent,
                protocol,
                at,
            } => {
                let row = rows.entry(seq).or_insert_with(|| session(run, seq));
                row.start = Some(SessionStart {
                    worker: worker.to_string(),
                    user_agent,
                    protocol: protocol.into(),
                    at,
                });
            }
            SessionRecord::End { seq, at } => {
                rows.entry(seq)
                    .or_insert_with(|| session(run, seq))
                    .ended_at = Some(at);
            }
        }
    }
    rows.into_values().collect()
}

fn session(run: u64, seq: u64) -> SessionRow {
    SessionRow {
        run,
        seq,
        ..SessionRow::default()
    }
}

impl ReadModel for Collector {
    fn apply(&self, event: &Event) {
        let row = match event {
            Event::Block(BlockEvent::Found {
                height,
                hash,
                worker,
                paid,
                ..
            }) => {
                let now = ndas_core::clock::unix_now();
                BlockRow {
                    hash: hash.clone(),
                    height: *height,
                    worker: worker.clone(),
                    found_at: now,
                    status: "pending".into(),
                    at: now,
                    paid: paid
                        .iter()
                        .map(|p| (p.address.to_string(), p.value))
                        .collect(),
                }
            }
            Event::Block(BlockEvent::Settled {
                height,
                hash,
                worker,
                found_at,
                paid,
                outcome,
                ..
            }) => BlockRow {
                hash: hash.clone(),
                height: *height,
                worker: worker.clone(),
                found_at: *found_at,
                status: (*outcome).into(),
                at: ndas_core::clock::unix_now(),
                paid: paid
                    .iter()
                    .map(|p| (p.address.to_string(), p.value))
                    .collect(),
            },
            _ => return,
        };
        let mut blocks = self.blocks.lock_anyway();
        if blocks.len() < MAX_BLOCKS {
            blocks.push(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;
    use crate::metrics::Metrics;
    use crate::stats::registry::Joined;
    use ndas_core::events::{NodeEvent, NodeStatus};

    fn node(state: &'static str, since: u64) -> Event {
        Event::Node(NodeEvent::States {
            nodes: vec![NodeStatus {
                name: "primary".into(),
                state,
                serving: true,
                height: Some(1),
                tip: None,
                last_error: None,
                since,
                up: true,
                behind: false,
            }],
            serving: Some(0),
        })
    }

    #[test]
    fn each_figure_goes_in_one_batch_only() {
        let stats = Stats::new(Arc::new(Metrics::new()));
        stats.sessions.enable();
        let collector = Collector::new("r".into(), 1_700_000_000_000_000);
        let name: Arc<str> = "acct.rig".into();
        let Joined::Entry(worker, _) = stats.workers.join(&name, Instant::now()) else {
            panic!("joined");
        };
        worker.accepted(1024.0, 5000.0, Instant::now());
        worker.accepted(2048.0, 3000.0, Instant::now());
        worker.rejected(true);
        let seq = stats
            .sessions
            .start(&name, Some("bitaxe"), "stratum")
            .unwrap();
        stats.sessions.end(seq);
        stats.apply(&node("up", 10));

        let first = collector.batch(&stats, 60, 121, 1);
        assert_eq!(
            first.workers,
            [WorkerMinute {
                worker: "acct.rig".into(),
                minute: 60,
                accepted: 2,
                rejected: 1,
                stale: 1,
                accepted_difficulty: 3072.0,
                best_share: 5000.0,
            }]
        );
        assert_eq!(first.sessions.len(), 1, "a start and its end are one row");
        let session = &first.sessions[0];
        assert_eq!(
            session.start.as_ref().unwrap().user_agent.as_deref(),
            Some("bitaxe")
        );
        assert!(session.ended_at.is_some());
        assert_eq!(first.states.len(), 1);

        // Nothing twice: the next minute has only what happened since.
        let second = collector.batch(&stats, 120, 181, 2);
        assert!(second.workers.is_empty() && second.sessions.is_empty());
        assert!(
            second.states.is_empty(),
            "an unchanged state is not written again"
        );
        stats.apply(&node("down", 150));
        worker.accepted(1024.0, 9000.0, Instant::now());
        let third = collector.batch(&stats, 180, 241, 3);
        assert_eq!(
            third.workers[0].best_share, 9000.0,
            "the minute's best, not the run's"
        );
        assert_eq!(third.states[0].state, "down");
    }
}
