//! A job: everything a miner needs to hash, built once per template.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::extranonce::EXTRANONCE1_LEN;
use super::lanes::Lanes;
use super::payout::{reward_outputs, Paid, Payout, Split};
use super::pool::{PoolJob, PoolJobError, PoolWork};
use crate::chain::coinbase::{Coinbase, CoinbaseError, CoinbaseSpec};
use crate::chain::header::BIP320_MASK;
use crate::chain::merkle::branch;
use crate::chain::{Hash256, Target};
use crate::stratum::method::JobId;
use crate::stratum::notify::{notify, NotifyFields};
use crate::template::{BlockLimits, Template};

/// What the operator decides about every coinbase.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// scriptPubKey [`Job::build`] pays (tools and tests); the payout
    /// groups give each job its own.
    pub payout_script: Vec<u8>,
    /// Pool text in the coinbase scriptSig.
    pub coinbase_tag: Vec<u8>,
    /// Bytes of extranonce2 each miner rolls.
    pub extranonce2_size: usize,
    /// Parts of the reward paid before the main output.
    pub splits: Vec<Split>,
}

/// What every job of one template shares, whoever it pays: built once per
/// template, not once per payout group.
#[derive(Debug)]
pub struct Work {
    pub template: Arc<Template>,
    branch: Arc<[Hash256]>,
    version: u32,
    network_difficulty: f64,
    /// Room the template leaves for the coinbase (weight, sigop cost):
    /// summed over its transactions once, not once per group.
    room: crate::template::BlockLimits,
    /// The notify lines, `clean_jobs` false and true, serialized once with
    /// stand-ins for what each job has of its own and cut around them.
    lines: [NotifyPieces; 2],
}

/// A `mining.notify` line without its job id, coinb1 and coinb2: the
/// four pieces around them, as the serializer wrote them.
#[derive(Debug)]
struct NotifyPieces([Box<[u8]>; 4]);

/// What stands in for a job's own fields while the shared pieces are cut:
/// strings the serializer writes as they are, which no hex field contains.
const STAND_INS: [&str; 3] = ["@job_id@", "@coinb1@", "@coinb2@"];

impl NotifyPieces {
    fn cut(line: &[u8]) -> NotifyPieces {
        let mut pieces = Vec::with_capacity(4);
        let mut rest = line;
        for stand_in in STAND_INS {
            let at = rest
                .windows(stand_in.len())
                .position(|w| w == stand_in.as_bytes())
                .expect("the stand-in is in the serialized line");
            pieces.push(rest[..at].into());
            rest = &rest[at + stand_in.len()..];
        }
        pieces.push(rest.into());
        NotifyPieces(pieces.try_into().expect("four pieces"))
    }

    /// The line with a job's own fields put in.
    fn line(&self, fields: [&[u8]; 3]) -> Bytes {
        let [a, b, c, d] = &self.0;
        let mut line = Vec::with_capacity(
            a.len() + b.len() + c.len() + d.len() + fields.iter().map(|f| f.len()).sum::<usize>(),
        );
        for (piece, field) in [a, b, c].into_iter().zip(fields) {
            line.extend_from_slice(piece);
            line.extend_from_slice(field);
        }
        line.extend_from_slice(d);
        line.into()
    }
}

impl Work {
    /// The merkle branch and the notify lines' shared pieces of `template`.
    pub fn new(template: Arc<Template>) -> Work {
        let branch = branch(&template.txids).into();
        let version = template.version & !BIP320_MASK;
        Work::from_parts(template, branch, version)
    }

    /// The notify lines' shared pieces of a header's fields, a merkle
    /// branch and the version miners are sent.
    fn from_parts(template: Arc<Template>, branch: Arc<[Hash256]>, version: u32) -> Work {
        let merkle_branch: Vec<String> = branch.iter().map(|h| hex::encode(h.0)).collect();
        let (prev_hash, version_hex, bits, ntime) = (
            stratum_prev_hash(&template.prev_hash),
            format!("{version:08x}"),
            format!("{:08x}", template.bits),
            format!("{:08x}", template.cur_time),
        );
        let pieces = |clean_jobs| {
            NotifyPieces::cut(&notify(&NotifyFields {
                job_id: STAND_INS[0],
                prev_hash: &prev_hash,
                coinb1: STAND_INS[1],
                coinb2: STAND_INS[2],
                merkle_branch: &merkle_branch,
                version: &version_hex,
                bits: &bits,
                ntime: &ntime,
                clean_jobs,
            }))
        };
        Work {
            lines: [pieces(false), pieces(true)],
            branch,
            version,
            network_difficulty: template.network_target.difficulty(),
            room: template.coinbase_room(),
            template,
        }
    }
}

