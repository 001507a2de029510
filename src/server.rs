//! The stratum listener: accepts miners and gives each its session task.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::task::TaskTracker;

use crate::session::connection::{serve, ConnectionContext, Ended};
use crate::session::Now;
use crate::session::{Resumptions, Session};
use crate::sv2::connection::{serve as sv2_serve, Sv2Session};
use crate::tls::Tls;
use ndas_core::bucket::TokenBucket;
use ndas_core::by_address::{make_room, network_of};
use ndas_core::closed::Closed;
use ndas_core::sync::LockAnyway;
use ndas_core::work::ExtranonceAllocator;

/// What the listener holds connections to.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub max_connections: usize,
    pub max_per_ip: usize,
    /// Connections not yet subscribed and authorized, at once: a few
    /// addresses cannot hold every place with connections that never
    /// subscribe.
    pub max_handshaking: usize,
    /// Connections admitted per second in all, with a burst of
    /// `max_connections`.
    pub accepts_per_second: f64,
    /// Drops for invalid shares within `ban_for` that ban an address (0: never).
    pub ban_after_drops: u32,
    pub ban_for: Duration,
}

/// Most addresses remembered for drops, bans or strikes; past it, expired
/// ones go, then the oldest.
const MAX_REMEMBERED: usize = 65_536;

/// Counts open connections, in all and per address, remembers addresses
/// dropped for invalid shares, and refuses a connection over a bound or from
/// a banned address.
pub struct Admission {
    bounds: Bounds,
    open: Mutex<Open>,
    /// A permit per connection still in its handshake.
    handshaking: Arc<tokio::sync::Semaphore>,
}

struct Open {
    total: usize,
    /// Admissions left to give before the rate refills.
    accepts: TokenBucket,
    per_ip: HashMap<IpAddr, usize>,
    /// Drops for invalid shares: how many, since when.
    drops: HashMap<IpAddr, (u32, Instant)>,
    banned: HashMap<IpAddr, Instant>,
    /// Invalid shares in a row an address's last connection ended with:
    /// its next connection starts from them, so hanging up does not reset
    /// the count.
    strikes: HashMap<IpAddr, (u32, Instant)>,
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
            open: Mutex::new(Open {
                total: 0,
                // `accepts_per_second`, with a burst of `max_connections`.
                accepts: TokenBucket::full(
                    bounds.accepts_per_second,
                    bounds.max_connections as f64,
                    Instant::now(),
                ),
                per_ip: HashMap::new(),
                drops: HashMap::new(),
                banned: HashMap::new(),
                strikes: HashMap::new(),
            }),
            handshaking: Arc::new(tokio::sync::Semaphore::new(bounds.max_handshaking.max(1))),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock_anyway()
    }

    /// A place for a connection from `ip`, or the name of the bound it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, &'static str> {
        let ip = network_of(ip);
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
        if open
            .per_ip
            .get(&ip)
            .is_some_and(|n| *n >= self.bounds.max_per_ip)
        {
            return Err("max_connections_per_ip");
        }
        // Spent only by a connection every other bound lets in, so a banned
        // address's flood costs honest miners nothing.
        if !open.accepts.take(Instant::now()) {
            return Err("max_accepts_per_second");
        }
        let from_ip = open.per_ip.entry(ip).or_default();
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
        let (ip, now) = (network_of(ip), Instant::now());
        let ban_for = self.bounds.ban_for;
        let mut open = self.lock();
        let recent = |(_, since): &(u32, Instant)| now.duration_since(*since) < ban_for;
        make_room(&mut open.drops, MAX_REMEMBERED, recent, |(_, since)| *since);
        make_room(
            &mut open.banned,
            MAX_REMEMBERED,
            |until| now < *until,
            |until| *until,
        );
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

impl Admission {
    /// The invalid shares in a row `ip`'s last connection ended with (within
    /// `ban_seconds`), handed to its next connection, which owns them from
    /// then on and reports its own count when it ends.
    pub fn take_strikes(&self, ip: IpAddr) -> u32 {
        let mut open = self.lock();
        match open.strikes.remove(&network_of(ip)) {
            Some((strikes, since)) if since.elapsed() < self.bounds.ban_for => strikes,
            _ => 0,
        }
    }

