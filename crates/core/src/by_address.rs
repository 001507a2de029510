//! Tables kept per network address (connection counts, bans, strikes,
//! request budgets): which address an entry is kept for, and how a full
//! table makes room. The stratum listener and the operator port keep theirs
//! the same way.

use std::collections::HashMap;
use std::net::IpAddr;

/// The address a bound, a ban or a strike count is kept for: an IPv6 client
/// by its /64, the least a site is given, so one host cannot rotate through
/// its prefix; IPv4 (and IPv4-mapped IPv6) by the address.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// Makes room in `map` (a table by address, at most `max`) for one more:
/// the expired go (`live` says which stay), then the oldest eighth by `age`,
/// never all at once, so a flood of new addresses costs one sort per eighth
/// of the table, not a scan per address, and resets no one.
pub fn make_room<V, K: Ord + Copy>(
    map: &mut HashMap<IpAddr, V>,
    max: usize,
    live: impl Fn(&V) -> bool,
    age: impl Fn(&V) -> K,
) {
    if map.len() < max {
        return;
    }
    map.retain(|_, v| live(v));
    if map.len() < max {
        return;
    }
    let mut ages: Vec<K> = map.values().map(&age).collect();
    let (_, cutoff, _) = ages.select_nth_unstable(max / 8);
    let cutoff = *cutoff;
    map.retain(|_, v| age(v) > cutoff);
}
