//! The one rate limiter: a token bucket, for accepts on the stratum
//! listener, lines from one miner and requests from one address to the
//! operator port. It is told the time rather than reading a clock, so its
//! bounds are tested without sleeping and a caller under
//! `tokio::time::pause` can drive it from paused time.

use std::time::Instant;

/// `rate` tokens a second, at most `burst` saved up; each admitted thing
/// takes one. A burst up to `burst` passes at once, then the rate holds.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    /// When tokens were last counted (the last [`TokenBucket::take`]).
    at: Instant,
}

impl TokenBucket {
    /// A bucket with its whole burst saved up at `now`: a fleet starting
    /// together, or a miner's first lines, pass at once.
    pub fn full(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// A bucket with nothing saved up at `now`: the first token comes a
    /// `1 / rate` of a second later.
    pub fn empty(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: 0.0,
            ..TokenBucket::full(rate, burst, now)
        }
    }

    /// Takes one token if there is one at `now`. A `now` before the last
    /// call counts as no time passed, and the time already counted is
    /// never counted again.
    pub fn take(&mut self, now: Instant) -> bool {
        self.tokens = self.tokens_at(now);
        self.at = self.at.max(now);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// Gives back a token taken for something that turned out to be worth
    /// it (never past the burst).
    pub fn refund(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.burst);
    }

    /// From `now` on, `rate` a second and at most `burst` saved up: a
    /// connection that carries more miners is given more. A larger burst
    /// comes saved up at once (a miner joining brings its burst, as a new
    /// connection does); a smaller one cuts what was saved.
    pub fn set_rate(&mut self, rate: f64, burst: f64, now: Instant) {
        let grown = (burst - self.burst).max(0.0);
        self.tokens = (self.tokens_at(now) + grown).min(burst);
        self.at = self.at.max(now);
        (self.rate, self.burst) = (rate, burst);
    }

    /// Whether the whole burst is saved up again at `now`: such a bucket
    /// is as if never used, and a table of buckets may forget it.
    pub fn is_full(&self, now: Instant) -> bool {
        self.tokens_at(now) >= self.burst
    }

    /// When a token was last asked for, to forget the idlest first.
    pub fn last_taken(&self) -> Instant {
        self.at
    }

    fn tokens_at(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * self.rate).min(self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;
    use std::time::{Duration, Instant};

    fn taken(bucket: &mut TokenBucket, tries: u32, now: Instant) -> u32 {
        (0..tries).filter(|_| bucket.take(now)).count() as u32
    }

    #[test]
    fn a_hostile_burst_is_cut_at_the_bound_then_held_to_the_rate() {
        let start = Instant::now();
        let ms = |ms| start + Duration::from_millis(ms);
        let mut bucket = TokenBucket::full(10.0, 50.0, start);
        assert_eq!(taken(&mut bucket, 10_000, start), 50);
        // Ten a second: one per 100 ms, whatever is asked for meanwhile.
        assert_eq!(taken(&mut bucket, 1_000, ms(50)), 0);
        assert_eq!(taken(&mut bucket, 1_000, ms(150)), 1);
        assert_eq!(taken(&mut bucket, 1_000, ms(1_150)), 10);
        // Refilled over an hour, never past the burst.
        assert!(!bucket.is_full(ms(1_150)));
        assert!(bucket.is_full(ms(3_600_000)));
        assert_eq!(taken(&mut bucket, 10_000, ms(3_600_000)), 50);
    }

    #[test]
    fn an_empty_bucket_gives_its_first_token_after_one_interval() {
        let start = Instant::now();
        let ms = |ms| start + Duration::from_millis(ms);
        let mut bucket = TokenBucket::empty(10.0, 50.0, start);
        assert!(!bucket.take(ms(50)));
        assert!(bucket.take(ms(120)));
        assert!(!bucket.take(ms(130)));
        assert_eq!(bucket.last_taken(), ms(130));
    }

    #[test]
    fn a_refund_gives_back_one_token_never_past_the_burst_and_time_never_runs_back() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(2.0, 2.0, start + Duration::from_secs(1));
        assert_eq!(taken(&mut bucket, 5, start + Duration::from_secs(1)), 2);
        bucket.refund();
        assert!(bucket.take(start + Duration::from_secs(1)));
        // An earlier time (another thread's `now`) adds nothing.
        assert!(!bucket.take(start));
        bucket.refund();
        bucket.refund();
        bucket.refund();
        assert!(bucket.is_full(start));
        assert_eq!(taken(&mut bucket, 5, start), 2);
    }

    #[test]
    fn a_late_now_from_another_thread_does_not_count_the_same_time_twice() {
        let start = Instant::now();
        let s = |s| start + Duration::from_secs(s);
        let mut bucket = TokenBucket::empty(1.0, 10.0, s(10));
        // Threads of the operator port take `now` before the table's lock:
        // one that read the clock a second early gets there second.
        assert!(!bucket.take(s(9)));
        assert!(bucket.take(s(11)));
        // Second 10 to 11 was counted once: nothing is left for it.
        assert!(!bucket.take(s(11)));
    }

    #[test]
    fn a_new_rate_brings_its_added_burst_and_counts_from_its_moment() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(1.0, 2.0, start);
        assert!(bucket.take(start) && bucket.take(start) && !bucket.take(start));
        // Half a token from the old rate, and the 2 more of the new burst.
        let later = start + Duration::from_millis(500);
        bucket.set_rate(10.0, 4.0, later);
        assert!(bucket.take(later) && bucket.take(later) && !bucket.take(later));
        // Then ten a second.
        let after = later + Duration::from_millis(60);
        assert!(bucket.take(after) && !bucket.take(after));
        // A lower burst cuts what was saved up.
        let full = after + Duration::from_secs(10);
        bucket.set_rate(1.0, 1.0, full);
        assert!(bucket.take(full) && !bucket.take(full));
    }
}
