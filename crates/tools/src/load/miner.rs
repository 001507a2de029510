//! One simulated miner: handshake, then pipelined submits on a timer, timing
//! each answer and noting when each job arrives.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio_util::codec::{FramedRead, LinesCodec};

use super::{LoadConfig, Mode, Phase};
use crate::miner::{hash_share, parse_notify, Work};
pub use ndas_core::client::payout_address;

/// What one miner saw.
#[derive(Default)]
pub struct MinerResult {
    /// Miners (SV1 connections or SV2 channels) that got work.
    pub held: usize,
    pub connect_error: Option<String>,
    /// Answer latencies in the measured window, microseconds.
    pub latencies_us: Vec<u32>,
    pub submitted: u64,
    pub accepted: u64,
    /// Rejections by error code (SV1's number or SV2's text).
    pub rejected: Vec<(String, u64)>,
    /// When the first job on each new tip (its previous-block hash, as
    /// sent) arrived, measured window only: every miner's first job on a
    /// tip, whatever payout group's job it is.
    pub tips: Vec<(String, Instant)>,
    /// When an SV2 connection's Noise handshake completed.
    pub handshake_done: Option<Instant>,
}

impl MinerResult {
    /// An answer to the submit sent at `sent`: accepted, or rejected with
    /// the server's code.
    pub fn answered(&mut self, sent: Instant, rejected: Option<String>) {
        let waited = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
        self.latencies_us.push(waited);
        match rejected {
            None => self.accepted += 1,
            Some(code) => match self.rejected.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n += 1,
                None => self.rejected.push((code, 1)),
            },
        }
    }
}

/// A miner's shares: a counter for its extranonces and a xorshift stream
/// for its nonces and version bits, both from its index, so no two miners
/// send the same share.
pub(super) struct Nonces {
    counter: u64,
    random: u64,
}

impl Nonces {
    pub(super) fn new(index: usize) -> Nonces {
        Nonces {
            counter: (index as u64) << 32,
            random: 0x9e37_79b9_7f4a_7c15u64 ^ index as u64,
        }
    }

    /// The next share's counter and random bits.
    pub(super) fn next(&mut self) -> (u64, u64) {
        self.counter += 1;
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        (self.counter, self.random)
    }
}

/// The timer a miner submits on, once `every` (none: never), its first
/// tick offset by its index so that miners spread over the period.
pub(super) fn submit_timer(index: usize, every: Option<Duration>) -> tokio::time::Interval {
    let offset = every
        .map(|every| every.mul_f64((index % 997) as f64 / 997.0))
        .unwrap_or_default();
    let mut timer = tokio::time::interval_at(
        tokio::time::Instant::now() + offset,
        every.unwrap_or(Duration::from_secs(3600)),
    );
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    timer
}

pub struct Miner {
    index: usize,
    config: Arc<LoadConfig>,
    every: Option<Duration>,
    phase: watch::Receiver<Phase>,
    ready: Arc<AtomicUsize>,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: Value,
    #[serde(default)]
    params: Value,
}

/// The two fields random nonces need from a notify: job id and ntime.
#[derive(Deserialize)]
struct LightNotify<'a> {
    #[serde(borrow)]
    params: (
        &'a str,
        &'a str,
        IgnoredAny,
        IgnoredAny,
        IgnoredAny,
        IgnoredAny,
        IgnoredAny,
        &'a str,
        bool,
    ),
}

/// The previous-block hash a `mining.notify` line names.
fn notify_tip(line: &str) -> Option<String> {
    let notify: LightNotify<'_> = serde_json::from_str(line).ok()?;
    Some(notify.params.1.to_owned())
}

fn light_notify(line: &str) -> Option<Work> {
    let notify: LightNotify<'_> = serde_json::from_str(line).ok()?;
    Some(Work {
        job_id: notify.params.0.to_owned(),
        prev_hash: [0; 32],
        coinb1: Vec::new(),
        coinb2: Vec::new(),
        branch: Vec::new(),
        version: 0,
        bits: 0,
        ntime: u32::from_str_radix(notify.params.7, 16).ok()?,
        clean: notify.params.8,
    })
}

impl Miner {
    pub fn new(
        index: usize,
        config: Arc<LoadConfig>,
        every: Option<Duration>,
        phase: watch::Receiver<Phase>,
        ready: Arc<AtomicUsize>,
    ) -> Miner {
        Miner {
            index,
            config,
            every,
            phase,
            ready,
        }
    }

