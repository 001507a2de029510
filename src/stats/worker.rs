//! Per-worker figures for the JSON API (never Prometheus labels).

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::rates::Rates;

/// One worker name; several connections may share it.
#[derive(Debug)]
pub struct Worker {
    pub name: Arc<str>,
    state: Mutex<WorkerState>,
}

#[derive(Debug)]
struct WorkerState {
    connections: u32,
    connected_since: u64,
    user_agent: Option<String>,
    difficulty: f64,
    accepted: u64,
    rejected: u64,
    stale: u64,
    best_share: f64,
    last_share: Option<u64>,
    last_seen: Instant,
    rates: Rates,
}

/// Seconds since 1970.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Worker {
    pub(super) fn new(name: Arc<str>, now: Instant) -> Worker {
        let state = WorkerState {
            connections: 0,
            connected_since: unix_now(),
            user_agent: None,
            difficulty: 0.0,
            accepted: 0,
            rejected: 0,
            stale: 0,
            best_share: 0.0,
            last_share: None,
            last_seen: now,
            rates: Rates::new(now),
        };
        Worker {
            name,
            state: Mutex::new(state),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, WorkerState> {
        // A panic while holding this lock leaves plain counters behind: keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn connected(&self, user_agent: Option<&str>, difficulty: f64) {
        let mut state = self.state();
        if state.connections == 0 {
            state.connected_since = unix_now();
        }
        state.connections += 1;
        state.difficulty = difficulty;
        if let Some(agent) = user_agent {
            state.user_agent = Some(agent.to_owned());
        }
    }

    pub(super) fn disconnected(&self, now: Instant) {
        let mut state = self.state();
        state.connections = state.connections.saturating_sub(1);
        state.last_seen = now;
    }

    pub(super) fn accepted(&self, difficulty: f64, achieved: f64, now: Instant) {
        let mut state = self.state();
        state.accepted += 1;
        state.best_share = state.best_share.max(achieved);
        state.last_share = Some(unix_now());
        state.last_seen = now;
        state.rates.add(difficulty, now);
    }

    pub(super) fn rejected(&self, stale: bool) {
        let mut state = self.state();
        state.rejected += 1;
        if stale {
            state.stale += 1;
        }
    }

    pub(super) fn set_difficulty(&self, difficulty: f64) {
        self.state().difficulty = difficulty;
    }

    /// Whether nothing is connected and nothing was heard for `idle`.
    pub(super) fn is_idle(&self, now: Instant, idle: std::time::Duration) -> bool {
        let state = self.state();
        state.connections == 0 && now.saturating_duration_since(state.last_seen) > idle
    }

    /// Counts what its connection refused before it joined the registry.
    pub(super) fn rejected_before_joining(&self, rejected: u64, stale: u64) {
        let mut state = self.state();
        state.rejected += rejected;
        state.stale += stale;
    }

    /// Its 5-minute hashrate, by which the status page ranks workers.
    pub(super) fn hashrate(&self, now: Instant) -> f64 {
        self.state().rates.hashrates(now)[1]
    }

    /// The worker as `/api/workers` shows it.
    pub fn to_json(&self, now: Instant) -> Value {
        let state = self.state();
        let [m1, m5, h1] = state.rates.hashrates(now);
        json!({
            "name": &*self.name,
            "connections": state.connections,
            "hashrate": {"1m": m1, "5m": m5, "1h": h1},
            "difficulty": state.difficulty,
            "accepted": state.accepted,
            "rejected": state.rejected,
            "stale": state.stale,
            "best_share": state.best_share,
            "last_share": state.last_share,
            "user_agent": state.user_agent,
            "connected_since": state.connected_since,
        })
    }
}
