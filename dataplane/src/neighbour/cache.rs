//! The neighbour cache: which MAC an address is at, and when we may ask
//! again for one we do not know. Knows no protocol and no trust rule: the
//! worker decides what is worth learning (ARP to us, validated segments);
//! ARP (and NDP next) feed it.
//!
//! Bounded on a hostile LAN: an entry not confirmed for [`DEFAULT_MAX_AGE`]
//! is forgotten, and when the cache is full the least recently confirmed
//! entry makes room, so a flood of sources can cost old entries but never
//! keep a new neighbour out. Time is an argument (sans-IO).

use crate::wire::ethernet::MacAddr;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Neighbours remembered at most per worker; beyond this the least
/// recently confirmed one is evicted. Most front LANs put one router
/// between us and every client, so this is generous.
pub const DEFAULT_CAPACITY: usize = 1 << 16;
/// An entry not confirmed (by ARP to us or a validated segment) for this
/// long is forgotten (Linux's gc_staletime is 60 s; a live connection
/// confirms its client with every accepted segment, and keeps the MAC it
/// was opened with besides).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(120);
/// We ask for an unknown neighbour at most this often (RFC 1122 §2.3.2.1:
/// at most one request per second per destination).
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// A confirmed entry moves to the young end of the eviction order at most
/// this often: a busy client's segments cost a hash update, not a tree
/// update each.
const RERANK_INTERVAL: Duration = Duration::from_secs(1);

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

/// What [`NeighbourCache::learn`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// A known neighbour, confirmed (its MAC possibly changed).
    Updated,
    /// A new neighbour.
    Added,
    /// Not learnable (not unicast, or a capacity of zero).
    Refused,
}

#[derive(Debug)]
struct Entry {
    mac: MacAddr,
    confirmed: Instant,
    ranked: Instant,
    rank: u64,
}

/// Address → MAC (IPv4 by default), aged and LRU-bounded.
#[derive(Debug)]
pub struct NeighbourCache<A: NeighbourAddr = Ipv4Addr> {
    map: HashMap<A, Entry>,
    /// Eviction order: rank → address, least recently confirmed first.
    order: BTreeMap<u64, A>,
    next_rank: u64,
    requested: HashMap<A, Instant>,
    capacity: usize,
    max_age: Duration,
    evicted: u64,
    expired: u64,
}

impl<A: NeighbourAddr> Default for NeighbourCache<A> {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, DEFAULT_MAX_AGE)
    }
}

