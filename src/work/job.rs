//! A job: everything a miner needs to hash, built once per template.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::extranonce::EXTRANONCE1_LEN;
use crate::chain::coinbase::{Coinbase, CoinbaseError, CoinbaseSpec, TxOut};
use crate::chain::header::BIP320_MASK;
use crate::chain::merkle::{branch, witness_commitment_script};
use crate::chain::{Hash256, Target};
use crate::node::template::Template;
use crate::stratum::method::JobId;
use crate::stratum::notify::{notify, NotifyFields};

/// What the operator decides about every coinbase.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// scriptPubKey of the payout address.
    pub payout_script: Vec<u8>,
    /// Pool text in the coinbase scriptSig.
    pub coinbase_tag: Vec<u8>,
    /// Bytes of extranonce2 each miner rolls.
    pub extranonce2_size: usize,
}

/// One unit of work, shared by every connection as `Arc<Job>`.
#[derive(Debug)]
pub struct Job {
    pub id: JobId,
    pub template: Arc<Template>,
    pub coinbase: Coinbase,
    pub branch: Vec<Hash256>,
    /// The version miners are sent: the template's with every BIP320 bit
    /// cleared. Firmware combines its rolled bits with the job's version in
    /// different ways (ESP-Miner and cgminer OR them in, BIP310 replaces
    /// the masked bits, ESP-Miner submits `rolled ^ job_version`); with no
    /// job bit inside the mask they all hash and submit the same thing.
    /// Core sets bits there while a deployment on bits 13–28 signals
    /// (regtest's `testdummy`, heights 144–431); BIP320 gives them to miners.
    pub version: u32,
    /// Network difficulty of the template, for capping share difficulty.
    pub network_difficulty: f64,
    pub created: Instant,
    notify_clean: Bytes,
    notify_update: Bytes,
}

impl Job {
    /// Builds the coinbase, branch and both notify lines for `template`.
    pub fn build(
        id: JobId,
        template: Arc<Template>,
        config: &JobConfig,
    ) -> Result<Job, CoinbaseError> {
        let mut outputs = vec![TxOut {
            value: template.coinbase_value,
            script_pubkey: config.payout_script.clone(),
        }];
        if let Some(commitment) = &template.witness_commitment {
            outputs.push(TxOut {
                value: 0,
                script_pubkey: witness_commitment_script(commitment),
            });
        }
        let coinbase = Coinbase::build(&CoinbaseSpec {
            height: template.height,
            tag: &config.coinbase_tag,
            extranonce_len: EXTRANONCE1_LEN + config.extranonce2_size,
            outputs: &outputs,
            witness: template.witness_commitment.is_some(),
        })?;
        let branch = branch(&template.txids);
        let job_id = id.to_string();
        let prev_hash = stratum_prev_hash(&template.prev_hash);
        let merkle_branch: Vec<String> = branch.iter().map(|h| hex::encode(h.0)).collect();
        let (coinb1, coinb2) = (
            hex::encode(coinbase.coinb1()),
            hex::encode(coinbase.coinb2()),
        );
        let job_version = template.version & !BIP320_MASK;
        let (version, bits, ntime) = (
            format!("{job_version:08x}"),
            format!("{:08x}", template.bits),
            format!("{:08x}", template.cur_time),
        );
        let fields = |clean_jobs| NotifyFields {
            job_id: &job_id,
            prev_hash: &prev_hash,
            coinb1: &coinb1,
            coinb2: &coinb2,
            merkle_branch: &merkle_branch,
            version: &version,
            bits: &bits,
            ntime: &ntime,
            clean_jobs,
        };
        let notify_clean = notify(&fields(true));
        let notify_update = notify(&fields(false));
        Ok(Job {
            id,
            version: job_version,
            network_difficulty: template.network_target.difficulty(),
            template,
            coinbase,
            branch,
            created: Instant::now(),
            notify_clean,
            notify_update,
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
