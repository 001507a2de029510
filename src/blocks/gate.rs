//! At most [`SUBMITS_IN_FLIGHT`] `submitblock` calls at the node at once,
//! blocks on the current tip first.
//!
//! A burst of found blocks (regtest, or a fleet restarting onto one job)
//! otherwise fills Bitcoin Core's RPC work queue until it answers HTTP 503
//! "Work queue depth exceeded", which also delays the template NDAS needs
//! next. Blocks whose parent is the tip can still extend the chain: they go
//! before blocks on a tip already replaced, each kind in arrival order.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ndas_core::sync::LockAnyway;
use tokio::sync::oneshot;

/// `submitblock` calls NDAS makes at once (Core serves 16 RPC threads).
pub const SUBMITS_IN_FLIGHT: usize = 4;

/// Hands out the right to call `submitblock`. A freed slot goes straight to
/// the first in line: one wake per slot, however many blocks wait.
pub struct SubmitGate {
    slots: usize,
    state: Mutex<State>,
}

struct State {
    free: usize,
    next_ticket: u64,
    /// Waiting callers by (0 for the current tip, 1 for an older one;
    /// arrival), each told when a slot is handed to it.
    waiting: BTreeMap<(u8, u64), oneshot::Sender<()>>,
}

/// One call's right; the slot goes to the next in line when dropped.
pub struct Permit<'a> {
    gate: &'a SubmitGate,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.gate.release();
    }
}

/// A place in the line, given up if the waiting caller goes away.
struct Place<'a> {
    gate: &'a SubmitGate,
    key: (u8, u64),
    served: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if self.served {
            return;
        }
        let handed = self.gate.lock().waiting.remove(&self.key).is_none();
        // Handed a slot just as it gave up: pass it on.
        if handed {
            self.gate.release();
        }
    }
}

impl SubmitGate {
    pub fn new(slots: usize) -> SubmitGate {
        SubmitGate {
            slots,
            state: Mutex::new(State {
                free: slots,
                next_ticket: 0,
                waiting: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock_anyway()
    }

    /// A slot to the first waiting caller still there, or back to the pool.
    fn release(&self) {
        let mut state = self.lock();
        while let Some((_, next)) = state.waiting.pop_first() {
            if next.send(()).is_ok() {
                return;
            }
        }
        state.free += 1;
    }

    /// Waits for a slot; `on_tip` says the block's parent is the current tip.
    pub async fn enter(&self, on_tip: bool) -> Permit<'_> {
        let (handed, place) = {
            let mut state = self.lock();
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                return Permit { gate: self };
            }
            let key = (u8::from(!on_tip), state.next_ticket);
            state.next_ticket += 1;
            let (tell, handed) = oneshot::channel();
            state.waiting.insert(key, tell);
            let place = Place {
                gate: self,
                key,
                served: false,
            };
            (handed, place)
        };
        let mut place = place;
        // The sender lives in the line until the slot is handed over.
        let _ = handed.await;
        place.served = true;
        Permit { gate: self }
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        let state = self.lock();
        self.slots - state.free
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn blocks_on_the_tip_go_first_and_the_bound_holds() {
        let gate = Arc::new(SubmitGate::new(1));
        let held = gate.enter(true).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for (name, on_tip) in [
            ("old-1", false),
            ("old-2", false),
            ("tip-1", true),
            ("tip-2", true),
        ] {
            let (gate, order) = (gate.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let permit = gate.enter(on_tip).await;
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(permit);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(gate.in_flight(), 1);
        drop(held);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["tip-1", "tip-2", "old-1", "old-2"]);
        assert_eq!(gate.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_waiting_leaves_no_place_behind() {
        let gate = SubmitGate::new(1);
        let held = gate.enter(true).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(10), gate.enter(true)).await;
        assert!(gave_up.is_err());
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(5), gate.enter(false)).await;
        assert!(
            again.is_ok(),
            "the abandoned place does not block the queue"
        );
    }
}
