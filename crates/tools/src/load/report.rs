//! What a load run measured.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::miner::MinerResult;
use super::LoadConfig;

/// Percentiles of a sample.
#[derive(Debug, Default, Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        Spread {
            count: values.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: values[values.len() - 1],
        }
    }
}

/// The figures of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Miners asked for: SV1 connections, or SV2 channels.
    pub miners: usize,
    /// Miners that got work.
    pub connections_held: usize,
    /// TCP connections opened (SV2 carries several channels on one).
    pub connections: usize,
    /// SV2 Noise handshakes completed per second of the ramp (they start as
    /// fast as `connect_rate` lets them).
    pub handshakes_per_second: Option<f64>,
    pub connect_failures: usize,
    pub first_connect_error: Option<String>,
    pub ramp_seconds: f64,
    pub window_seconds: f64,
    pub submitted: u64,
    pub answers: u64,
    pub answers_per_second: f64,
    pub accepted: u64,
    /// Rejections by error code (SV1's number or SV2's text).
    pub rejected: BTreeMap<String, u64>,
    /// Submit to answer, milliseconds.
    pub latency_ms: Spread,
    /// Per job: last miner's receipt minus first miner's, milliseconds, over
    /// jobs every held miner received in the window.
    pub fanout_ms: Spread,
    /// Each new tip seen in the window, by wall clock: when the first and
    /// the last miner got it (a failover's timing is read from these).
    pub tips: Vec<TipSeen>,
}

/// One previous-block hash as the miners got its first job.
#[derive(Debug, Serialize)]
pub struct TipSeen {
    /// As the notify carries it.
    pub prev_hash: String,
    pub miners: usize,
    /// Milliseconds since the Unix epoch.
    pub first_unix_ms: f64,
    pub last_unix_ms: f64,
}

impl Report {
    pub(super) fn from_results(
        config: &LoadConfig,
        results: Vec<MinerResult>,
        ramp_started: Instant,
        ramp: Duration,
        window: Duration,
    ) -> Report {
        let held = results.iter().map(|r| r.held).sum();
        let handshakes: Vec<Instant> = results.iter().filter_map(|r| r.handshake_done).collect();
        let handshakes_per_second = handshakes.iter().max().map(|last| {
            handshakes.len() as f64 / last.duration_since(ramp_started).as_secs_f64().max(1e-3)
        });
        let failures: Vec<&MinerResult> = results
            .iter()
            .filter(|r| r.connect_error.is_some())
            .collect();
        let mut rejected = BTreeMap::new();
        let mut latencies = Vec::new();
        let mut jobs: HashMap<&str, (Instant, Instant, usize)> = HashMap::new();
        for result in &results {
            for (code, count) in &result.rejected {
                *rejected.entry(code.clone()).or_insert(0) += count;
            }
            latencies.extend(result.latencies_us.iter().map(|&us| f64::from(us) / 1000.0));
            for (id, at) in &result.tips {
                let entry = jobs.entry(id.as_str()).or_insert((*at, *at, 0));
                entry.0 = entry.0.min(*at);
                entry.1 = entry.1.max(*at);
                entry.2 += 1;
            }
        }
        let fanout = jobs
            .values()
            .filter(|(_, _, seen)| *seen == held && held > 0)
            .map(|(first, last, _)| last.duration_since(*first).as_secs_f64() * 1000.0)
            .collect();
        let (now, unix_now) = (Instant::now(), std::time::SystemTime::now());
        let unix_ms = |at: Instant| {
            let at = unix_now - now.duration_since(at);
            at.duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let mut tips: Vec<TipSeen> = jobs
            .iter()
            .map(|(id, (first, last, seen))| TipSeen {
                prev_hash: (*id).to_owned(),
                miners: *seen,
                first_unix_ms: unix_ms(*first),
                last_unix_ms: unix_ms(*last),
            })
            .collect();
        tips.sort_by(|a, b| a.first_unix_ms.total_cmp(&b.first_unix_ms));
        let answers = latencies.len() as u64;
        Report {
            miners: config.miners,
            connections_held: held,
            connections: results.len(),
            handshakes_per_second,
            connect_failures: failures.len(),
            first_connect_error: failures.first().and_then(|r| r.connect_error.clone()),
            ramp_seconds: ramp.as_secs_f64(),
            window_seconds: window.as_secs_f64(),
            submitted: results.iter().map(|r| r.submitted).sum(),
            answers,
            answers_per_second: answers as f64 / window.as_secs_f64(),
            accepted: results.iter().map(|r| r.accepted).sum(),
            rejected,
            latency_ms: Spread::of(latencies),
            fanout_ms: Spread::of(fanout),
            tips,
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "miners: {} held of {} ({} failed to connect)",
            self.connections_held, self.miners, self.connect_failures
        )?;
        if self.connections != self.miners {
            writeln!(f, "connections: {}", self.connections)?;
        }
        if let Some(rate) = self.handshakes_per_second {
            writeln!(f, "Noise handshakes: {rate:.0}/s over the ramp")?;
        }
        if let Some(error) = &self.first_connect_error {
            writeln!(f, "first connect error: {error}")?;
        }
        writeln!(
            f,
            "ramp: {:.1} s, window: {:.1} s",
            self.ramp_seconds, self.window_seconds
        )?;
        writeln!(
            f,
            "answers: {} ({:.0}/s), accepted {}, rejected {:?}",
            self.answers, self.answers_per_second, self.accepted, self.rejected
        )?;
        let l = &self.latency_ms;
        writeln!(
            f,
            "submit→answer ms: p50 {:.3}, p99 {:.3}, max {:.3}",
            l.p50, l.p99, l.max
        )?;
        let n = &self.fanout_ms;
        write!(
            f,
            "notify fan-out spread ms over {} tips: p50 {:.3}, p99 {:.3}, max {:.3}",
            n.count, n.p50, n.p99, n.max
        )
    }
}
