//! What the fuzz targets in `fuzz/` run. The bodies live here, in the
//! library, so every input the fuzzer ever kept (its seed corpus and each
//! crash, in `fuzz/regressions/`) is replayed by `tests/fuzz_regressions.rs`
//! on every test run, on stable Rust.
//!
//! Each function panics only on a broken invariant: that is the finding.

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use bitcoin::consensus::{deserialize, serialize};
use serde_json::{json, Value};

use ndas_core::chain::coinbase::{Coinbase, CoinbaseSpec, TxOut};
use ndas_core::chain::{merkle, Hash256, Target};
use ndas_core::session::{Now, Output, Session, SessionConfig};
use ndas_core::share::{validate, ShareContext};
use ndas_core::stratum::message::Request;
use ndas_core::stratum::method::{Extranonce2, JobId, Method, Submit};
use ndas_core::template::Template;
use ndas_core::vardiff::VardiffConfig;
use ndas_core::work::{Extranonce1, Job, JobConfig};
use ndas_core::FoundBlock;

mod sv2;
pub use sv2::sv2_session;

/// Most lines one input feeds a session.
const MAX_LINES: usize = 64;

/// A pay-to-witness-key-hash script: what the operator's address pays to.
const PAYOUT_SCRIPT: [u8; 22] = [
    0x00, 0x14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
];

fn job_config() -> JobConfig {
    JobConfig {
        payout_script: PAYOUT_SCRIPT.to_vec(),
        coinbase_tag: b"/NDAS/".to_vec(),
        extranonce2_size: 8,
        splits: Vec::new(),
    }
}

/// A regtest-difficulty job with no transactions, as the session targets' work.
static JOB: LazyLock<Arc<Job>> = LazyLock::new(|| {
    let template = json!({
        "version": 0x2000_0000,
        "previousblockhash": "00000000000000000000000000000000000000000000000000000000000000aa",
        "transactions": [],
        "coinbasevalue": 5_000_000_000u64,
        "bits": "207fffff",
        "height": 200,
        "curtime": 1_700_000_000,
        "mintime": 1_699_999_000,
        "longpollid": "x",
    });
    let template = Template::from_json(template).expect("the fixed template is valid");
    Arc::new(Job::build(JobId(1), Arc::new(template), &job_config()).expect("the fixed job builds"))
});

/// A port's settings for the session targets: any difficulty a share may
/// have, the user agent table of the defaults.
fn session_config() -> SessionConfig {
    SessionConfig {
        extranonce2_size: 8,
        version_mask: ndas_core::chain::header::BIP320_MASK,
        vardiff: VardiffConfig {
            start: 1e-9,
            min: 1e-10,
            max: 1e6,
            target_share_seconds: 5.0,
            rounding: ndas_core::vardiff::Rounding::None,
        },
        agents: ndas_core::vardiff::AgentDifficulty::defaults(),
    }
}

/// The time the session targets run at: the job's own, so ntime checks pass.
fn now() -> Now {
    Now {
        instant: Instant::now(),
        unix: 1_700_000_100,
    }
}

/// Decodes `data` as a connection does (the line codec with the default
/// 4,096-byte bound) and feeds up to [`MAX_LINES`] lines to one session that
/// has a job. Every answer must be one JSON line; a line over the bound, bytes
/// that are not UTF-8, or a session that closes end the input, as they end
/// a connection.
pub fn stratum_lines(data: &[u8]) {
    use tokio_util::codec::{Decoder, LinesCodec};
    let config = Arc::new(session_config());
    let mut session: Session = Session::new(config, Extranonce1([0, 0, 0, 1]), now());
    let mut out = Output::default();
    session.on_job(JOB.clone(), now(), &mut out);
    let mut codec = LinesCodec::new_with_max_length(4096);
    let mut buffer = bytes::BytesMut::from(data);
    for _ in 0..MAX_LINES {
        let line = match codec.decode_eof(&mut buffer) {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => break,
        };
        out = Output::default();
        session.handle_line(&line, now(), &mut out);
        for answer in &out.lines {
            assert_eq!(answer.last(), Some(&b'\n'), "an answer ends its line");
            let body = &answer[..answer.len() - 1];
            assert!(!body.contains(&b'\n'), "an answer is one line");
            let parsed: Value = serde_json::from_slice(body).expect("every answer is JSON");
            assert!(parsed.is_object(), "every answer is an object: {parsed}");
        }
        if out.close {
            break;
        }
    }
}