    pub async fn run(mut self) -> MinerResult {
        let mut result = MinerResult::default();
        let socket = match connect(&self.config, self.index).await {
            Ok(socket) => socket,
            Err(error) => {
                result.connect_error = Some(error.to_string());
                return result;
            }
        };
        let (reader, mut writer) = socket.into_split();
        let mut lines = FramedRead::new(reader, LinesCodec::new_with_max_length(1 << 20));
        let user = user(&self.config, self.index);
        let handshake = format!(
            "{}\n{}\n{}\n",
            json!({"id": 1, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "1fffe000"}]}),
            json!({"id": 2, "method": "mining.subscribe", "params": ["ndas-load/1"]}),
            json!({"id": 3, "method": "mining.authorize", "params": [user, "x"]}),
        );
        if writer.write_all(handshake.as_bytes()).await.is_err() {
            return result;
        }
        let mut extranonce2_size = 8usize;
        let mut extranonce1 = Vec::new();
        let mut difficulty = 1.0f64;
        let mut work: Option<Work> = None;
        let mut last_tip = String::new();
        let mut authorized = false;
        let mut sent: VecDeque<Instant> = VecDeque::new();
        let mut nonces = Nonces::new(self.index);
        let mut next_id = 10u64;
        let mut timer = submit_timer(self.index, self.every);
        loop {
            let phase = *self.phase.borrow();
            tokio::select! {
                changed = self.phase.changed() => {
                    if changed.is_err() || *self.phase.borrow() == Phase::Stop {
                        break;
                    }
                }
                line = lines.next() => {
                    let Some(Ok(line)) = line else { break };
                    // Timed before any parsing, so the fan-out is the server's, not ours.
                    let arrived = Instant::now();
                    // The method, not the subscribe answer's subscription
                    // list (which names it too).
                    if line.contains("\"method\":\"mining.notify\"") {
                        let parsed = match self.config.mode {
                            Mode::Shares => serde_json::from_str::<Value>(&line).ok().and_then(|v| parse_notify(&v["params"]).ok()),
                            Mode::Random => light_notify(&line),
                        };
                        if let Some(parsed) = parsed {
                            if let Some(tip) = notify_tip(&line).filter(|tip| *tip != last_tip) {
                                if phase == Phase::Measure {
                                    result.tips.push((tip.clone(), arrived));
                                }
                                last_tip = tip;
                            }
                            if work.is_none() && authorized {
                                result.held = 1;
                                self.ready.fetch_add(1, Ordering::Relaxed);
                            }
                            work = Some(parsed);
                        }
                        continue;
                    }
                    let Ok(answer) = serde_json::from_str::<Answer>(&line) else { continue };
                    match answer.method.as_deref() {
                        Some("mining.set_difficulty") => difficulty = answer.params[0].as_f64().unwrap_or(difficulty),
                        Some(_) => {}
                        None => match answer.id.as_u64() {
                            Some(2) => {
                                extranonce1 = hex::decode(answer.result[1].as_str().unwrap_or("")).unwrap_or_default();
                                extranonce2_size = answer.result[2].as_u64().unwrap_or(8) as usize;
                            }
                            Some(3) => {
                                authorized = answer.result == json!(true);
                                if authorized && work.is_some() && result.held == 0 {
                                    result.held = 1;
                                    self.ready.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Some(id) if id >= 10 => {
                                let Some(at) = sent.pop_front() else { continue };
                                if phase == Phase::Measure {
                                    let rejected = (answer.result != json!(true))
                                        .then(|| answer.error[0].as_i64().unwrap_or(-1).to_string());
                                    result.answered(at, rejected);
                                }
                            }
                            _ => {}
                        },
                    }
                }
                _ = timer.tick(), if self.every.is_some() && phase == Phase::Measure && work.is_some() => {
                    let Some(job) = &work else { continue };
                    let (counter, rng) = nonces.next();
                    let en2 = &counter.to_be_bytes()[8 - extranonce2_size.min(8)..];
                    let version_bits = ((rng >> 32) as u32) & 0x1fff_e000;
                    let nonce = match self.config.mode {
                        Mode::Random => rng as u32,
                        Mode::Shares => (0..64u32)
                            .map(|n| (rng as u32).wrapping_add(n))
                            .find(|&n| hash_share(job, &extranonce1, en2, n, Some(version_bits), 0x1fff_e000).difficulty >= difficulty)
                            .unwrap_or(rng as u32),
                    };
                    let line = format!(
                        "{{\"id\":{next_id},\"method\":\"mining.submit\",\"params\":[\"{user}\",\"{}\",\"{}\",\"{:08x}\",\"{nonce:08x}\",\"{version_bits:08x}\"]}}\n",
                        job.job_id,
                        hex::encode(en2),
                        job.ntime,
                    );
                    next_id += 1;
                    sent.push_back(Instant::now());
                    result.submitted += 1;
                    if writer.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                }
            }
        }
        result
    }
}

/// The name miner `index` authorizes as: `load.m<i>`, or `<address>.m<i>`
/// over the run's payout addresses.
pub(super) fn user(config: &LoadConfig, index: usize) -> String {
    match config.payout_addresses {
        0 => format!("load.m{index}"),
        n => format!("{}.m{index}", payout_address(index % n)),
    }
}

/// A connection to the target from the source address of miner `index`.
pub(super) async fn connect(
    config: &LoadConfig,
    index: usize,
) -> std::io::Result<tokio::net::TcpStream> {
    let target = config.target;
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(std::net::SocketAddr::new(config.source(index), 0))?;
    let stream = tokio::time::timeout(Duration::from_secs(30), socket.connect(target))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}
