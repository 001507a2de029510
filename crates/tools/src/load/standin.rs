//! A stand-in node for throughput runs: serves one recorded template with a
//! chosen `bits` (so shares are not blocks, as on mainnet), moves its tip on
//! a timer, holds longpolls until then, and accepts every `submitblock`.
//!
//! Only for load runs; the tests and the block-latency figure use the real node.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use ndas_core::chain::{sha256d, Target};

/// What the stand-in serves.
pub struct StandIn {
    template: Value,
    bits: AtomicU32,
    tip: watch::Sender<u64>,
    /// `submitblock` calls received.
    pub submitted: AtomicU64,
    /// When set: the parent's time, and the stand-in is a testnet node that
    /// follows the 20-minute rule (see [`StandIn::follow_testnet_rule`]).
    parent_time: AtomicU64,
}

/// Testnet's minimum-difficulty bits (its proof-of-work limit).
pub use ndas_core::chain::network::TESTNET_MIN_DIFFICULTY_BITS as TESTNET_MIN_BITS;

impl StandIn {
    /// `template` is a `getblocktemplate` answer; `bits` replaces its target.
    pub fn new(template: Value, bits: u32) -> Result<Arc<StandIn>, String> {
        Target::from_compact(bits).map_err(|e| e.to_string())?;
        let (tip, _) = watch::channel(1);
        Ok(Arc::new(StandIn {
            template,
            bits: AtomicU32::new(bits),
            tip,
            submitted: AtomicU64::new(0),
            parent_time: AtomicU64::new(0),
        }))
    }

    /// Changes the target at the same tip, as testnet's 20-minute rule does:
    /// the node's longpoll does not return for it (Core's does not either).
    pub fn set_bits(&self, bits: u32) -> Result<(), String> {
        Target::from_compact(bits).map_err(|e| e.to_string())?;
        self.bits.store(bits, Ordering::Relaxed);
        Ok(())
    }

    /// Plays a testnet node whose tip was mined at `parent_time`: it says it
    /// is on `test`, answers `getblockheader` with that time, and serves
    /// [`TESTNET_MIN_BITS`] once its clock is more than twenty minutes
    /// past it, its own bits before, as Core's `GetNextWorkRequired` does.
    pub fn follow_testnet_rule(&self, parent_time: u64) {
        self.parent_time.store(parent_time, Ordering::Relaxed);
    }

    /// The bits a template made `now` carries.
    fn bits_at(&self, now: u64) -> u32 {
        let parent_time = self.parent_time.load(Ordering::Relaxed);
        if parent_time != 0 && now > parent_time + 1200 {
            return TESTNET_MIN_BITS;
        }
        self.bits.load(Ordering::Relaxed)
    }

    /// Moves the tip: the next template is on a new previous block.
    pub fn new_tip(&self) {
        self.tip.send_modify(|tip| *tip += 1);
    }

    fn tip_hash(tip: u64) -> String {
        sha256d(&tip.to_le_bytes()).to_string()
    }

    async fn template(&self, longpoll_id: Option<&str>) -> Value {
        let mut changes = self.tip.subscribe();
        let current = *changes.borrow_and_update();
        if longpoll_id == Some(current.to_string().as_str()) {
            let _ = tokio::time::timeout(Duration::from_secs(60), changes.changed()).await;
        }
        let tip = *self.tip.borrow();
        let now = ndas_core::clock::unix_now();
        let mut template = self.template.clone();
        let bits = self.bits_at(now);
        let target = Target::from_compact(bits).expect("checked when set");
        template["previousblockhash"] = json!(Self::tip_hash(tip));
        template["bits"] = json!(format!("{bits:08x}"));
        template["target"] = json!(hex::encode(target.to_be_bytes()));
        template["curtime"] = json!(now);
        template["mintime"] = json!(now - 600);
        template["height"] = json!(template["height"].as_u64().unwrap_or(1) + tip);
        template["longpollid"] = json!(tip.to_string());
        template
    }

    async fn answer(&self, body: &[u8]) -> Value {
        let Ok(request) = serde_json::from_slice::<Value>(body) else {
            return json!({"result": null, "error": {"code": -32700, "message": "parse error"}, "id": null});
        };
        let id = request["id"].clone();
        let result = match request["method"].as_str().unwrap_or("") {
            "getblocktemplate" => {
                self.template(request["params"][0]["longpollid"].as_str())
                    .await
            }
            "getbestblockhash" => json!(Self::tip_hash(*self.tip.borrow())),
            "submitblock" => {
                self.submitted.fetch_add(1, Ordering::Relaxed);
                Value::Null
            }
            "getblockcount" => json!(*self.tip.borrow()),
            // Its templates are regtest's (NDAS checks the chain it is on),
            // unless it plays testnet.
            "getblockchaininfo" => {
                let testnet = self.parent_time.load(Ordering::Relaxed) != 0;
                let chain = if testnet { "test" } else { "regtest" };
                json!({"chain": chain, "blocks": *self.tip.borrow()})
            }
            "getblockheader" => json!({"time": self.parent_time.load(Ordering::Relaxed)}),
            _ => {
                return json!({"result": null, "error": {"code": -32601, "message": "Method not found"}, "id": id})
            }
        };
        json!({"result": result, "error": null, "id": id})
    }
}

/// Serves JSON-RPC on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, standin: Arc<StandIn>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let standin = standin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let standin = standin.clone();
                async move {
                    let body = request
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let answer = standin.answer(&body).await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(answer.to_string()))))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
