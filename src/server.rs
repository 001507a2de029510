//! The stratum listener: accepts miners and gives each its session task.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::session::connection::{serve, ConnectionContext};
use crate::session::Now;
use crate::session::Session;
use crate::work::ExtranonceAllocator;

/// Counts open connections, in all and per address, and refuses one over
/// either bound.
pub struct Admission {
    max_connections: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
pub struct Admitted {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    pub fn new(max_connections: usize, max_per_ip: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_connections,
            max_per_ip,
            open: Mutex::default(),
        })
    }

    /// A place for a connection from `ip`, or the name of the bound it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, &'static str> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_connections {
            return Err("max_connections");
        }
        let from_ip = open.per_ip.entry(ip).or_default();
        if *from_ip >= self.max_per_ip {
            return Err("max_connections_per_ip");
        }
        *from_ip += 1;
        open.total += 1;
        Ok(Admitted {
            admission: self.clone(),
            ip,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total -= 1;
        if let Some(count) = open.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Accepts until shutdown; each connection runs on `tracker`.
pub async fn accept_loop(
    listener: TcpListener,
    extranonces: Arc<ExtranonceAllocator>,
    admission: Arc<Admission>,
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
        let admitted = match admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(bound) => {
                // Closed at once: a flood costs an accept and a close, no task.
                context
                    .stats
                    .metrics
                    .connections_refused_total
                    .with_label_values(&[bound])
                    .inc();
                tracing::debug!(%peer, bound, "connection refused");
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
            let stats = context.stats.clone();
            let closed = serve(reader, writer, session, context).await;
            drop(admitted);
            stats
                .metrics
                .disconnects_total
                .with_label_values(&[closed.label()])
                .inc();
            tracing::debug!(%peer, extranonce1 = %extranonce1.to_hex(), ?closed, "miner disconnected");
        });
    }
}
