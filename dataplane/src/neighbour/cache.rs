//! The neighbour cache: which MAC an address is at, learned from ARP and
//! from every frame a client sends us, and when we may ask again for one
//! we do not know. Knows no protocol: ARP (and NDP next) feed it.

use crate::wire::ethernet::MacAddr;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Neighbours remembered at most; beyond this, new addresses are not
/// learned (a flood of spoofed sources must not grow memory without bound).
pub const DEFAULT_CAPACITY: usize = 1 << 20;
/// We ask for an unknown neighbour at most this often (RFC 1122 §2.3.2.1:
/// at most one request per second per destination).
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// An address a neighbour can be at: a unicast address of one family.
/// ARP resolves [`Ipv4Addr`]s; NDP will resolve [`Ipv6Addr`]s through the
/// same cache.
pub trait NeighbourAddr: Copy + Eq + Hash + std::fmt::Debug {
    /// False for addresses no single neighbour answers for (unspecified,
    /// broadcast, multicast): never learned.
    fn is_unicast(&self) -> bool;
}

impl NeighbourAddr for Ipv4Addr {
    fn is_unicast(&self) -> bool {
        !(self.is_unspecified() || self.is_broadcast() || self.is_multicast())
    }
}

impl NeighbourAddr for Ipv6Addr {
    fn is_unicast(&self) -> bool {
        !(self.is_unspecified() || self.is_multicast())
    }
}

/// Address → MAC, learned passively (IPv4 by default).
#[derive(Debug)]
pub struct NeighbourCache<A: NeighbourAddr = Ipv4Addr> {
    map: HashMap<A, MacAddr>,
    requested: HashMap<A, Instant>,
    capacity: usize,
}

impl<A: NeighbourAddr> Default for NeighbourCache<A> {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl<A: NeighbourAddr> NeighbourCache<A> {
    /// A cache holding at most `capacity` neighbours.
    pub fn with_capacity(capacity: usize) -> Self {
        NeighbourCache {
            map: HashMap::new(),
            requested: HashMap::new(),
            capacity,
        }
    }

    /// Records that `ip` is at `mac` (RFC 826's merge: an existing entry is
    /// updated, a new one added while there is room). Broadcast, multicast
    /// and unspecified sources are ignored.
    pub fn learn(&mut self, ip: A, mac: MacAddr) {
        if !ip.is_unicast() || mac.is_multicast() {
            return;
        }
        let room = self.map.len() < self.capacity;
        match self.map.get_mut(&ip) {
            Some(m) => *m = mac,
            None if room => {
                self.map.insert(ip, mac);
                self.requested.remove(&ip);
            }
            None => {}
        }
    }

    /// The MAC of `ip`, if known.
    pub fn lookup(&self, ip: A) -> Option<MacAddr> {
        self.map.get(&ip).copied()
    }

    /// Number of known neighbours.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no neighbour is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// True if a request (ARP, NDP solicitation) for `ip` may go out now (and notes that it did).
    pub fn should_request(&mut self, ip: A, now: Instant) -> bool {
        if self.requested.len() > 4096 {
            self.requested
                .retain(|_, t| now.saturating_duration_since(*t) < REQUEST_INTERVAL);
        }
        match self.requested.get(&ip) {
            Some(t) if now.saturating_duration_since(*t) < REQUEST_INTERVAL => false,
            _ => {
                self.requested.insert(ip, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::BROADCAST;

    const ME: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x11]);
    const PEER: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x64]);

    #[test]
    fn learned_neighbour_is_found_and_updated() {
        let mut c = NeighbourCache::default();
        let ip = Ipv4Addr::new(198, 18, 0, 100);
        assert_eq!(c.lookup(ip), None);
        c.learn(ip, PEER);
        assert_eq!(c.lookup(ip), Some(PEER));
        c.learn(ip, ME);
        assert_eq!(c.lookup(ip), Some(ME));
        c.learn(Ipv4Addr::UNSPECIFIED, PEER);
        c.learn(Ipv4Addr::new(198, 18, 0, 101), BROADCAST);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn full_cache_keeps_updating_but_learns_nothing_new() {
        let mut c = NeighbourCache::with_capacity(1);
        c.learn(Ipv4Addr::new(198, 18, 0, 1), PEER);
        c.learn(Ipv4Addr::new(198, 18, 0, 2), PEER);
        assert_eq!(c.lookup(Ipv4Addr::new(198, 18, 0, 2)), None);
        c.learn(Ipv4Addr::new(198, 18, 0, 1), ME);
        assert_eq!(c.lookup(Ipv4Addr::new(198, 18, 0, 1)), Some(ME));
    }

    #[test]
    fn requests_for_one_address_are_rate_limited_to_one_per_second() {
        let mut c = NeighbourCache::default();
        let t0 = Instant::now();
        let ip = Ipv4Addr::new(198, 18, 0, 100);
        assert!(c.should_request(ip, t0));
        assert!(!c.should_request(ip, t0 + Duration::from_millis(500)));
        assert!(c.should_request(ip, t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn ipv6_neighbours_share_the_cache_logic() {
        let mut c: NeighbourCache<Ipv6Addr> = NeighbourCache::default();
        let ip: Ipv6Addr = "2001:db8::64".parse().unwrap();
        c.learn(ip, PEER);
        c.learn("ff02::1".parse().unwrap(), PEER);
        assert_eq!(c.lookup(ip), Some(PEER));
        assert_eq!(c.len(), 1, "a multicast address is never learned");
    }
}
