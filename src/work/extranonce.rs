//! Per-connection extranonce1: the instance byte then a 24-bit counter, so no
//! two connections of one replica, and no two replicas, search the same space.

use std::sync::atomic::{AtomicU32, Ordering};

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

/// Hands out extranonce1 values: `instance_id` then a counter.
///
/// The counter wraps after 16,777,216 connections; by then the connection
/// that held a value is long gone on any real fleet.
#[derive(Debug)]
pub struct ExtranonceAllocator {
    instance_id: u8,
    next: AtomicU32,
}

impl ExtranonceAllocator {
    pub fn new(instance_id: u8) -> Self {
        ExtranonceAllocator {
            instance_id,
            next: AtomicU32::new(0),
        }
    }

    /// The next extranonce1.
    pub fn allocate(&self) -> Extranonce1 {
        let counter = self.next.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
        let [_, a, b, c] = counter.to_be_bytes();
        Extranonce1([self.instance_id, a, b, c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_byte_leads_and_counter_follows() {
        let allocator = ExtranonceAllocator::new(7);
        assert_eq!(allocator.allocate(), Extranonce1([7, 0, 0, 0]));
        assert_eq!(allocator.allocate(), Extranonce1([7, 0, 0, 1]));
        let other = ExtranonceAllocator::new(8);
        assert_ne!(other.allocate(), ExtranonceAllocator::new(7).allocate());
    }
}
