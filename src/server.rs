//! The stratum listener: accepts miners and gives each its session task.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::session::connection::{serve, ConnectionContext};
use crate::session::Now;
use crate::session::Session;
use crate::work::ExtranonceAllocator;

/// Accepts until shutdown; each connection runs on `tracker`.
pub async fn accept_loop(
    listener: TcpListener,
    extranonces: Arc<ExtranonceAllocator>,
    context: ConnectionContext,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = context.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let config = context.config.borrow().clone();
        let session = Session::new(config, extranonces.allocate(), Now::system());
        let context = context.clone();
        tracker.spawn(async move {
            let extranonce1 = session.extranonce1();
            let (reader, writer) = stream.into_split();
            let closed = serve(reader, writer, session, context).await;
            tracing::debug!(%peer, extranonce1 = %extranonce1.to_hex(), ?closed, "miner disconnected");
        });
    }
}