impl Work {
    /// Job `id`'s notify lines on `coinbase`, `clean_jobs` false and true.
    fn notify_lines(&self, id: JobId, coinbase: &Coinbase) -> [Bytes; 2] {
        // Hex and a hex job id: nothing the serializer would escape.
        let job_id = id.to_string();
        let (coinb1, coinb2) = (
            hex::encode(coinbase.coinb1()),
            hex::encode(coinbase.coinb2()),
        );
        let own = [job_id.as_bytes(), coinb1.as_bytes(), coinb2.as_bytes()];
        [self.lines[0].line(own), self.lines[1].line(own)]
    }
}

/// One unit of work, shared by every connection of its payout group as `Arc<Job>`.
#[derive(Debug)]
pub struct Job {
    pub id: JobId,
    pub template: Arc<Template>,
    pub coinbase: Coinbase,
    pub branch: Arc<[Hash256]>,
    /// The address the main output pays: a share on this job counts for a
    /// worker of this address only.
    pub payout: Payout,
    /// Every output but the witness commitment, splits first.
    pub paid: Vec<Paid>,
    /// The version miners are sent: the template's with every BIP320 bit
    /// cleared. Firmware combines its rolled bits with the job's version in
    /// different ways (ESP-Miner and cgminer OR them in, BIP310 replaces
    /// the masked bits, ESP-Miner submits `rolled ^ job_version`); with no
    /// job bit inside the mask they all hash and submit the same thing.
    /// Core sets bits there while a deployment on bits 13–28 signals
    /// (regtest's `testdummy`, heights 144–431); BIP320 gives them to miners.
    pub version: u32,
    /// Network difficulty of the template, for capping share difficulty
    /// (on a pool's job, the pool's difficulty if lower).
    pub network_difficulty: f64,
    pub created: Instant,
    notify_clean: Bytes,
    notify_update: Bytes,
    /// Set on a job of an upstream pool ([`super::pool`]): its template
    /// has the header's fields alone, its shares go to the pool, and it
    /// is never a block NDAS submits.
    pub pool: Option<Arc<PoolJob>>,
    /// Set on what the job stage gives the groups from a pool: a job per
    /// connection to it, of which each channel mines its own lane's
    /// ([`super::lanes`]). This one is the first lane's, never sent itself.
    pub lanes: Option<Arc<Lanes>>,
}

impl Job {
    /// Builds the coinbase, branch and both notify lines for `template`,
    /// paying `config.payout_script`.
    pub fn build(
        id: JobId,
        template: Arc<Template>,
        config: &JobConfig,
    ) -> Result<Job, CoinbaseError> {
        let payout = Payout {
            address: "".into(),
            script: config.payout_script.clone().into(),
        };
        Job::for_payout(id, &Work::new(template), &payout, config)
    }

    /// The job of `work` whose main output pays `payout`: its coinbase and
    /// notify lines, the rest shared.
    pub fn for_payout(
        id: JobId,
        work: &Work,
        payout: &Payout,
        config: &JobConfig,
    ) -> Result<Job, CoinbaseError> {
        let template = &work.template;
        let (outputs, paid) = reward_outputs(
            template.coinbase_value,
            &config.splits,
            payout,
            template.witness_commitment.as_ref(),
        );
        let coinbase = Coinbase::build(&CoinbaseSpec {
            height: template.height,
            tag: &config.coinbase_tag,
            extranonce_len: EXTRANONCE1_LEN + config.extranonce2_size,
            outputs: &outputs,
            witness: template.witness_commitment.is_some(),
        })?;
        // Never a job whose block the node would refuse: the template's
        // own limits, whatever the config says of the node's reservation.
        let room = work.room;
        let sigops: u64 = outputs
            .iter()
            .map(|output| super::limits::output_sigops(&output.script_pubkey))
            .sum();
        for (unit, needed, room) in [
            ("weight units", coinbase.weight() as u64, room.weight),
            ("sigop cost", sigops, room.sigops),
        ] {
            if needed > room {
                return Err(CoinbaseError::OverTemplateLimit { unit, needed, room });
            }
        }
        let [notify_update, notify_clean] = work.notify_lines(id, &coinbase);
        Ok(Job {
            id,
            version: work.version,
            network_difficulty: work.network_difficulty,
            template: template.clone(),
            coinbase,
            branch: work.branch.clone(),
            payout: payout.clone(),
            paid,
            created: Instant::now(),
            notify_clean,
            notify_update,
            pool: None,
            lanes: None,
        })
    }

