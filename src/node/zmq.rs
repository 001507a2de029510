//! ZMQ `hashblock` subscription: the node announces each new tip at once.
//!
//! Polling and longpoll remain as fallbacks; this only wakes the fetcher sooner.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use zeromq::{Socket, SocketRecv};

use super::rpc::Backoff;
use crate::stats::Stats;

/// Subscribes to `endpoint` (`tcp://host:port`) until shutdown, reconnecting with backoff.
pub async fn run(
    endpoint: String,
    wake: Arc<Notify>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    let backoff = Backoff {
        first: Duration::from_millis(500),
        max: Duration::from_secs(30),
        attempts: u32::MAX,
    };
    let mut failures = 0u32;
    loop {
        let error = tokio::select! {
            _ = shutdown.cancelled() => return,
            error = listen(&endpoint, &wake, &stats, &mut failures) => error,
        };
        failures += 1;
        if failures == 1 {
            tracing::warn!(%endpoint, %error, "ZMQ hashblock subscription lost; polling and longpoll continue");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff.delay(failures)) => {}
        }
    }
}

/// Connects, subscribes, and wakes the fetcher per message; returns the error that ended it.
async fn listen(
    endpoint: &str,
    wake: &Notify,
    stats: &Stats,
    failures: &mut u32,
) -> zeromq::ZmqError {
    let mut socket = zeromq::SubSocket::new();
    if let Err(error) = socket.connect(endpoint).await {
        return error;
    }
    if let Err(error) = socket.subscribe("hashblock").await {
        return error;
    }
    if *failures > 0 {
        tracing::info!(%endpoint, "ZMQ hashblock subscription restored");
    }
    *failures = 0;
    loop {
        match socket.recv().await {
            Ok(message) => {
                let topic = message.get(0).map(|frame| frame.as_ref() == b"hashblock");
                if topic == Some(true) {
                    stats.metrics.zmq_hashblocks_total.inc();
                    wake.notify_one();
                }
            }
            Err(error) => return error,
        }
    }
}