/// The params of every method: the first byte picks the method, the rest is
/// the params JSON. Parsing must answer Ok or a stratum error, never panic.
pub fn method_params(data: &[u8]) {
    const METHODS: [&str; 8] = [
        "mining.subscribe",
        "mining.authorize",
        "mining.submit",
        "mining.configure",
        "mining.suggest_difficulty",
        "mining.extranonce.subscribe",
        "mining.suggest_target",
        "mining.get_transactions",
    ];
    let Some((&pick, params)) = data.split_first() else {
        return;
    };
    let Ok(params) = serde_json::from_slice::<Value>(params) else {
        return;
    };
    let method = METHODS[usize::from(pick) % METHODS.len()];
    let line = json!({"id": 1, "method": method, "params": params}).to_string();
    if let Ok(request) = Request::parse(&line) {
        if let Ok(Method::Submit(submit)) = Method::parse(&request) {
            // What parsed must say what was sent.
            let sent = &request.params;
            if let Some(worker) = sent.get(0).and_then(Value::as_str) {
                assert_eq!(&*submit.worker, worker);
            }
        }
    }
}

/// A `getblocktemplate` answer: refused with an error, or turned into a job
/// whose block (assembled as for `submitblock`) the `bitcoin` crate reads
/// back with the same merkle root and, when segwit, a valid witness commitment.
pub fn template(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(template) = Template::from_json(value) else {
        return;
    };
    // Cut to its limits as the watcher does; the job's block must then be
    // within them, by the `bitcoin` crate's count.
    let bounds = ndas_core::work::limits::coinbase_bounds(&job_config(), None);
    let Ok((template, _)) = ndas_core::work::limits::fit(template, bounds) else {
        return;
    };
    let segwit = template.witness_commitment.is_some();
    let count = template.tx_count;
    let weight_limit = template.limits.weight;
    let Ok(job) = Job::build(JobId(7), Arc::new(template), &job_config()) else {
        return;
    };
    let job = Arc::new(job);
    let notify: Value = serde_json::from_slice(&job.notify(true)).expect("notify is JSON");
    assert_eq!(notify["method"], json!("mining.notify"));

    let extranonce1 = Extranonce1([9, 8, 7, 6]);
    let extranonce2 = Extranonce2::from_bytes(&[1; 8]).expect("8 bytes is an extranonce2");
    let submit = Submit {
        worker: "w".into(),
        job_id: Some(job.id),
        extranonce2,
        ntime: job.template.cur_time,
        nonce: 0,
        version_bits: None,
    };
    let context = ShareContext {
        extranonce1: &extranonce1,
        extranonce2_size: 8,
        version_mask: 0,
        target: &Target::MAX,
        now_unix: job.template.cur_time,
    };
    let Ok(accepted) = validate(&job, &submit, &context) else {
        return;
    };
    let found = FoundBlock {
        job: job.clone(),
        header: accepted.header,
        hash: accepted.hash,
        extranonce1,
        extranonce2,
        worker: "w".into(),
        received: Instant::now(),
    };
    let bytes = found.serialize();
    let block: bitcoin::Block = deserialize(&bytes).expect("the bitcoin crate reads our block");
    assert_eq!(serialize(&block), bytes, "the block round-trips");
    assert_eq!(block.txdata.len(), count + 1);
    assert!(
        block.weight().to_wu() <= weight_limit,
        "the block is within the template's weight limit"
    );
    assert!(
        block.check_merkle_root(),
        "the header commits to the transactions"
    );
    assert_eq!(
        block.block_hash().to_string(),
        found.hash.to_string(),
        "the hash we judged is the block's"
    );
    if segwit {
        assert!(
            block.check_witness_commitment(),
            "the witness commitment holds"
        );
    }
}

