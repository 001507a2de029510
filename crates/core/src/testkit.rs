//! Templates, jobs, shares and sessions for unit tests, built from real templates
//! and hashed by [`crate::client`]. Compiled for this crate's tests and, with
//! the `testkit` feature, for the tests of the crates built on it.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::client::{hash_share, parse_notify, submit_params, Share, Work};
use crate::session::{Now, Output, Session, SessionConfig};
use crate::stratum::method::JobId;
use crate::template::Template;
use crate::vardiff::VardiffConfig;
use crate::work::Extranonce1;
use crate::work::{Job, JobConfig};

/// How test jobs are built: the `/NDAS/` tag, an 8-byte extranonce2, no
/// splits, and the payout script each payout group gives.
pub fn job_config() -> JobConfig {
    JobConfig {
        payout_script: Vec::new(),
        coinbase_tag: b"/NDAS/".to_vec(),
        extranonce2_size: 8,
        splits: Vec::new(),
    }
}

/// The payout script of a regtest P2PKH address.
pub const PAYOUT: &str = "76a9147af7d2a45dab23c78e3a5846dd4671aab308044d88ac";

/// A template with no transactions, on `prev`, with compact target `bits`.
pub fn template(prev: &str, bits: &str, height: u32) -> Value {
    let target =
        crate::chain::Target::from_compact(u32::from_str_radix(bits, 16).unwrap()).unwrap();
    json!({
        "version": 0x2000_0000u32,
        "previousblockhash": prev,
        "transactions": [],
        "coinbasevalue": 5_000_000_000u64,
        "bits": bits,
        "target": hex::encode(target.to_be_bytes()),
        "height": height,
        "curtime": 1_795_504_084u64,
        "mintime": 1_795_504_000u64,
    })
}

pub const TIP_A: &str = "53f4b87f121db5b8b7967601ec7e5ba48028b3e79df1ff8e2f4ac71fefb728b0";
pub const TIP_B: &str = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";

pub fn job(id: u64, raw: Value) -> Arc<Job> {
    let template = Template::from_json(raw).unwrap();
    let config = JobConfig {
        payout_script: hex::decode(PAYOUT).unwrap(),
        coinbase_tag: b"/NDAS/".to_vec(),
        extranonce2_size: 8,
        splits: Vec::new(),
    };
    Arc::new(Job::build(JobId(id), Arc::new(template), &config).unwrap())
}

/// A time inside every test template's window.
pub fn now() -> Now {
    Now {
        instant: std::time::Instant::now(),
        unix: 1_795_504_100,
    }
}

pub fn session(difficulty: f64) -> Session {
    let config = SessionConfig {
        extranonce2_size: 8,
        version_mask: 0x1fff_e000,
        vardiff: VardiffConfig {
            start: difficulty,
            min: difficulty,
            max: difficulty,
            target_share_seconds: 10.0,
            rounding: crate::vardiff::Rounding::None,
        },
        agents: Vec::new(),
    };
    Session::new(Arc::new(config), Extranonce1([9, 0, 0, 1]), now())
}

/// Sends one line and returns the answers as JSON.
pub fn send(session: &mut Session, line: &str) -> (Vec<Value>, Output) {
    let mut out = Output::default();
    session.handle_line(line, now(), &mut out);
    let answers = out
        .lines
        .iter()
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    (answers, out)
}

/// The job as a miner decodes it from the notify line.
pub fn work(job: &Job) -> Work {
    let notify: Value = serde_json::from_slice(&job.notify(true)).unwrap();
    parse_notify(&notify["params"]).unwrap()
}

/// The first share found from nonce 0 up that `wanted` accepts.
pub fn find(
    job: &Job,
    extranonce2: [u8; 8],
    rolled: Option<u32>,
    wanted: impl Fn(&Share) -> bool,
) -> Share {
    let work = work(job);
    (0..100_000)
        .map(|nonce| {
            hash_share(
                &work,
                &[9, 0, 0, 1],
                &extranonce2,
                nonce,
                rolled,
                0x1fff_e000,
            )
        })
        .find(|share| wanted(share))
        .expect("a share within 100,000 nonces")
}

/// The `mining.submit` line for a share.
pub fn submit_line(worker: &str, share: &Share) -> String {
    json!({"id": 7, "method": "mining.submit", "params": submit_params(worker, share)}).to_string()
}
