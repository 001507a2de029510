//! The stratum listener: accepts miners and gives each its session task.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::session::connection::{serve, Closed, ConnectionContext};
use crate::session::Now;
use crate::session::{Resumptions, Session};
use crate::work::ExtranonceAllocator;

/// What the listener holds connections to.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub max_connections: usize,
    pub max_per_ip: usize,
    /// Drops for invalid shares within `ban_for` that ban an address (0: never).
    pub ban_after_drops: u32,
    pub ban_for: Duration,
}

/// Most addresses remembered for drops or bans; past it, expired ones go.
const MAX_REMEMBERED: usize = 65_536;

/// Counts open connections, in all and per address, remembers addresses
/// dropped for invalid shares, and refuses a connection over a bound or from
/// a banned address.
pub struct Admission {
    bounds: Bounds,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Drops for invalid shares: how many, since when.
    drops: HashMap<IpAddr, (u32, Instant)>,
    banned: HashMap<IpAddr, Instant>,
}

/// One admitted connection; dropping it frees its place.
pub struct Admitted {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    pub fn new(bounds: Bounds) -> Arc<Admission> {
        Arc::new(Admission {
            bounds,
            open: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a connection from `ip`, or the name of the bound it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, &'static str> {
        let ip = ip.to_canonical();
        let mut open = self.lock();
        if let Some(until) = open.banned.get(&ip) {
            if Instant::now() < *until {
                return Err("banned");
            }
            open.banned.remove(&ip);
        }
        if open.total >= self.bounds.max_connections {
            return Err("max_connections");
        }
        let from_ip = open.per_ip.entry(ip).or_default();
        if *from_ip >= self.bounds.max_per_ip {
            return Err("max_connections_per_ip");
        }
        *from_ip += 1;
        open.total += 1;
        Ok(Admitted {
            admission: self.clone(),
            ip,
        })
    }

    /// Counts a drop for invalid shares; true when it bans the address.
    pub fn dropped_for_invalid_shares(&self, ip: IpAddr) -> bool {
        if self.bounds.ban_after_drops == 0 {
            return false;
        }
        let (ip, now) = (ip.to_canonical(), Instant::now());
        let ban_for = self.bounds.ban_for;
        let mut open = self.lock();
        if open.drops.len() >= MAX_REMEMBERED {
            open.drops
                .retain(|_, (_, since)| now.duration_since(*since) < ban_for);
            open.banned.retain(|_, until| now < *until);
        }
        let drops = open.drops.entry(ip).or_insert((0, now));
        if now.duration_since(drops.1) >= ban_for {
            *drops = (0, now);
        }
        drops.0 += 1;
        if drops.0 < self.bounds.ban_after_drops {
            return false;
        }
        open.drops.remove(&ip);
        open.banned.insert(ip, now + ban_for);
        true
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.admission.lock();
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
    resumptions: Arc<Resumptions>,
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
                context.port.refused(bound);
                tracing::debug!(%peer, bound, "connection refused");
                continue;
            }
        };
        let Some(lease) = extranonces.allocate() else {
            // Every extranonce1 is held: more connections than any bound allows.
            context.port.refused("max_connections");
            tracing::warn!(%peer, "connection refused: every extranonce1 is in use");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let config = context.config.borrow().clone();
        let session = Session::leased(config, lease, resumptions.clone(), Now::system());
        let context = context.clone();
        let admission = admission.clone();
        tracker.spawn(async move {
            let extranonce1 = session.extranonce1();
            let (reader, writer) = stream.into_split();
            let port = context.port.clone();
            let closed = serve(reader, writer, session, context).await;
            if closed == Closed::InvalidShares {
                tracing::warn!(%peer, "miner closed after too many invalid shares in a row");
                if admission.dropped_for_invalid_shares(peer.ip()) {
                    tracing::warn!(ip = %peer.ip(), "address banned for repeated invalid shares");
                }
            }
            drop(admitted);
            port.disconnected(closed.label());
            tracing::debug!(%peer, extranonce1 = %extranonce1.to_hex(), ?closed, "miner disconnected");
        });
    }
}