/// Reads little pieces of a fuzz input, giving zeros once it runs out.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    fn byte(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    fn u32(&mut self) -> u32 {
        let mut four = [0; 4];
        let got = self.bytes(4);
        four[..got.len()].copy_from_slice(got);
        u32::from_le_bytes(four)
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }
}

/// The coinbase and merkle builders against the `bitcoin` crate: any
/// coinbase NDAS builds is a transaction it reads back, with the same txid,
/// the BIP34 height first in its scriptSig; the stratum branch gives the
/// same root as the whole tree, and as the `bitcoin` crate's.
pub fn coinbase_merkle(data: &[u8]) {
    let mut input = Cursor(data);
    let height = input.u32();
    let extranonce_len = usize::from(input.byte() % 80);
    let witness = input.byte() & 1 == 1;
    let tag_len = usize::from(input.byte());
    let tag = input.bytes(tag_len).to_vec();
    let outputs: Vec<TxOut> = (0..input.byte() % 4)
        .map(|_| {
            let value = input.u64();
            let len = usize::from(input.byte());
            TxOut {
                value,
                script_pubkey: input.bytes(len).to_vec(),
            }
        })
        .collect();
    let txids: Vec<Hash256> = (0..u32::from(input.byte()) * 8 + u32::from(input.byte() % 8))
        .map(|n| ndas_core::chain::sha256d(&n.to_le_bytes()))
        .collect();
    let spec = CoinbaseSpec {
        height,
        tag: &tag,
        extranonce_len,
        outputs: &outputs,
        witness,
    };
    let Ok(coinbase) = Coinbase::build(&spec) else {
        return;
    };
    assert_eq!(coinbase.extranonce_len(), extranonce_len);
    let extranonce: Vec<u8> = (0..extranonce_len as u8).collect();
    let (extranonce1, extranonce2) = extranonce.split_at(extranonce_len.min(4));

    let mut plain = coinbase.coinb1().to_vec();
    plain.extend_from_slice(&extranonce);
    plain.extend_from_slice(coinbase.coinb2());
    let tx: bitcoin::Transaction =
        deserialize(&plain).expect("coinb1 | extranonce | coinb2 is a transaction");
    assert!(tx.is_coinbase());
    assert_eq!(
        tx.compute_txid().to_string(),
        coinbase.txid(extranonce1, extranonce2).to_string()
    );
    let bip34 = bitcoin::script::Builder::new()
        .push_int(i64::from(height))
        .into_script();
    assert!(
        tx.input[0]
            .script_sig
            .as_bytes()
            .starts_with(bip34.as_bytes()),
        "the scriptSig starts with the height as Core pushes it"
    );
    assert!(
        tx.input[0].script_sig.len() <= 100,
        "consensus scriptSig limit"
    );
    let mut in_block = Vec::new();
    coinbase.write_for_block(extranonce1, extranonce2, &mut in_block);
    let in_block: bitcoin::Transaction =
        deserialize(&in_block).expect("the block's coinbase is a transaction");
    assert_eq!(in_block.compute_txid(), tx.compute_txid());
    if witness {
        assert_eq!(in_block.input[0].witness.to_vec(), vec![vec![0u8; 32]]);
    }

    let coinbase_txid = coinbase.txid(extranonce1, extranonce2);
    let mut all = vec![coinbase_txid];
    all.extend_from_slice(&txids);
    let ours = merkle::root_from_branch(&coinbase_txid, &merkle::branch(&txids));
    assert_eq!(ours, merkle::root(&all));
    let theirs =
        bitcoin::merkle_tree::calculate_root(all.iter().map(|h| {
            <bitcoin::hashes::sha256d::Hash as bitcoin::hashes::Hash>::from_byte_array(h.0)
        }))
        .expect("at least the coinbase");
    assert_eq!(
        <bitcoin::hashes::sha256d::Hash as bitcoin::hashes::Hash>::to_byte_array(theirs),
        ours.0
    );
}
