//! Workers mining for the fallback address (`username_fallback`).
//!
//! In `username` mode with a fallback, a customer's typo (`addr_rig` for
//! `addr.rig`, a wrong checksum, a testnet address on mainnet) is not
//! refused: the machine mines, and its blocks pay the operator. Neither
//! side would notice, so each such worker is logged once with the reason,
//! counted (`ndas_payout_fallbacks_total`, no label), and listed in
//! `/api/stats` `payouts.fallback` for the status page.
//!
//! Bounded: at most [`MAX_KEPT`] names (the first seen go first), each
//! name and reason cut to [`MAX_TEXT`] bytes, and at most
//! [`LOG_PER_MINUTE`] warnings a minute, the rest summed into the next, so
//! a stranger authorizing junk names grows neither memory nor the log.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Worker names kept.
pub const MAX_KEPT: usize = 1000;
/// Names `/api/stats` lists, newest first.
const SHOWN: usize = 100;
/// Longest name or reason kept, in bytes.
pub const MAX_TEXT: usize = 200;
/// Warnings logged a minute at most.
pub const LOG_PER_MINUTE: u32 = 10;

/// The workers seen mining for the fallback address.
#[derive(Debug, Default)]
pub struct Fallbacks {
    by_worker: HashMap<Arc<str>, Entry>,
    /// Names in the order first seen, for the bound.
    order: VecDeque<Arc<str>>,
    /// The minute warnings are counted in, how many, and how many were not
    /// logged since the last one that was.
    minute: Option<Instant>,
    logged: u32,
    unlogged: u64,
}

#[derive(Debug)]
struct Entry {
    why: Arc<str>,
    /// Unix seconds first and last authorized.
    since: u64,
    last: u64,
}

/// `text` cut to at most `MAX_TEXT` bytes, on a character boundary.
fn cut(text: &str) -> &str {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Fallbacks {
    /// `worker` was authorized and mines for the fallback address
    /// because of `why`; logged the first time its name is seen.
    pub fn record(&mut self, worker: &str, why: &str, now: Instant, unix: u64) {
        let worker = cut(worker);
        if let Some(entry) = self.by_worker.get_mut(worker) {
            entry.last = unix;
            return;
        }
        if self.order.len() >= MAX_KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.by_worker.remove(&oldest);
            }
        }
        let (name, why): (Arc<str>, Arc<str>) = (worker.into(), cut(why).into());
        self.order.push_back(name.clone());
        self.by_worker.insert(
            name,
            Entry {
                why: why.clone(),
                since: unix,
                last: unix,
            },
        );
        self.warn(worker, &why, now);
    }

    /// One warning, within [`LOG_PER_MINUTE`].
    fn warn(&mut self, worker: &str, why: &str, now: Instant) {
        let fresh = self
            .minute
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(60));
        if fresh {
            (self.minute, self.logged) = (Some(now), 0);
        }
        if self.logged >= LOG_PER_MINUTE {
            self.unlogged += 1;
            return;
        }
        self.logged += 1;
        let also = std::mem::take(&mut self.unlogged);
        tracing::warn!(
            worker = %worker.escape_debug(),
            why = %why.escape_debug(),
            also_since_last_warning = also,
            "worker mines for the fallback address (mining.username_fallback): its name is not an address this pool can pay"
        );
    }

    /// Workers kept now.
    pub fn len(&self) -> usize {
        self.by_worker.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.by_worker.is_empty()
    }

    /// `payouts.fallback`: how many are kept and the newest, each with its
    /// reason and when it was first and last authorized.
    pub fn snapshot(&self) -> Value {
        let newest: Vec<Value> = self
            .order
            .iter()
            .rev()
            .take(SHOWN)
            .filter_map(|name| {
                let entry = self.by_worker.get(name)?;
                Some(json!({
                    "worker": &**name,
                    "why": &*entry.why,
                    "since": entry.since,
                    "last_authorized": entry.last,
                }))
            })
            .collect();
        json!({"workers": self.len(), "recent": newest})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_is_kept_once_with_its_reason_and_the_table_is_bounded() {
        let mut fallbacks = Fallbacks::default();
        let now = Instant::now();
        fallbacks.record("addr_rig", "`addr_rig` is not a Bitcoin address", now, 10);
        fallbacks.record("addr_rig", "`addr_rig` is not a Bitcoin address", now, 20);
        assert_eq!(fallbacks.len(), 1);
        let shown = fallbacks.snapshot();
        assert_eq!(shown["recent"][0]["worker"], json!("addr_rig"));
        assert_eq!(shown["recent"][0]["since"], json!(10));
        assert_eq!(shown["recent"][0]["last_authorized"], json!(20));
        // A flood of junk names: bounded in names, text and warnings.
        let long = "é".repeat(400);
        for n in 0..(MAX_KEPT + 50) {
            fallbacks.record(&format!("{n}{long}"), &long, now, 30);
        }
        assert_eq!(fallbacks.len(), MAX_KEPT);
        assert!(fallbacks.by_worker.keys().all(|k| k.len() <= MAX_TEXT));
        assert_eq!(fallbacks.logged, LOG_PER_MINUTE);
        assert_eq!(
            fallbacks.snapshot()["recent"].as_array().unwrap().len(),
            SHOWN
        );
        // The first seen went first.
        assert!(!fallbacks.by_worker.contains_key("addr_rig"));
    }
}
