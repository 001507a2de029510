//! What stands in front of the operator port's handlers: the token, and a
//! request rate per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use base64::Engine;
use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;
use subtle::ConstantTimeEq;

use ndas_core::bucket::TokenBucket;
use ndas_core::by_address::{make_room, network_of};
use ndas_core::sync::LockAnyway;
use ndas_core::Secret;

/// Addresses whose request rate is remembered; past it, the idle ones go.
const MAX_ADDRESSES: usize = 4096;

/// The token check and the per-address rate.
pub struct Guard {
    token: Option<Secret>,
    /// Whether `/metrics` needs the token too.
    pub protects_metrics: bool,
    /// Requests a second per address, with a burst of as many.
    per_second: f64,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

impl Guard {
    pub fn new(token: Option<Secret>, protects_metrics: bool, per_second: u32) -> Guard {
        Guard {
            token,
            protects_metrics,
            per_second: f64::from(per_second.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Takes one request from `ip`'s allowance: false when it is spent.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = network_of(ip);
        let rate = self.per_second;
        let mut buckets = self.buckets.lock_anyway();
        if !buckets.contains_key(&ip) {
            // Addresses whose allowance has refilled are as if never seen.
            let refilling = |b: &TokenBucket| !b.is_full(now);
            make_room(
                &mut buckets,
                MAX_ADDRESSES,
                refilling,
                TokenBucket::last_taken,
            );
        }
        buckets
            .entry(ip)
            .or_insert(TokenBucket::full(rate, rate, now))
            .take(now)
    }

    /// Whether `headers` carry the token: `Bearer <token>`, or Basic with
    /// the token as password (any user name), compared in constant time.
    pub fn authenticated(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return false;
        };
        let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let given = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
                rest.trim().as_bytes().to_vec()
            }
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => {
                let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest.trim())
                else {
                    return false;
                };
                match decoded.iter().position(|&b| b == b':') {
                    Some(colon) => decoded[colon + 1..].to_vec(),
                    None => return false,
                }
            }
            _ => return false,
        };
        bool::from(given.ct_eq(token.expose().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_token_is_taken_as_bearer_or_basic_password_and_nothing_else() {
        let guard = Guard::new(Some(Secret::new("0123456789abcdef")), false, 10);
        assert!(guard.authenticated(&headers("Bearer 0123456789abcdef")));
        assert!(guard.authenticated(&headers("bearer  0123456789abcdef")));
        let basic = base64::engine::general_purpose::STANDARD.encode("ops:0123456789abcdef");
        assert!(guard.authenticated(&headers(&format!("Basic {basic}"))));
        for wrong in [
            "Bearer 0123456789abcde",
            "Bearer 0123456789abcdef0",
            "0123456789abcdef",
            "Basic !!!",
            "Token 0123456789abcdef",
        ] {
            assert!(!guard.authenticated(&headers(wrong)), "{wrong}");
        }
        assert!(!guard.authenticated(&HeaderMap::new()));
        let open = Guard::new(None, false, 10);
        assert!(!open.authenticated(&headers("Bearer anything")));
    }

    #[test]
    fn an_address_gets_its_rate_and_an_ipv6_host_shares_its_64() {
        let guard = Guard::new(None, false, 5);
        let start = Instant::now();
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "192.0.2.7".parse().unwrap();
        let allowed = (0..10).filter(|_| guard.allow(one, start)).count();
        assert_eq!(allowed, 5);
        assert!(
            !guard.allow(same_64, start),
            "the same /64 shares the allowance"
        );
        assert!(guard.allow(other, start));
        assert!(guard.allow(one, start + Duration::from_millis(250)));
        assert_eq!(network_of("::ffff:192.0.2.7".parse().unwrap()), other);
    }

    #[test]
    fn the_address_table_is_bounded_and_a_flood_of_addresses_resets_no_one() {
        let guard = Guard::new(None, false, 1);
        let start = Instant::now();
        for n in 0..(MAX_ADDRESSES as u32 + 100) {
            let at = start + Duration::from_micros(u64::from(n));
            guard.allow(IpAddr::from(n.to_be_bytes()), at);
        }
        assert!(guard.buckets.lock().unwrap().len() <= MAX_ADDRESSES);
        // The newest address spent its allowance; more new ones do not
        // give it back.
        let newest = IpAddr::from((MAX_ADDRESSES as u32 + 99).to_be_bytes());
        let later = start + Duration::from_millis(100);
        for n in 0..1000u32 {
            guard.allow(IpAddr::from((1_000_000 + n).to_be_bytes()), later);
        }
        assert!(!guard.allow(newest, later));
    }
}
