//! Variable difficulty: steer each miner toward one share per `target_share_seconds`.

use std::time::{Duration, Instant};

/// Configured bounds and goal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VardiffConfig {
    pub start: f64,
    pub min: f64,
    pub max: f64,
    pub target_share_seconds: f64,
    /// How a difficulty of 1 or more is rounded before it is sent.
    pub rounding: Rounding,
}

/// How difficulties are rounded before `mining.set_difficulty`: firmware
/// copes with whole numbers, and not all with anything else (ESP-Miner
/// before 2.15 reads the difficulty as an integer; some firmware mishandles
/// floats that are not powers of two). Below 1 (regtest, CPU miners) a
/// difficulty stays fractional, whatever the rounding. Always down, so a
/// miner is never asked for more than vardiff or the network cap chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Sent as vardiff computed it.
    None,
    /// Whole numbers, as ckpool and most large pools send.
    #[default]
    Integer,
    /// Powers of two.
    PowerOfTwo,
}

impl Rounding {
    /// `difficulty` as it is sent.
    pub fn apply(self, difficulty: f64) -> f64 {
        if difficulty < 1.0 || !difficulty.is_finite() {
            return difficulty;
        }
        match self {
            Rounding::None => difficulty,
            Rounding::Integer => difficulty.floor(),
            Rounding::PowerOfTwo => 2f64.powi(difficulty.log2().floor() as i32),
        }
    }
}

/// A starting difficulty for a family of miners, known by the user agent
/// it sends in `mining.subscribe`: where a port's start would be wrong for
/// it (a NiceHash rental wants 500,000 or more, a NerdMiner a ten-thousandth).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDifficulty {
    /// Matched against the start of the user agent, ignoring case.
    pub prefix: String,
    /// The family's starting difficulty, within the port's bounds.
    pub start: f64,
    /// A floor vardiff keeps the family above (NiceHash refuses work
    /// below its minimum); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
}

impl AgentDifficulty {
    /// Whether `agent` belongs to this family.
    pub fn matches(&self, agent: &str) -> bool {
        let prefix = self.prefix.as_bytes();
        agent
            .as_bytes()
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    }

    /// The built-in table: families whose hashrate is far from an ASIC
    /// port's default. Starts are bounded by each port's `min` and `max`.
    pub fn defaults() -> Vec<AgentDifficulty> {
        let family = |prefix: &str, start: f64, min: Option<f64>| AgentDifficulty {
            prefix: prefix.into(),
            start,
            min,
        };
        vec![
            // NiceHash's SHA-256 marketplace requires pools to accept 500,000.
            family("nicehash", 500_000.0, Some(500_000.0)),
            // ESP-Miner ("bitaxe/BM1370/v2.9.0"): 0.5-1.2 TH/s, about one
            // share per 4-10 s at 512.
            family("bitaxe", 512.0, None),
            // NerdMiner: 50-400 kH/s, a share a minute at 0.0001.
            family("nerdminer", 0.0001, None),
            // cpuminer: a few MH/s per core.
            family("cpuminer", 0.001, None),
        ]
    }
}

/// Shares counted before a retarget is considered.
const RETARGET_SHARES: u32 = 16;
/// A retarget happens only when the rate is off by more than this factor.
const TOLERANCE: f64 = 1.5;

/// Per-connection share-rate tracker.
#[derive(Clone, Debug)]
pub struct Vardiff {
    config: VardiffConfig,
    window_start: Instant,
    shares: u32,
}

impl Vardiff {
    pub fn new(config: VardiffConfig, now: Instant) -> Vardiff {
        Vardiff {
            config,
            window_start: now,
            shares: 0,
        }
    }

    /// The longest a window runs before a miner that sends too few shares is eased.
    fn window(&self) -> Duration {
        Duration::from_secs_f64(self.config.target_share_seconds * f64::from(RETARGET_SHARES) * 2.0)
    }

    /// Counts an accepted share; returns a new difficulty when one is due.
    pub fn on_share(&mut self, current: f64, now: Instant) -> Option<f64> {
        self.shares += 1;
        if self.shares < RETARGET_SHARES && now.duration_since(self.window_start) < self.window() {
            return None;
        }
        self.retarget(current, now)
    }

    /// Called now and then without a share, so a miner whose difficulty is too
    /// high for it is eased down.
    pub fn on_tick(&mut self, current: f64, now: Instant) -> Option<f64> {
        if now.duration_since(self.window_start) < self.window() {
            return None;
        }
        self.retarget(current, now)
    }

    /// Restarts the window, e.g. after the miner suggested a difficulty.
    pub fn reset(&mut self, now: Instant) {
        self.window_start = now;
        self.shares = 0;
    }

    fn retarget(&mut self, current: f64, now: Instant) -> Option<f64> {
        let elapsed = now
            .duration_since(self.window_start)
            .as_secs_f64()
            .max(0.001);
        let shares = self.shares;
        self.reset(now);
        let wanted = if shares == 0 {
            current / 4.0
        } else {
            let seconds_per_share = elapsed / f64::from(shares);
            let ratio = self.config.target_share_seconds / seconds_per_share;
            if ratio < TOLERANCE && ratio > 1.0 / TOLERANCE {
                return None;
            }
            current * ratio
        };
        let next = wanted.clamp(self.config.min, self.config.max);
        (next != current).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: VardiffConfig = VardiffConfig {
        start: 1.0,
        min: 0.5,
        max: 1e6,
        target_share_seconds: 10.0,
        rounding: Rounding::Integer,
    };

    #[test]
    fn difficulties_of_one_or_more_are_rounded_down_and_fractions_kept() {
        assert_eq!(Rounding::Integer.apply(1536.7), 1536.0);
        assert_eq!(Rounding::PowerOfTwo.apply(1536.7), 1024.0);
        assert_eq!(Rounding::PowerOfTwo.apply(2048.0), 2048.0);
        assert_eq!(Rounding::None.apply(1536.7), 1536.7);
        for rounding in [Rounding::None, Rounding::Integer, Rounding::PowerOfTwo] {
            assert_eq!(rounding.apply(4.656542373906925e-10), 4.656542373906925e-10);
            assert_eq!(rounding.apply(0.75), 0.75);
            assert_eq!(rounding.apply(1.0), 1.0);
        }
    }

    #[test]
    fn fast_miner_is_raised_toward_the_target_rate() {
        let start = Instant::now();
        let mut vardiff = Vardiff::new(CONFIG, start);
        let mut result = None;
        for i in 1..=RETARGET_SHARES {
            result = vardiff.on_share(1.0, start + Duration::from_millis(u64::from(i) * 100));
        }
        // 16 shares in 1.6 s is one per 0.1 s: 100 times too fast.
        let raised = result.expect("retarget");
        assert!((raised - 100.0).abs() < 1.0, "{raised}");
    }

    #[test]
    fn on_target_miner_is_left_alone_and_bounds_hold() {
        let start = Instant::now();
        let mut vardiff = Vardiff::new(CONFIG, start);
        let mut result = None;
        for i in 1..=RETARGET_SHARES {
            result = vardiff.on_share(8.0, start + Duration::from_secs(u64::from(i) * 10));
        }
        assert_eq!(result, None);
        let mut silent = Vardiff::new(CONFIG, start);
        assert_eq!(silent.on_tick(1.0, start + Duration::from_secs(100)), None);
        assert_eq!(
            silent.on_tick(1.0, start + Duration::from_secs(400)),
            Some(0.5)
        );
    }
}