    /// The `mining.notify` line; `clean` tells miners to drop older work.
    pub fn notify(&self, clean: bool) -> Bytes {
        if clean {
            self.notify_clean.clone()
        } else {
            self.notify_update.clone()
        }
    }

    pub fn prev_hash(&self) -> &Hash256 {
        &self.template.prev_hash
    }

    pub fn network_target(&self) -> &Target {
        &self.template.network_target
    }
}

impl Job {
    /// The job miners with `extranonce2_size` bytes of their own mine for
    /// the pool's `from`.
    pub fn from_pool(
        id: JobId,
        from: &PoolWork,
        extranonce2_size: usize,
    ) -> Result<Job, PoolJobError> {
        let needed = EXTRANONCE1_LEN + extranonce2_size;
        let padding =
            from.extranonce2_size
                .checked_sub(needed)
                .ok_or(PoolJobError::Extranonce2TooSmall {
                    given: from.extranonce2_size,
                    needed,
                })?;
        if !(from.difficulty.is_finite() && from.difficulty > 0.0) {
            return Err(PoolJobError::Difficulty(from.difficulty));
        }
        let work = &from.work;
        let network_target =
            Target::from_compact(work.bits).map_err(|_| PoolJobError::Bits(work.bits))?;
        let mut coinb1 = Vec::with_capacity(work.coinb1.len() + from.extranonce1.len());
        coinb1.extend_from_slice(&work.coinb1);
        coinb1.extend_from_slice(&from.extranonce1);
        let mut coinb2 = vec![0u8; padding];
        coinb2.extend_from_slice(&work.coinb2);
        let coinbase = Coinbase::from_parts(coinb1, coinb2, needed);
        // The pool's version as it is: the pool puts the rolled bits back
        // into it, and its bits outside the mask are the pool's.
        let shared = Work::from_parts(
            Arc::new(header_only(work, network_target)),
            work.branch.iter().map(|h| Hash256(*h)).collect(),
            work.version,
        );
        let [notify_update, notify_clean] = shared.notify_lines(id, &coinbase);
        Ok(Job {
            id,
            // Miners' difficulty is capped at this: at most the pool's, or
            // the pool would get fewer shares than it credits hashrate for.
            network_difficulty: shared.network_difficulty.min(from.difficulty),
            template: shared.template.clone(),
            coinbase,
            branch: shared.branch.clone(),
            payout: Payout {
                address: "".into(),
                script: Arc::from(&[][..]),
            },
            paid: Vec::new(),
            version: work.version,
            created: Instant::now(),
            notify_clean,
            notify_update,
            lanes: None,
            pool: Some(Arc::new(PoolJob {
                pool: from.pool,
                lane: from.lane,
                connection: from.connection,
                job_id: work.job_id.clone(),
                target: Target::from_difficulty(from.difficulty),
                version: work.version,
                version_mask: from.version_mask,
                padding,
            })),
        })
    }
}

impl Job {
    /// What the groups are given of a pool's `lanes`: the first lane's
    /// job, carrying them all; each channel sends its own lane's.
    pub fn over_lanes(lanes: Lanes) -> Job {
        let first = &lanes.jobs()[0].1;
        Job {
            id: first.id,
            template: first.template.clone(),
            coinbase: first.coinbase.clone(),
            branch: first.branch.clone(),
            payout: first.payout.clone(),
            paid: first.paid.clone(),
            version: first.version,
            network_difficulty: first.network_difficulty,
            created: first.created,
            notify_clean: first.notify_clean.clone(),
            notify_update: first.notify_update.clone(),
            pool: first.pool.clone(),
            lanes: Some(Arc::new(lanes)),
        }
    }
}

