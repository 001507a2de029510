//! Per-worker figures for the JSON API (never Prometheus labels).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};

use ndas_core::clock::unix_now;
use ndas_core::rates::Rates;
use ndas_core::sync::LockAnyway;

/// One worker name; several connections may share it.
#[derive(Debug)]
pub struct Worker {
    pub name: Arc<str>,
    state: Mutex<WorkerState>,
    /// Its totals from earlier runs, read from the history the first time
    /// this entry is written there.
    history_base: std::sync::OnceLock<Totals>,
}

/// A worker's totals across runs, as the API shows them (the history
/// stores them as its own `history::StoredTotals`).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Totals {
    pub accepted: u64,
    pub rejected: u64,
    pub stale: u64,
    pub best_share: f64,
    /// Unix seconds.
    pub last_share: u64,
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
    pace: Pace,
    /// Its shares an upstream pool answered (no node served).
    upstream_accepted: u64,
    upstream_rejected: u64,
    /// Since the fleet history last took them.
    minute: MinuteFigures,
}

/// What a worker's shares came to since they were last taken: one row of
/// the fleet history's `worker_minutes`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MinuteFigures {
    pub accepted: u64,
    pub rejected: u64,
    pub stale: u64,
    pub accepted_difficulty: f64,
    pub best_share: f64,
}

impl MinuteFigures {
    /// Whether no share was counted.
    pub fn is_empty(&self) -> bool {
        self.accepted == 0 && self.rejected == 0
    }
}

/// How fast a worker finds shares: seconds per unit of difficulty (the
/// inverse of its hashrate, in shares), averaged over its recent shares.
#[derive(Debug, Default)]
struct Pace {
    last: Option<Instant>,
    /// The difficulty its last share was mined at (a vardiff change goes
    /// out with the next job; the share in hand is still the old one's).
    last_difficulty: f64,
    seconds_per_difficulty: Option<f64>,
}

/// The weight of each new share in the pace (about its last ten).
const PACE_WEIGHT: f64 = 0.1;

/// What a worker with a single share is expected to take for its next.
const FIRST_SHARE_EXPECTED_SECONDS: f64 = 600.0;

/// Whether a worker shares as its hashrate says it should.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Online,
    /// No accepted share for the configured multiple of its expected
    /// share interval.
    Offline,
}

impl Presence {
    /// The `state` label and API value.
    pub fn label(self) -> &'static str {
        match self {
            Presence::Online => "online",
            Presence::Offline => "offline",
        }
    }
}

/// The longest a share interval is expected to be (a day): a worker whose
/// hashrate reads as nothing is not waited for forever.
const MAX_EXPECTED_SECONDS: f64 = 86_400.0;