impl<A: NeighbourAddr> NeighbourCache<A> {
    /// A cache holding at most `capacity` neighbours, each for `max_age`
    /// after it was last confirmed.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        NeighbourCache {
            map: HashMap::new(),
            order: BTreeMap::new(),
            next_rank: 0,
            requested: HashMap::new(),
            capacity,
            max_age,
            evicted: 0,
            expired: 0,
        }
    }

    /// A cache holding at most `capacity` neighbours ([`DEFAULT_MAX_AGE`]).
    pub fn with_capacity(capacity: usize) -> Self {
        Self::new(capacity, DEFAULT_MAX_AGE)
    }

    /// Records that `ip` is at `mac`, confirmed at `now`: a known entry is
    /// updated, a new one added, evicting the least recently confirmed
    /// entry when full. Only call it for a source the caller trusts (ARP
    /// to us, a segment a connection accepted): whatever is learned here
    /// is where our frames for `ip` go.
    pub fn learn(&mut self, ip: A, mac: MacAddr, now: Instant) -> Learned {
        if !ip.is_unicast() || mac.is_multicast() || self.capacity == 0 {
            return Learned::Refused;
        }
        self.purge(now);
        if let Some(e) = self.map.get_mut(&ip) {
            e.mac = mac;
            e.confirmed = now;
            if now.saturating_duration_since(e.ranked) >= RERANK_INTERVAL {
                self.order.remove(&e.rank);
                e.rank = self.next_rank;
                e.ranked = now;
                self.order.insert(e.rank, ip);
                self.next_rank += 1;
            }
            return Learned::Updated;
        }
        while self.map.len() >= self.capacity {
            let Some((_, old)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&old);
            self.evicted += 1;
        }
        let rank = self.next_rank;
        self.next_rank += 1;
        self.map.insert(
            ip,
            Entry {
                mac,
                confirmed: now,
                ranked: now,
                rank,
            },
        );
        self.order.insert(rank, ip);
        self.requested.remove(&ip);
        Learned::Added
    }

    /// RFC 826's merge without the insert: if `ip` is known, it is now at
    /// `mac`. For ARP the neighbour did not address to us. True if known.
    pub fn update(&mut self, ip: A, mac: MacAddr, now: Instant) -> bool {
        if !self.map.contains_key(&ip) {
            return false;
        }
        self.learn(ip, mac, now) == Learned::Updated
    }

    /// Forgets entries not confirmed within the maximum age, oldest first
    /// (amortized: each entry is forgotten once).
    fn purge(&mut self, now: Instant) {
        while let Some((&rank, &ip)) = self.order.first_key_value() {
            let stale = self
                .map
                .get(&ip)
                .is_none_or(|e| now.saturating_duration_since(e.confirmed) > self.max_age);
            if !stale {
                break;
            }
            self.order.remove(&rank);
            self.map.remove(&ip);
            self.expired += 1;
        }
    }

    /// The MAC of `ip`, if known and confirmed within the maximum age.
    pub fn lookup(&self, ip: A, now: Instant) -> Option<MacAddr> {
        self.map
            .get(&ip)
            .filter(|e| now.saturating_duration_since(e.confirmed) <= self.max_age)
            .map(|e| e.mac)
    }

    /// Number of neighbours held (some may have expired but not yet been
    /// forgotten).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no neighbour is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries evicted to make room, since the start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Entries forgotten for age, since the start.
    pub fn expired(&self) -> u64 {
        self.expired
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

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0xc612_0000 + n)
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn learned_neighbour_is_found_and_updated() {
        let t0 = Instant::now();
        let mut c = NeighbourCache::default();
        let ip = Ipv4Addr::new(198, 18, 0, 100);
        assert_eq!(c.lookup(ip, t0), None);
        assert_eq!(c.learn(ip, PEER, t0), Learned::Added);
        assert_eq!(c.lookup(ip, t0), Some(PEER));
        assert_eq!(c.learn(ip, ME, t0), Learned::Updated);
        assert_eq!(c.lookup(ip, t0), Some(ME));
        assert_eq!(c.learn(Ipv4Addr::UNSPECIFIED, PEER, t0), Learned::Refused);
        assert_eq!(
            c.learn(Ipv4Addr::new(198, 18, 0, 101), BROADCAST, t0),
            Learned::Refused
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn update_changes_a_known_entry_and_never_adds_one() {
        let t0 = Instant::now();
        let mut c = NeighbourCache::default();
        assert!(!c.update(ip(1), PEER, t0));
        assert_eq!(c.lookup(ip(1), t0), None);
        c.learn(ip(1), PEER, t0);
        assert!(c.update(ip(1), ME, t0));
        assert_eq!(c.lookup(ip(1), t0), Some(ME));
    }

    #[test]
    fn a_full_cache_evicts_the_least_recently_confirmed_entry() {
        let t0 = Instant::now();
        let mut c = NeighbourCache::with_capacity(3);
        c.learn(ip(1), PEER, at(t0, 0));
        c.learn(ip(2), PEER, at(t0, 1_000));
        c.learn(ip(3), PEER, at(t0, 2_000));
        // 1 is confirmed again: 2 is now the least recently confirmed.
        c.learn(ip(1), ME, at(t0, 3_000));
        assert_eq!(c.learn(ip(4), PEER, at(t0, 4_000)), Learned::Added);
        assert_eq!(c.lookup(ip(2), at(t0, 4_000)), None);
        for n in [1, 3, 4] {
            assert!(c.lookup(ip(n), at(t0, 4_000)).is_some(), "{n}");
        }
        assert_eq!((c.len(), c.evicted()), (3, 1));
    }

    #[test]
    fn a_flood_of_new_sources_never_keeps_a_new_neighbour_out() {
        let t0 = Instant::now();
        let mut c = NeighbourCache::with_capacity(100);
        for n in 0..10_000 {
            c.learn(ip(n), PEER, at(t0, u64::from(n)));
        }
        assert_eq!(c.len(), 100, "memory stays bounded");
        assert_eq!(c.evicted(), 9_900);
        let client = Ipv4Addr::new(198, 18, 0, 100);
        assert_eq!(c.learn(client, ME, at(t0, 10_000)), Learned::Added);
        assert_eq!(c.lookup(client, at(t0, 10_000)), Some(ME));
    }

    #[test]
    fn entries_age_out_unless_confirmed() {
        let t0 = Instant::now();
        let mut c = NeighbourCache::new(10, Duration::from_secs(60));
        c.learn(ip(1), PEER, at(t0, 0));
        c.learn(ip(2), PEER, at(t0, 0));
        c.learn(ip(2), PEER, at(t0, 50_000));
        assert_eq!(c.lookup(ip(1), at(t0, 60_000)), Some(PEER));
        assert_eq!(c.lookup(ip(1), at(t0, 60_001)), None, "stale");
        assert_eq!(c.lookup(ip(2), at(t0, 60_001)), Some(PEER), "confirmed");
        // Stale entries are forgotten (memory freed) on the next learn.
        c.learn(ip(3), PEER, at(t0, 60_001));
        assert_eq!((c.len(), c.expired(), c.evicted()), (2, 1, 0));
        c.learn(ip(3), PEER, at(t0, 200_000));
        assert_eq!((c.len(), c.expired()), (1, 3), "both stale, 3 learned anew");
    }

    #[test]
    fn requests_for_one_address_are_rate_limited_to_one_per_second() {
        let mut c = NeighbourCache::<Ipv4Addr>::default();
        let t0 = Instant::now();
        let ip = Ipv4Addr::new(198, 18, 0, 100);
        assert!(c.should_request(ip, t0));
        assert!(!c.should_request(ip, t0 + Duration::from_millis(500)));
        assert!(c.should_request(ip, t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn ipv6_neighbours_share_the_cache_logic() {
        let t0 = Instant::now();
        let mut c: NeighbourCache<Ipv6Addr> = NeighbourCache::default();
        let ip: Ipv6Addr = "2001:db8::64".parse().unwrap();
        c.learn(ip, PEER, t0);
        c.learn("ff02::1".parse().unwrap(), PEER, t0);
        assert_eq!(c.lookup(ip, t0), Some(PEER));
        assert_eq!(c.len(), 1, "a multicast address is never learned");
    }
}