/// A template of a pool's header fields alone: what share checks read
/// (previous block, bits, times). No transactions, no value: a pool's job
/// is never put in a block by NDAS.
fn header_only(work: &crate::client::Work, network_target: Target) -> Template {
    Template {
        version: work.version,
        prev_hash: Hash256(work.prev_hash),
        bits: work.bits,
        network_target,
        height: bip34_height(&work.coinb1).unwrap_or(0),
        cur_time: work.ntime,
        // Miners roll the time forward from the job's; the pool judges
        // how far.
        min_time: work.ntime,
        bits_time: 0..=u32::MAX,
        coinbase_value: 0,
        txids: Vec::new(),
        witness_commitment: None,
        tx_data: bytes::Bytes::new(),
        tx_count: 0,
        longpoll_id: None,
        limits: BlockLimits {
            weight: 0,
            sigops: 0,
        },
        costs: Vec::new(),
    }
}

/// The height a coinbase's first half starts its scriptSig with (BIP34),
/// if it reads as one: for the operator's display only.
pub(crate) fn bip34_height(coinb1: &[u8]) -> Option<u32> {
    // version (4), input count (1), outpoint (36), scriptSig length (1).
    let script = coinb1.get(42..)?;
    let len = usize::from(*script.first()?);
    if !(1..=4).contains(&len) {
        return None;
    }
    let mut bytes = [0u8; 4];
    bytes[..len].copy_from_slice(script.get(1..1 + len)?);
    Some(u32::from_le_bytes(bytes))
}

/// The first job id of a process started at `now`: nanoseconds since the
/// Unix epoch (16 hex digits until 2554, as ckpool's ids are).
///
/// Each run counts up from its start, so two runs share an id only if the
/// first handed out more ids than nanoseconds passed before the second
/// started: more than one job a nanosecond, where building one takes
/// microseconds. A miner's share for a job of the run before is then
/// answered "job not found", never judged against another job. (Seconds
/// shifted by 8 bits, as before, left 256 ids per second: a refresh of a
/// few hundred payout groups and a quick restart reused them.) A clock set
/// back between runs can still repeat ids; nothing short of storing the
/// last id could prevent that.
pub fn first_job_id(now: std::time::SystemTime) -> u64 {
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX >> 1)
        })
        .max(1)
}

/// The previous-block hash as stratum sends it: internal byte order with each
/// 4-byte word reversed, which is what miners undo before hashing.
pub fn stratum_prev_hash(hash: &Hash256) -> String {
    let mut swapped = hash.0;
    for word in swapped.chunks_exact_mut(4) {
        word.reverse();
    }
    hex::encode(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notify_line_put_together_from_pieces_is_the_serializer_s_own() {
        // Bitcoin Core's 3,500-transaction template: a branch of 12 steps.
        let raw = include_str!("../../../../tests/fixtures/core-regtest-gbt-height226-3500tx.json");
        let template = Arc::new(Template::from_json(serde_json::from_str(raw).unwrap()).unwrap());
        let config = JobConfig {
            payout_script: hex::decode(crate::testkit::PAYOUT).unwrap(),
            coinbase_tag: b"/NDAS/".to_vec(),
            extranonce2_size: 8,
            splits: Vec::new(),
        };
        let job = Job::build(JobId(0x006b_0fa2_f400), template.clone(), &config).unwrap();
        let work = Work::new(template.clone());
        let merkle_branch: Vec<String> = work.branch.iter().map(|h| hex::encode(h.0)).collect();
        assert_eq!(merkle_branch.len(), 12);
        let (coinb1, coinb2) = (
            hex::encode(job.coinbase.coinb1()),
            hex::encode(job.coinbase.coinb2()),
        );
        for clean in [false, true] {
            let whole = notify(&NotifyFields {
                job_id: "6b0fa2f400",
                prev_hash: &stratum_prev_hash(&template.prev_hash),
                coinb1: &coinb1,
                coinb2: &coinb2,
                merkle_branch: &merkle_branch,
                version: &format!("{:08x}", template.version & !BIP320_MASK),
                bits: &format!("{:08x}", template.bits),
                ntime: &format!("{:08x}", template.cur_time),
                clean_jobs: clean,
            });
            assert_eq!(job.notify(clean), whole);
        }
    }

    #[test]
    fn prev_hash_is_the_display_words_in_reverse_order() {
        let hash = Hash256::from_display_hex(
            "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81",
        )
        .unwrap();
        assert_eq!(
            stratum_prev_hash(&hash),
            "ab02cd818b9e567ee21793cddef299feb29ad444a41b85b8000008a300000000"
        );
    }
}
