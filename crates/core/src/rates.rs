//! Hashrate from accepted difficulty, as exponentially decaying averages over
//! 1 minute, 5 minutes and 1 hour: constant memory per worker.

use std::time::Instant;

/// The averaging windows, in seconds.
pub const WINDOWS: [f64; 3] = [60.0, 300.0, 3600.0];

/// Hashes per difficulty-1 share.
const HASHES_PER_DIFF1: f64 = 4_294_967_296.0;

/// The youngest age the warm-up correction assumes, so one early share does
/// not read as an enormous rate.
const MIN_AGE_SECONDS: f64 = 30.0;

/// Decaying averages of accepted difficulty per second.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    started: Instant,
    last: Instant,
    per_second: [f64; 3],
}

impl Rates {
    pub fn new(now: Instant) -> Rates {
        Rates {
            started: now,
            last: now,
            per_second: [0.0; 3],
        }
    }

    /// Adds an accepted share of `difficulty`.
    pub fn add(&mut self, difficulty: f64, now: Instant) {
        self.decay(now);
        for (rate, window) in self.per_second.iter_mut().zip(WINDOWS) {
            *rate += difficulty / window;
        }
    }

    /// When the last share was added (or tracking began).
    pub fn last(&self) -> Instant {
        self.last
    }

    /// Hashes per second over each window. While tracking is younger than a
    /// window, the average is scaled up by the part of the window seen, so a
    /// new worker's hour figure is right after minutes, not hours.
    pub fn hashrates(&self, now: Instant) -> [f64; 3] {
        let mut copy = *self;
        copy.decay(now);
        let age = now
            .saturating_duration_since(self.started)
            .as_secs_f64()
            .max(MIN_AGE_SECONDS);
        let mut out = [0.0; 3];
        for ((out, rate), window) in out.iter_mut().zip(copy.per_second).zip(WINDOWS) {
            *out = rate / (1.0 - (-age / window).exp()) * HASHES_PER_DIFF1;
        }
        out
    }

    fn decay(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        if elapsed > 0.0 {
            for (rate, window) in self.per_second.iter_mut().zip(WINDOWS) {
                *rate *= (-elapsed / window).exp();
            }
            self.last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_steady_share_rate_converges_to_its_hashrate() {
        let start = Instant::now();
        let mut rates = Rates::new(start);
        // Difficulty 1024 every second for two hours: 1024 * 2^32 H/s.
        for second in 1..=7200 {
            rates.add(1024.0, start + Duration::from_secs(second));
        }
        let expected = 1024.0 * HASHES_PER_DIFF1;
        for rate in rates.hashrates(start + Duration::from_secs(7200)) {
            assert!((rate / expected - 1.0).abs() < 0.02, "{rate} vs {expected}");
        }
    }

    #[test]
    fn a_young_worker_reads_its_true_rate_in_every_window() {
        let start = Instant::now();
        let mut rates = Rates::new(start);
        for second in 1..=600 {
            rates.add(2.0, start + Duration::from_secs(second));
        }
        let expected = 2.0 * HASHES_PER_DIFF1;
        for rate in rates.hashrates(start + Duration::from_secs(600)) {
            assert!((rate / expected - 1.0).abs() < 0.02, "{rate} vs {expected}");
        }
    }

    #[test]
    fn silence_decays_the_short_window_first() {
        let start = Instant::now();
        let mut rates = Rates::new(start);
        for second in 1..=600 {
            rates.add(1.0, start + Duration::from_secs(second));
        }
        let later = rates.hashrates(start + Duration::from_secs(900));
        assert!(later[0] < later[1] && later[1] < later[2], "{later:?}");
        assert!(later[0] < 0.01 * HASHES_PER_DIFF1);
        // The last hour's true average is 600 shares in 900 s.
        assert!(
            (later[2] / HASHES_PER_DIFF1 - 0.667).abs() < 0.05,
            "{later:?}"
        );
    }
}
