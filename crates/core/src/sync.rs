//! The one way NDAS takes a `std` lock: a lock a panicking thread left
//! poisoned is taken anyway, with the data as that thread left it.
//!
//! Every `std::sync::Mutex` in NDAS guards counters, tables by address or
//! worker, or figures that each update changes in a few assignments: a
//! panic midway leaves at worst a count off by one, never a state worse
//! than refusing service. Panicking in turn on every later `lock()` would
//! let one bug on one miner's path take down every miner, the operator
//! API and the found-block path with it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// [`Mutex::lock`] that ignores poisoning (see the module's doc for why).
pub trait LockAnyway<T: ?Sized> {
    /// Locks, taking the data as it is even if a holder panicked.
    fn lock_anyway(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> LockAnyway<T> for Mutex<T> {
    fn lock_anyway(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::LockAnyway;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_lock_poisoned_by_a_panic_is_taken_with_what_its_holder_left() {
        let counts = Arc::new(Mutex::new(vec![1]));
        let holder = counts.clone();
        let panicked = std::thread::spawn(move || {
            let mut counts = holder.lock().unwrap();
            counts.push(2);
            panic!("a bug while holding the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(counts.is_poisoned());
        assert_eq!(*counts.lock_anyway(), [1, 2]);
        counts.lock_anyway().push(3);
        assert_eq!(*counts.lock_anyway(), [1, 2, 3]);
    }
}
