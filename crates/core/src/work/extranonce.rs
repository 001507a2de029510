//! Per-connection extranonce1: the instance byte then a 24-bit counter, so no
//! two connections of one replica, and no two replicas, search the same space.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes of extranonce1 NDAS gives each connection.
pub const EXTRANONCE1_LEN: usize = 4;

/// One connection's extranonce1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Extranonce1(pub [u8; EXTRANONCE1_LEN]);

impl Extranonce1 {
    /// The hex form sent in the subscribe answer.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Counter values per instance: 2^24.
pub const EXTRANONCE1_SPACE: u32 = 1 << 24;

/// Hands out extranonce1 values: `instance_id` then a counter.
///
/// The counter wraps after 16,777,216 connections — half an hour of a
/// connect-and-close flood at 10,000 a second — so each value is leased and
/// a value still held by a live connection is skipped: two miners never
/// search the same space. The leases are one bit each: 2 MiB per instance.
#[derive(Debug)]
pub struct ExtranonceAllocator {
    instance_id: u8,
    next: AtomicU32,
    in_use: Box<[AtomicU64]>,
}

/// One connection's extranonce1, free for reuse when dropped.
#[derive(Debug)]
pub struct Lease {
    allocator: Arc<ExtranonceAllocator>,
    counter: u32,
    pub extranonce1: Extranonce1,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (word, bit) = ExtranonceAllocator::slot(self.counter);
        self.allocator.in_use[word].fetch_and(!bit, Ordering::Release);
    }
}

impl ExtranonceAllocator {
    pub fn new(instance_id: u8) -> Self {
        Self::starting_at(instance_id, 0)
    }

    fn starting_at(instance_id: u8, counter: u32) -> Self {
        ExtranonceAllocator {
            instance_id,
            next: AtomicU32::new(counter),
            in_use: (0..EXTRANONCE1_SPACE / 64)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn slot(counter: u32) -> (usize, u64) {
        ((counter / 64) as usize, 1 << (counter % 64))
    }

    /// `extranonce1` again, for a miner resuming its session: `None` unless
    /// it is one of this instance's and no live connection holds it.
    pub fn claim(self: &Arc<Self>, extranonce1: Extranonce1) -> Option<Lease> {
        let [instance, a, b, c] = extranonce1.0;
        if instance != self.instance_id {
            return None;
        }
        let counter = u32::from_be_bytes([0, a, b, c]);
        let (word, bit) = Self::slot(counter);
        if self.in_use[word].fetch_or(bit, Ordering::AcqRel) & bit != 0 {
            return None;
        }
        Some(Lease {
            allocator: self.clone(),
            counter,
            extranonce1,
        })
    }

    /// The next extranonce1 no live connection holds; `None` when every one
    /// of the 2^24 is held (more connections than `max_connections` allows).
    pub fn allocate(self: &Arc<Self>) -> Option<Lease> {
        for _ in 0..EXTRANONCE1_SPACE {
            let counter = self.next.fetch_add(1, Ordering::Relaxed) % EXTRANONCE1_SPACE;
            let (word, bit) = Self::slot(counter);
            if self.in_use[word].fetch_or(bit, Ordering::AcqRel) & bit == 0 {
                let [_, a, b, c] = counter.to_be_bytes();
                return Some(Lease {
                    allocator: self.clone(),
                    counter,
                    extranonce1: Extranonce1([self.instance_id, a, b, c]),
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(allocator: &Arc<ExtranonceAllocator>) -> Lease {
        allocator.allocate().expect("a free extranonce1")
    }

    #[test]
    fn instance_byte_leads_and_counter_follows() {
        let allocator = Arc::new(ExtranonceAllocator::new(7));
        assert_eq!(next(&allocator).extranonce1, Extranonce1([7, 0, 0, 0]));
        assert_eq!(next(&allocator).extranonce1, Extranonce1([7, 0, 0, 1]));
        let other = Arc::new(ExtranonceAllocator::new(8));
        assert_ne!(next(&other).extranonce1, next(&allocator).extranonce1);
    }

    #[test]
    fn after_the_wrap_values_still_held_are_skipped_and_freed_ones_reused() {
        let allocator = Arc::new(ExtranonceAllocator::starting_at(1, 0));
        let held = next(&allocator); // 0, kept by a long-lived miner
        let freed = next(&allocator); // 1, its miner leaves
        drop(freed);
        allocator
            .next
            .store(EXTRANONCE1_SPACE - 1, Ordering::Relaxed);
        assert_eq!(
            next(&allocator).extranonce1,
            Extranonce1([1, 0xff, 0xff, 0xff])
        );
        // Wrapped: 0 is still held, 1 is free again.
        assert_eq!(next(&allocator).extranonce1, Extranonce1([1, 0, 0, 1]));
        assert_eq!(held.extranonce1, Extranonce1([1, 0, 0, 0]));
    }

    #[test]
    fn a_value_is_claimed_back_only_when_free_and_ours() {
        let allocator = Arc::new(ExtranonceAllocator::new(5));
        let held = next(&allocator);
        assert!(
            allocator.claim(held.extranonce1).is_none(),
            "held by a live connection"
        );
        let value = held.extranonce1;
        drop(held);
        let again = allocator.claim(value).expect("free again");
        assert_eq!(again.extranonce1, value);
        assert!(allocator.claim(value).is_none(), "claimed once");
        assert!(
            allocator.claim(Extranonce1([6, 0, 0, 9])).is_none(),
            "another instance's"
        );
        // A claimed value is skipped by the counter like any held one.
        drop(again);
        let claimed = allocator.claim(Extranonce1([5, 0, 0, 1])).unwrap();
        assert_eq!(next(&allocator).extranonce1, Extranonce1([5, 0, 0, 2]));
        drop(claimed);
    }

    #[test]
    fn a_full_space_allocates_nothing() {
        let allocator = Arc::new(ExtranonceAllocator::new(3));
        for word in allocator.in_use.iter() {
            word.store(u64::MAX, Ordering::Relaxed);
        }
        assert!(allocator.allocate().is_none());
    }
}
