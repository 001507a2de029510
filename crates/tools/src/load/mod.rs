//! The load generator: many miners over loopback against a running NDAS, and
//! a stand-in node that serves a recorded template for throughput runs.
//!
//! Bounded in count and time, and refuses any target outside 127.0.0.0/8.

pub mod floor;
mod miner;
mod report;
pub mod standin;
mod sv2_miner;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use miner::payout_address;
pub use report::Report;

/// Most miners one run may simulate.
pub const MAX_MINERS: usize = 250_000;
/// Most channels one simulated SV2 connection may open.
pub const MAX_CHANNELS_PER_CONNECTION: usize = 100_000;
/// Longest measured window.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// What shares the simulated miners send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Random nonces: the server hashes each; at tiny difficulty most are shares.
    Random,
    /// Nonces ground locally until the hash meets the miner's difficulty.
    Shares,
}

/// A load run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub target: SocketAddr,
    pub miners: usize,
    /// Total `mining.submit` per second across all miners (0: only hold connections).
    pub rate: f64,
    /// The measured window, after every miner is connected and has a job.
    pub duration: Duration,
    /// Source addresses 127.0.0.1 … 127.0.0.N, to get past one address's port range.
    pub sources: u8,
    /// New connections per second while ramping up.
    pub connect_rate: f64,
    /// Longest the ramp-up may take before the window starts anyway.
    pub ramp_timeout: Duration,
    pub mode: Mode,
    /// Miners authorize as `<address>.m<i>` over this many regtest
    /// addresses, for a pool in `username` mode (0: as `load.m<i>`).
    pub payout_addresses: usize,
    /// Stratum V2 instead of V1: then `miners` counts channels.
    pub sv2: Option<Sv2Load>,
}

/// How the miners speak Stratum V2.
#[derive(Clone, Debug)]
pub struct Sv2Load {
    /// The authority key the server's certificate must be signed with (x-only).
    pub authority: [u8; 32],
    /// Extended channels (a proxy's) rather than standard ones (a firmware's).
    pub extended: bool,
    /// Channels each connection opens: 1 for a firmware, many for a proxy.
    pub channels_per_connection: usize,
}

/// A run that must not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("target {0} is not a loopback address; the load generator only drives this machine")]
    NotLoopback(SocketAddr),
    #[error("{0} miners is over the limit of {MAX_MINERS}")]
    TooManyMiners(usize),
    #[error("a window of {0:?} is over the limit of {MAX_DURATION:?}")]
    TooLong(Duration),
    #[error("sources must be 1 to 254")]
    Sources,
    #[error("channels per connection must be 1 to {MAX_CHANNELS_PER_CONNECTION}")]
    Channels,
    #[error("Stratum V2 miners send random nonces only; ground shares are SV1's")]
    Sv2Shares,
}

impl LoadConfig {
    fn check(&self) -> Result<(), LoadError> {
        if !self.target.ip().is_loopback() {
            return Err(LoadError::NotLoopback(self.target));
        }
        if self.miners > MAX_MINERS {
            return Err(LoadError::TooManyMiners(self.miners));
        }
        if self.duration > MAX_DURATION {
            return Err(LoadError::TooLong(self.duration));
        }
        if self.sources == 0 || self.sources == 255 {
            return Err(LoadError::Sources);
        }
        if let Some(sv2) = &self.sv2 {
            if !(1..=MAX_CHANNELS_PER_CONNECTION).contains(&sv2.channels_per_connection) {
                return Err(LoadError::Channels);
            }
            if self.mode == Mode::Shares {
                return Err(LoadError::Sv2Shares);
            }
        }
        Ok(())
    }

    fn source(&self, index: usize) -> IpAddr {
        match self.target.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                1 + (index % self.sources as usize) as u8,
            )),
            v6 => v6,
        }
    }
}

/// Phases every miner follows: ramp, then the measured window, then stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Ramp,
    Measure,
    Stop,
}

/// Runs the load and reports what it saw.
pub async fn run(config: LoadConfig) -> Result<Report, LoadError> {
    config.check()?;
    let config = Arc::new(config);
    let (phase_tx, phase) = watch::channel(Phase::Ramp);
    let ready = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let ramp_started = Instant::now();
    let spacing = Duration::from_secs_f64(1.0 / config.connect_rate.max(1.0));
    let per_miner = if config.rate > 0.0 {
        Some(Duration::from_secs_f64(config.miners as f64 / config.rate))
    } else {
        None
    };
    let per_connection = config
        .sv2
        .as_ref()
        .map_or(1, |sv2| sv2.channels_per_connection);
    for index in 0..config.miners.div_ceil(per_connection) {
        let (phase, ready) = (phase.clone(), ready.clone());
        match &config.sv2 {
            None => {
                let miner = miner::Miner::new(index, config.clone(), per_miner, phase, ready);
                tasks.spawn(miner.run());
            }
            Some(sv2) => {
                let first = index * per_connection;
                let miner = sv2_miner::Sv2Miner {
                    index,
                    first,
                    channels: per_connection.min(config.miners - first),
                    sv2: sv2.clone(),
                    config: config.clone(),
                    every: per_miner,
                    phase,
                    ready,
                };
                tasks.spawn(miner.run());
            }
        }
        if index % 64 == 63 {
            tokio::time::sleep(spacing * 64).await;
        }
    }
    let ramp_deadline = ramp_started + config.ramp_timeout;
    while ready.load(std::sync::atomic::Ordering::Relaxed) < config.miners
        && Instant::now() < ramp_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ramp = ramp_started.elapsed();
    let window_start = Instant::now();
    phase_tx.send_replace(Phase::Measure);
    tokio::time::sleep(config.duration).await;
    let window = window_start.elapsed();
    phase_tx.send_replace(Phase::Stop);
    let mut results = Vec::with_capacity(config.miners);
    while let Some(result) = tasks.join_next().await {
        if let Ok(result) = result {
            results.push(result);
        }
    }
    Ok(Report::from_results(
        &config,
        results,
        ramp_started,
        ramp,
        window,
    ))
}