    /// A connection from `ip` ended with `strikes` invalid shares in a row
    /// (not counted when it was closed for them: its drop is counted instead).
    pub fn connection_ended(&self, ip: IpAddr, strikes: u32) {
        if strikes == 0 {
            return;
        }
        let (ip, now) = (network_of(ip), Instant::now());
        let ban_for = self.bounds.ban_for;
        let mut open = self.lock();
        let recent = |(_, since): &(u32, Instant)| now.duration_since(*since) < ban_for;
        make_room(&mut open.strikes, MAX_REMEMBERED, recent, |(_, since)| {
            *since
        });
        open.strikes.insert(ip, (strikes, now));
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

/// A new connection's state machine, by the wire its port speaks.
// Only until its task is spawned: each wire's task holds its own alone.
#[allow(clippy::large_enum_variant)]
enum Wire {
    V1(Session),
    V2(Sv2Session, Arc<crate::sv2::Endpoint>),
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
        if context.payout_groups.is_withdrawn() {
            // No node serves: a miner let in would only wait on no work,
            // where its firmware's backup pool has some.
            context.port.refused("no_node");
            tracing::debug!(%peer, "connection refused: no node serves");
            continue;
        }
        let admitted = match admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(bound) => {
                // Closed at once: a flood costs an accept and a close, no task.
                context.port.refused(bound);
                tracing::debug!(%peer, bound, "connection refused");
                continue;
            }
        };
        // Held until the miner is subscribed and authorized.
        let Ok(handshake) = admission.handshaking.clone().try_acquire_owned() else {
            context.port.refused("max_handshaking");
            tracing::debug!(%peer, "connection refused: max_handshaking");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let config = context.config.borrow().clone();
        let source = network_of(peer.ip());
        // Stratum V2's channels lease their extranonce1s as they open.
        let wire = match &context.sv2 {
            Some(endpoint) => Wire::V2(
                Sv2Session::new(config, endpoint.limits.clone(), extranonces.clone())
                    .with_payouts(context.payout_groups.clone())
                    .from_source(source),
                endpoint.clone(),
            ),
            None => {
                let Some(lease) = extranonces.allocate() else {
                    // Every extranonce1 is held: more connections than any bound allows.
                    context.port.refused("max_connections");
                    tracing::warn!(%peer, "connection refused: every extranonce1 is in use");
                    continue;
                };
                Wire::V1(
                    Session::leased(config, lease, resumptions.clone(), Now::system())
                        .with_payouts(context.payout_groups.clone())
                        .from_source(source),
                )
            }
        };
        let context = context.clone();
        let admission = admission.clone();
        let mut context = context;
        context.carried_strikes = admission.take_strikes(peer.ip());
        // One task type per wire: a V1 task holds only what V1 needs.
        match wire {
            Wire::V1(session) => tracker.spawn(async move {
                let extranonce1 = session.extranonce1();
                let port = context.port.clone();
                let ended = match context.tls.clone() {
                    None => {
                        let (reader, writer) = stream.into_split();
                        serve(reader, writer, session, context, Some(handshake)).await
                    }
                    // Boxed: a TLS connection's state stays out of every plain
                    // connection's task (about 2 KiB each when it was inline).
                    Some(tls) => {
                        Box::pin(serve_tls(&tls, stream, peer, session, context, handshake)).await
                    }
                };
                let extranonce1 = Some(extranonce1);
                ended_connection(ended, peer, &admission, admitted, &port, extranonce1);
            }),
            Wire::V2(session, endpoint) => tracker.spawn(async move {
                let port = context.port.clone();
                let ended = sv2_serve(stream, session, endpoint, context, handshake).await;
                // Its channels' extranonce1s were freed as they closed.
                ended_connection(ended, peer, &admission, admitted, &port, None);
            }),
        };
    }
}

/// What every ended connection leaves: its strikes for its address's next
/// connection (none when it was dropped for them, and maybe a ban), its
/// place among the address's connections, its close reason counted.
fn ended_connection(
    Ended { closed, strikes }: Ended,
    peer: SocketAddr,
    admission: &Admission,
    admitted: Admitted,
    port: &crate::metrics::PortMetrics,
    extranonce1: Option<ndas_core::work::Extranonce1>,
) {
    if closed != Closed::InvalidShares {
        admission.connection_ended(peer.ip(), strikes);
    }
    if closed == Closed::InvalidShares {
        tracing::warn!(%peer, "miner closed after too many invalid shares in a row");
        if admission.dropped_for_invalid_shares(peer.ip()) {
            tracing::warn!(ip = %peer.ip(), "address banned for repeated invalid shares");
        }
    }
    drop(admitted);
    port.disconnected(closed.label());
    let extranonce1 = extranonce1.map(|e| e.to_hex());
    tracing::debug!(%peer, ?extranonce1, ?closed, "miner disconnected");
}

/// A TLS port's connection: the handshake, within the handshake timeout
/// and holding the connection's place among those handshaking, then the
/// same loop as a plain port's.
async fn serve_tls(
    tls: &Tls,
    stream: TcpStream,
    peer: SocketAddr,
    session: Session,
    context: ConnectionContext,
    handshake: OwnedSemaphorePermit,
) -> Ended {
    let strikes = context.carried_strikes;
    let limit = context.limits.handshake_timeout;
    match tokio::time::timeout(limit, tls.accept(stream)).await {
        Ok(Ok(stream)) => {
            let (reader, writer) = tokio::io::split(stream);
            serve(reader, writer, session, context, Some(handshake)).await
        }
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            let closed = Closed::Tls;
            Ended { closed, strikes }
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake not done within the handshake timeout");
            let closed = Closed::HandshakeTimeout;
            Ended { closed, strikes }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_per_ip: usize) -> Arc<Admission> {
        Admission::new(Bounds {
            max_connections: 1_000_000,
            max_per_ip,
            max_handshaking: 1000,
            accepts_per_second: 1_000_000.0,
            ban_after_drops: 2,
            ban_for: Duration::from_secs(600),
        })
    }

    #[test]
    fn the_whole_fleet_may_connect_at_once_but_not_churn_faster_than_the_rate() {
        let bounds = Admission::new(Bounds {
            max_connections: 50,
            max_per_ip: 50,
            max_handshaking: 50,
            accepts_per_second: 10.0,
            ban_after_drops: 0,
            ban_for: Duration::from_secs(600),
        });
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        // A banned address's flood spends none of the rate.
        bounds
            .lock()
            .banned
            .insert(ip(250), Instant::now() + Duration::from_secs(600));
        for _ in 0..100 {
            assert_eq!(bounds.admit(ip(250)).err(), Some("banned"));
        }
        // A farm restarting: all 50 at once, from many addresses.
        let fleet: Vec<_> = (0..50).map(|n| bounds.admit(ip(n)).unwrap()).collect();
        drop(fleet);
        // Then coming and going at once is over the rate, for any address.
        assert_eq!(bounds.admit(ip(1)).err(), Some("max_accepts_per_second"));
        assert_eq!(bounds.admit(ip(200)).err(), Some("max_accepts_per_second"));
        assert!(bounds.lock().per_ip.is_empty(), "no address left behind");

        let start = Instant::now();
        let later = |ms| start + Duration::from_millis(ms);
        let mut bucket = TokenBucket::empty(10.0, 50.0, start);
        assert!(!bucket.take(later(50)));
        assert!(bucket.take(later(120)));
        assert!(!bucket.take(later(130)));
        // Refilled, never past the burst.
        let mut taken = 0;
        while bucket.take(later(3_600_000)) {
            taken += 1;
        }
        assert_eq!(taken, 50);
    }

    #[test]
    fn an_ipv6_host_is_one_address_per_64_and_a_mapped_ipv4_its_ipv4() {
        let bounds = admission(2);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let _a = bounds.admit(ip("2001:db8:5:6::1")).unwrap();
        let _b = bounds.admit(ip("2001:db8:5:6:abcd::2")).unwrap();
        assert_eq!(
            bounds.admit(ip("2001:db8:5:6:ffff:ffff:ffff:ffff")).err(),
            Some("max_connections_per_ip"),
            "a third address in the same /64"
        );
        assert!(bounds.admit(ip("2001:db8:5:7::1")).is_ok(), "the next /64");
        let _c = bounds.admit(ip("192.0.2.1")).unwrap();
        let _d = bounds.admit(ip("::ffff:192.0.2.1")).unwrap();
        assert!(
            bounds.admit(ip("192.0.2.1")).is_err(),
            "mapped is the same address"
        );
        // Bans follow the /64 too.
        let host = ip("2001:db8:9:9::1");
        assert!(!bounds.dropped_for_invalid_shares(host));
        assert!(bounds.dropped_for_invalid_shares(ip("2001:db8:9:9::2")));
        assert_eq!(bounds.admit(ip("2001:db8:9:9::3")).err(), Some("banned"));
    }

    #[test]
    fn strikes_outlive_a_connection_and_go_to_the_next_one_alone() {
        let bounds = admission(10);
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(bounds.take_strikes(ip), 0);
        bounds.connection_ended(ip, 49);
        assert_eq!(bounds.take_strikes(ip), 49);
        // Taken: a connection opened meanwhile starts from none.
        assert_eq!(bounds.take_strikes(ip), 0);
        bounds.connection_ended(ip, 0);
        assert_eq!(bounds.take_strikes(ip), 0);
    }

    #[test]
    fn the_tables_of_addresses_never_pass_their_bound() {
        let bounds = admission(10);
        for n in 0..(MAX_REMEMBERED as u32 + 500) {
            let ip = IpAddr::from(n.to_be_bytes());
            bounds.connection_ended(ip, 3);
            bounds.dropped_for_invalid_shares(ip);
        }
        let open = bounds.lock();
        assert!(
            open.strikes.len() <= MAX_REMEMBERED,
            "{}",
            open.strikes.len()
        );
        assert!(open.drops.len() <= MAX_REMEMBERED, "{}", open.drops.len());
        assert!(open.banned.len() <= MAX_REMEMBERED, "{}", open.banned.len());
    }
}
