//! Workers' sessions as the fleet history keeps them: a worker on a
//! connection from its first accepted share (when it earns its place, as
//! in the registry) to the connection's end. Recorded only while the
//! fleet history is on, bounded, and taken by its writer once a minute.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ndas_core::clock::unix_now;
use ndas_core::sync::LockAnyway;

/// Most session records held between two takes; past it they are counted
/// and dropped (a reconnect storm must not grow memory).
pub const MAX_PENDING: usize = 100_000;

/// A session's start or end.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionRecord {
    Start {
        seq: u64,
        worker: Arc<str>,
        user_agent: Option<String>,
        protocol: &'static str,
        /// Unix seconds.
        at: u64,
    },
    End {
        seq: u64,
        at: u64,
    },
}

/// The records since the last take.
#[derive(Default)]
pub struct SessionLog {
    on: AtomicBool,
    next: AtomicU64,
    pending: Mutex<Vec<SessionRecord>>,
    dropped: AtomicU64,
}

impl SessionLog {
    /// Starts recording (the fleet history is on).
    pub fn enable(&self) {
        self.on.store(true, Ordering::Relaxed);
    }

    /// Records a worker's start; its number for the end, none when off.
    pub fn start(
        &self,
        worker: &Arc<str>,
        user_agent: Option<&str>,
        protocol: &'static str,
    ) -> Option<u64> {
        if !self.on.load(Ordering::Relaxed) {
            return None;
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.push(SessionRecord::Start {
            seq,
            worker: worker.clone(),
            user_agent: user_agent.map(str::to_owned),
            protocol,
            at: unix_now(),
        });
        Some(seq)
    }

    /// Records the end of session `seq`.
    pub fn end(&self, seq: u64) {
        self.push(SessionRecord::End {
            seq,
            at: unix_now(),
        });
    }

    fn push(&self, record: SessionRecord) {
        let mut pending = self.pending.lock_anyway();
        if pending.len() >= MAX_PENDING {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.push(record);
    }

    /// The records since the last take, and how many were dropped.
    pub fn take(&self) -> (Vec<SessionRecord>, u64) {
        let records = std::mem::take(&mut *self.pending.lock_anyway());
        (records, self.dropped.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_kept_while_off_and_a_storm_is_bounded() {
        let log = SessionLog::default();
        let name: Arc<str> = "w".into();
        assert_eq!(log.start(&name, None, "stratum"), None);
        assert!(log.take().0.is_empty());
        log.enable();
        for _ in 0..MAX_PENDING + 10 {
            log.start(&name, Some("cgminer"), "stratum");
        }
        let (records, dropped) = log.take();
        assert_eq!((records.len(), dropped), (MAX_PENDING, 10));
        assert!(log.take().0.is_empty());
    }
}
