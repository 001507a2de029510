//! Server-to-miner notifications, serialized once and shared as `Bytes`.

use bytes::Bytes;
use serde_json::json;

use super::message::notification;

/// `mining.set_difficulty`: applies to the jobs that follow.
pub fn set_difficulty(difficulty: f64) -> Bytes {
    notification("mining.set_difficulty", [difficulty])
}

/// `mining.set_version_mask` (BIP310): the bits the miner may roll from now on.
pub fn set_version_mask(mask: u32) -> Bytes {
    notification("mining.set_version_mask", [format!("{mask:08x}")])
}

/// `client.reconnect` with no params: reconnect to the same pool. (cgminer
/// and its descendants read a missing host as "the same one"; an empty string
/// would be taken as a host.)
pub fn reconnect() -> Bytes {
    notification("client.reconnect", json!([]))
}

/// `client.reconnect` to another pool: `[host, port, 0]`, the port as a
/// string as cgminer reads it (it takes a number for "the same port") and
/// ckpool's redirect sends it. cgminer and its descendants follow it only
/// to a host of the same domain as the pool's.
pub fn reconnect_to(host: &str, port: u16) -> Bytes {
    notification("client.reconnect", json!([host, port.to_string(), 0]))
}

/// The fields of `mining.notify`, already in their wire form.
pub struct NotifyFields<'a> {
    pub job_id: &'a str,
    /// Previous block hash with each 4-byte word byte-swapped, as miners expect.
    pub prev_hash: &'a str,
    pub coinb1: &'a str,
    pub coinb2: &'a str,
    pub merkle_branch: &'a [String],
    pub version: &'a str,
    pub bits: &'a str,
    pub ntime: &'a str,
    pub clean_jobs: bool,
}

/// `mining.notify` as one line.
pub fn notify(fields: &NotifyFields<'_>) -> Bytes {
    notification(
        "mining.notify",
        json!([
            fields.job_id,
            fields.prev_hash,
            fields.coinb1,
            fields.coinb2,
            fields.merkle_branch,
            fields.version,
            fields.bits,
            fields.ntime,
            fields.clean_jobs
        ]),
    )
}
