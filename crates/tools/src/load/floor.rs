//! The fan-out floor: the least any stratum server can do to push a job to
//! every miner. It answers the handshake with fixed lines, then every few
//! seconds writes one NDAS-built `mining.notify` to every connection in a
//! tight loop on one task: no per-miner wake-up, no session, no bookkeeping,
//! one non-blocking write each. `ndas load` against it measures what this
//! machine and the generator allow; NDAS's own figure reads against it.
//!
//! Only for benchmarks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpListener;
use tokio_util::codec::{FramedRead, LinesCodec};

use ndas_core::chain::coinbase::CoinbaseError;
use ndas_core::stratum::method::JobId;
use ndas_core::template::Template;
use ndas_core::work::{Job, JobConfig};

/// Serves on `listener` until the process ends, sending a new job built from
/// `template` every `every`; an error if no job can be built from it.
pub async fn serve(
    listener: TcpListener,
    template: Template,
    every: Duration,
) -> Result<(), CoinbaseError> {
    let config = JobConfig {
        payout_script: hex::decode("0014f5e19ce4798d4fa87b1de99bc4d8557a6264f610")
            .expect("static script"),
        coinbase_tag: b"/floor/".to_vec(),
        extranonce2_size: 8,
        splits: Vec::new(),
    };
    let template = Arc::new(template);
    let build = move |id: u64| Job::build(JobId(id), template.clone(), &config);
    let first = build(1)?.notify(true);
    let miners: Arc<Mutex<Vec<Arc<OwnedWriteHalf>>>> = Arc::default();
    let current = Arc::new(Mutex::new(first));
    {
        let (miners, current) = (miners.clone(), current.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            for id in 2.. {
                ticks.tick().await;
                // Only the job id differs from the first, which built.
                let notify = build(id).expect("the first job built").notify(true);
                *current.lock().expect("not poisoned") = notify.clone();
                let miners = miners.lock().expect("not poisoned").clone();
                for miner in &miners {
                    // A miner whose buffer is full misses this job; the
                    // floor does not wait for anyone.
                    let _ = miner.try_write(&notify);
                }
            }
        });
    }
    let mut next_extranonce = 0u32;
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        next_extranonce += 1;
        let extranonce1 = hex::encode(next_extranonce.to_be_bytes());
        let (reader, writer) = stream.into_split();
        let writer = Arc::new(writer);
        let (miners, current) = (miners.clone(), current.clone());
        tokio::spawn(async move {
            let mut lines = FramedRead::new(reader, LinesCodec::new_with_max_length(4096));
            while let Some(Ok(line)) = lines.next().await {
                let Ok(request) = serde_json::from_str::<Value>(&line) else {
                    return;
                };
                let id = request["id"].clone();
                let answer = match request["method"].as_str() {
                    Some("mining.configure") => {
                        json!({"id": id, "result": {"version-rolling": true, "version-rolling.mask": "1fffe000"}, "error": null})
                    }
                    Some("mining.subscribe") => {
                        json!({"id": id, "result": [[["mining.notify", "1"]], extranonce1, 8], "error": null})
                    }
                    _ => json!({"id": id, "result": true, "error": null}),
                };
                let mut out = format!("{answer}\n").into_bytes();
                if request["method"] == "mining.authorize" {
                    out.extend_from_slice(
                        b"{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[1]}\n",
                    );
                    out.extend_from_slice(&current.lock().expect("not poisoned").clone());
                    miners.lock().expect("not poisoned").push(writer.clone());
                }
                if write_all(&writer, &out).await.is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
}

async fn write_all(writer: &OwnedWriteHalf, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        writer.writable().await?;
        match writer.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