/// Where a worker stands: online or not, how often it should share, and
/// how long since it last did.
#[derive(Clone, Copy, Debug)]
pub struct Standing {
    pub presence: Presence,
    pub expected_seconds: f64,
    pub since_share_seconds: f64,
    pub hashrate: f64,
    pub last_share: Instant,
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
            pace: Pace::default(),
            upstream_accepted: 0,
            upstream_rejected: 0,
            minute: MinuteFigures::default(),
        };
        Worker {
            name,
            state: Mutex::new(state),
            history_base: std::sync::OnceLock::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, WorkerState> {
        // A panic while holding this lock leaves plain counters behind: keep going.
        self.state.lock_anyway()
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

    /// An accepted share of `difficulty` that achieved `achieved`.
    pub fn accepted(&self, difficulty: f64, achieved: f64, now: Instant) {
        let mut state = self.state();
        state.accepted += 1;
        state.best_share = state.best_share.max(achieved);
        let minute = &mut state.minute;
        minute.accepted += 1;
        minute.accepted_difficulty += difficulty;
        minute.best_share = minute.best_share.max(achieved);
        state.last_share = Some(unix_now());
        state.last_seen = now;
        state.rates.add(difficulty, now);
        if let Some(previous) = state.pace.last {
            let sample = now.saturating_duration_since(previous).as_secs_f64()
                / difficulty.max(f64::MIN_POSITIVE);
            let pace = &mut state.pace.seconds_per_difficulty;
            *pace = Some(pace.map_or(sample, |p| p + PACE_WEIGHT * (sample - p)));
        }
        state.pace.last = Some(now);
        state.pace.last_difficulty = difficulty;
    }

    /// A refused share (`stale`: on a job of an earlier tip).
    pub fn rejected(&self, stale: bool) {
        let mut state = self.state();
        state.rejected += 1;
        state.minute.rejected += 1;
        if stale {
            state.stale += 1;
            state.minute.stale += 1;
        }
    }

    /// An upstream pool's answer to one of its shares.
    pub fn upstream_answered(&self, accepted: bool) {
        let mut state = self.state();
        if accepted {
            state.upstream_accepted += 1;
        } else {
            state.upstream_rejected += 1;
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
        state.minute.rejected += rejected;
        state.minute.stale += stale;
    }

    /// Its 5-minute hashrate now (by which the status page ranks workers)
    /// and whether it shares as often as it should.
    pub fn standing(&self, now: Instant, offline_after: f64) -> Standing {
        let state = self.state();
        let mut standing = Self::presence_of(&state, now, offline_after);
        standing.hashrate = state.rates.hashrates(now)[1];
        standing
    }

    /// Whether it shares as often as it should, without its hashrate.
    pub fn presence(&self, now: Instant, offline_after: f64) -> Presence {
        Self::presence_of(&self.state(), now, offline_after).presence
    }

    /// Its expected share interval is its pace (seconds per difficulty,
    /// over its recent shares) times its last share's difficulty: its
    /// difficulty over its hashrate, whatever its pace, a Bitaxe's or an
    /// S21's, and untouched by silence. It is offline past `offline_after`
    /// of those intervals. Nothing on the share path but the average.
    fn presence_of(state: &WorkerState, now: Instant, offline_after: f64) -> Standing {
        let last_share = state.pace.last.unwrap_or_else(|| state.rates.last());
        let expected_seconds = match state.pace.seconds_per_difficulty {
            Some(pace) => (pace * state.pace.last_difficulty).clamp(1.0, MAX_EXPECTED_SECONDS),
            None => FIRST_SHARE_EXPECTED_SECONDS,
        };
        let since_share_seconds = now.saturating_duration_since(last_share).as_secs_f64();
        Standing {
            presence: match since_share_seconds > offline_after * expected_seconds {
                true => Presence::Offline,
                false => Presence::Online,
            },
            expected_seconds,
            since_share_seconds,
            hashrate: 0.0,
            last_share,
        }
    }

    /// What its shares came to since the last call, and starts again.
    pub fn take_minute(&self) -> MinuteFigures {
        std::mem::take(&mut self.state().minute)
    }

    /// Its totals from earlier runs: `load`ed the first time asked.
    pub fn history_base(&self, load: impl FnOnce() -> Totals) -> Totals {
        self.history_base.get_or_init(load).clone()
    }

    /// `base` plus this run's figures.
    pub fn totals_over(&self, base: &Totals) -> Totals {
        let state = self.state();
        Totals {
            accepted: base.accepted + state.accepted,
            rejected: base.rejected + state.rejected,
            stale: base.stale + state.stale,
            best_share: base.best_share.max(state.best_share),
            last_share: state.last_share.unwrap_or(base.last_share),
        }
    }

    /// The worker as `/api/workers` shows it.
    pub fn to_json(&self, now: Instant, offline_after: f64) -> Value {
        let standing = self.standing(now, offline_after);
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
            "upstream": {
                "accepted": state.upstream_accepted,
                "rejected": state.upstream_rejected,
            },
            "best_share": state.best_share,
            "last_share": state.last_share,
            "user_agent": state.user_agent,
            "connected_since": state.connected_since,
            "state": standing.presence.label(),
            "share_interval": {
                "expected_seconds": standing.expected_seconds,
                "since_last_seconds": standing.since_share_seconds,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A worker that shared `count` times, every `every`, from `start`;
    /// when its last share was.
    fn sharing(worker: &Worker, start: Instant, every: Duration, count: u32) -> Instant {
        worker.set_difficulty(1024.0);
        let mut at = start;
        for _ in 0..count {
            at += every;
            worker.accepted(1024.0, 2048.0, at);
        }
        at
    }

    fn presence(worker: &Worker, at: Instant) -> Presence {
        worker.standing(at, 10.0).presence
    }

    #[test]
    fn a_worker_is_offline_after_ten_of_its_own_share_intervals_and_back_with_a_share() {
        let start = Instant::now();
        let fast = Worker::new("acct.s21".into(), start);
        let last = sharing(&fast, start, Duration::from_secs(2), 200);
        let expected = fast.standing(last, 10.0).expected_seconds;
        assert!((1.5..3.0).contains(&expected), "{expected}");
        assert_eq!(
            presence(&fast, last + Duration::from_secs(15)),
            Presence::Online
        );
        assert_eq!(
            presence(&fast, last + Duration::from_secs(40)),
            Presence::Offline
        );
        // Silence does not stretch what is expected of it.
        let later = fast.standing(last + Duration::from_secs(600), 10.0);
        assert_eq!(later.expected_seconds, expected);
        fast.accepted(1024.0, 2048.0, last + Duration::from_secs(601));
        assert_eq!(
            presence(&fast, last + Duration::from_secs(602)),
            Presence::Online
        );

        // A slow machine at the same difficulty is judged by its own pace.
        let slow = Worker::new("acct.bitaxe".into(), start);
        let last = sharing(&slow, start, Duration::from_secs(60), 60);
        assert_eq!(
            presence(&slow, last + Duration::from_secs(300)),
            Presence::Online
        );
        assert_eq!(
            presence(&slow, last + Duration::from_secs(900)),
            Presence::Offline
        );
    }
}
