//! The wall clock, read in one place: every Unix time NDAS records (a
//! worker's last share, a found block, a node's change of state, a
//! notification's timestamp) comes from here, so they agree and a test can
//! find every reading of it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch; zero on a clock set before 1970, which is
/// wrong but not worth failing a share or a notification over.
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Whole seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    since_epoch().as_secs()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_reads_after_this_code_was_written() {
        // 2025-01-01; a clock before it is broken or reset.
        assert!(super::unix_now() > 1_735_689_600);
        assert_eq!(super::since_epoch().as_secs() / 60, super::unix_now() / 60);
    }
}
