//! One simulated Stratum V2 connection: the Noise handshake, then its
//! channels (one standard channel, as ESP-Miner opens, or many extended
//! channels, as a proxy opens), each sent random-nonce shares on one timer,
//! each answer timed and each channel's new tip noted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::miner::{connect, submit_timer, user, MinerResult, Nonces};
use super::{LoadConfig, Phase, Sv2Load};
use crate::sv2_client::{Client, Received};

/// The version bits miners roll (BIP320), with `REQUIRES_VERSION_ROLLING`.
const MASK: u32 = 0x1fff_e000;
/// `SetupConnection` flag: the client rolls version bits.
const VERSION_ROLLING: u32 = 0b100;

/// One channel's current work.
#[derive(Default)]
struct Work {
    /// The server's channel id; 0 until the open succeeded.
    id: u32,
    job_id: Option<u32>,
    version: u32,
    ntime: u32,
    /// Jobs announced for a tip not yet named: id, version.
    future: Vec<(u32, u32)>,
    extranonce_size: usize,
    tip: [u8; 32],
    held: bool,
}

/// Connection `index` carrying channels `first..first + channels`, all of
/// them sending one share every `every` (`None`: none).
pub struct Sv2Miner {
    pub index: usize,
    /// Index of its first channel among all the run's channels.
    pub first: usize,
    pub channels: usize,
    pub sv2: Sv2Load,
    pub config: Arc<LoadConfig>,
    pub every: Option<Duration>,
    pub phase: watch::Receiver<Phase>,
    pub ready: Arc<AtomicUsize>,
}

impl Sv2Miner {
    pub async fn run(mut self) -> MinerResult {
        let mut result = MinerResult::default();
        let mut client = match self.open().await {
            Ok(client) => client,
            Err(error) => {
                result.connect_error = Some(error);
                return result;
            }
        };
        result.handshake_done = Some(Instant::now());
        if let Err(error) = self.setup(&mut client).await {
            result.connect_error = Some(error);
            return result;
        }
        let mut works: Vec<Work> = (0..self.channels).map(|_| Work::default()).collect();
        let mut by_id: HashMap<u32, usize> = HashMap::new();
        let mut sent: VecDeque<Instant> = VecDeque::new();
        let mut sequence = 0u32;
        let mut turn = 0usize;
        let mut nonces = Nonces::new(self.index);
        // All channels share one timer: a tick is one channel's share.
        let every = self.every.map(|every| every / self.channels.max(1) as u32);
        let mut timer = submit_timer(self.index, every);
        loop {
            let phase = *self.phase.borrow();
            tokio::select! {
                changed = self.phase.changed() => {
                    if changed.is_err() || *self.phase.borrow() == Phase::Stop {
                        break;
                    }
                }
                message = client.read() => {
                    let Ok(message) = message else { break };
                    let arrived = Instant::now();
                    let channel = |id: &u32| by_id.get(id).copied();
                    match message {
                        Received::OpenSuccess { request_id, channel_id, extranonce_size, .. } => {
                            if let Some(work) = works.get_mut(request_id as usize) {
                                work.id = channel_id;
                                work.extranonce_size = usize::from(extranonce_size.unwrap_or(0));
                                by_id.insert(channel_id, request_id as usize);
                            }
                        }
                        Received::OpenError { code } => {
                            result.connect_error.get_or_insert(format!("channel refused: {code}"));
                        }
                        Received::StandardJob { channel_id, job_id, min_ntime, version, .. }
                        | Received::ExtendedJob { channel_id, job_id, min_ntime, version, .. } => {
                            let Some(at) = channel(&channel_id) else { continue };
                            let work = &mut works[at];
                            match min_ntime {
                                Some(ntime) => {
                                    work.job_id = Some(job_id);
                                    work.version = version;
                                    work.ntime = ntime;
                                }
                                None => {
                                    work.future.push((job_id, version));
                                    let keep = work.future.len().saturating_sub(4);
                                    work.future.drain(..keep);
                                }
                            }
                        }
                        Received::PrevHash { channel_id, job_id, prev_hash, min_ntime, .. } => {
                            let Some(at) = channel(&channel_id) else { continue };
                            let work = &mut works[at];
                            if let Some(&(_, version)) = work.future.iter().find(|(id, _)| *id == job_id) {
                                work.job_id = Some(job_id);
                                work.version = version;
                                work.ntime = min_ntime;
                                work.future.clear();
                            }
                            if work.tip != prev_hash {
                                work.tip = prev_hash;
                                if phase == Phase::Measure {
                                    result.tips.push((hex::encode(prev_hash), arrived));
                                }
                            }
                        }
                        Received::SubmitSuccess { .. } | Received::SubmitError { .. } => {
                            let Some(at) = sent.pop_front() else { continue };
                            if phase == Phase::Measure {
                                let rejected = match message {
                                    Received::SubmitError { code, .. } => Some(code),
                                    _ => None,
                                };
                                result.answered(at, rejected);
                            }
                        }
                        _ => {}
                    }
                    for work in works.iter_mut().filter(|w| !w.held && w.job_id.is_some()) {
                        work.held = true;
                        result.held += 1;
                        self.ready.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ = timer.tick(), if every.is_some() && phase == Phase::Measure && result.held > 0 => {
                    turn = (turn + 1) % works.len();
                    let work = &works[turn];
                    let Some(job_id) = work.job_id else { continue };
                    let (counter, rng) = nonces.next();
                    let version = (work.version & !MASK) | ((rng >> 32) as u32 & MASK);
                    sequence = sequence.wrapping_add(1);
                    let sent_ok = if self.sv2.extended {
                        let mut rolled = vec![0u8; work.extranonce_size];
                        let bytes = counter.to_be_bytes();
                        let n = rolled.len().min(8);
                        let at = rolled.len() - n;
                        rolled[at..].copy_from_slice(&bytes[8 - n..]);
                        client.submit_extended(work.id, sequence, job_id, rng as u32, work.ntime, version, &rolled).await
                    } else {
                        client.submit_standard(work.id, sequence, job_id, rng as u32, work.ntime, version).await
                    };
                    sent.push_back(Instant::now());
                    result.submitted += 1;
                    if sent_ok.is_err() {
                        break;
                    }
                }
            }
        }
        result
    }

    /// Connects and runs the handshake.
    async fn open(&self) -> Result<Client, String> {
        let stream = connect(&self.config, self.index)
            .await
            .map_err(|e| e.to_string())?;
        Client::handshake(stream, self.sv2.authority).await
    }

    /// `SetupConnection`, then every channel's open.
    async fn setup(&self, client: &mut Client) -> Result<(), String> {
        client.setup_as(VERSION_ROLLING, "ndas-load").await?;
        match client.next(Duration::from_secs(30)).await? {
            Received::SetupSuccess { .. } => {}
            other => return Err(format!("setup refused: {other:?}")),
        }
        let extranonce = self.sv2.extended.then_some(8);
        for request in 0..self.channels {
            let name = user(&self.config, self.first + request);
            client.open(request as u32, &name, extranonce).await?;
        }
        Ok(())
    }
}
