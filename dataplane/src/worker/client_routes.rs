//! Routes by client address (migrate of an FTP session, issue 17): new
//! connections from a client to one of our addresses, on a port of a
//! range, belong to another box (the session's adopter), so their frames
//! are forwarded there instead of meeting our listener. The orphan routes
//! name known 4-tuples; an FTP session's next data connection is a new
//! one (client → our address, a passive port), hence this table.
//!
//! Bounded (the oldest entry goes first) and expiring: a route outlives
//! its session by at most its time to live. It knows addresses, ports and
//! MACs, nothing of FTP nor of the connections it routes.
use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use crate::wire::ethernet::MacAddr;

/// Routes kept at most per worker; a migrate of more sessions evicts the
/// oldest (their later data connections then meet our listener).
pub const MAX_CLIENT_ROUTES: usize = 4096;

#[derive(Clone, Debug)]
struct Route {
    ports: RangeInclusive<u16>,
    to: MacAddr,
    until: Instant,
}

/// The routes, keyed by (our address, the client's address).
#[derive(Debug, Default)]
pub struct ClientRoutes {
    routes: HashMap<(IpAddr, IpAddr), Route>,
}

impl ClientRoutes {
    /// Frames from `client` to `local`, on a port in `ports`, go to `to`
    /// until `now + ttl` (replacing an earlier route for the pair).
    pub fn insert(
        &mut self,
        local: IpAddr,
        client: IpAddr,
        ports: RangeInclusive<u16>,
        to: MacAddr,
        ttl: Duration,
        now: Instant,
    ) {
        self.routes.retain(|_, r| r.until > now);
        if self.routes.len() >= MAX_CLIENT_ROUTES && !self.routes.contains_key(&(local, client)) {
            if let Some(oldest) = self
                .routes
                .iter()
                .min_by_key(|(_, r)| r.until)
                .map(|(k, _)| *k)
            {
                self.routes.remove(&oldest);
            }
        }
        let until = now + ttl;
        self.routes
            .insert((local, client), Route { ports, to, until });
    }

    /// Where a frame from `client` to `local`:`port` goes, if a live route
    /// names it; an expired route is dropped.
    pub fn route(
        &mut self,
        local: IpAddr,
        client: IpAddr,
        port: u16,
        now: Instant,
    ) -> Option<MacAddr> {
        let key = (local, client);
        let r = self.routes.get(&key)?;
        if r.until <= now {
            self.routes.remove(&key);
            return None;
        }
        r.ports.contains(&port).then_some(r.to)
    }

    /// Routes held (expired ones not yet dropped included).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when no route is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: [u8; 4] = [198, 18, 0, 11];
    const TO: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 18, 0, last])
    }

    #[test]
    fn a_route_names_its_client_its_address_and_its_ports_until_it_expires() {
        let t0 = Instant::now();
        let mut r = ClientRoutes::default();
        r.insert(
            LOCAL.into(),
            ip(100),
            40_000..=40_099,
            TO,
            Duration::from_secs(300),
            t0,
        );
        assert_eq!(r.route(LOCAL.into(), ip(100), 40_050, t0), Some(TO));
        assert_eq!(
            r.route(LOCAL.into(), ip(100), 21, t0),
            None,
            "not a passive port"
        );
        assert_eq!(
            r.route(LOCAL.into(), ip(101), 40_050, t0),
            None,
            "another client"
        );
        assert_eq!(
            r.route(ip(12), ip(100), 40_050, t0),
            None,
            "another address"
        );
        let later = t0 + Duration::from_secs(299);
        assert_eq!(r.route(LOCAL.into(), ip(100), 40_000, later), Some(TO));
        let expired = t0 + Duration::from_secs(300);
        assert_eq!(r.route(LOCAL.into(), ip(100), 40_000, expired), None);
        assert!(r.is_empty(), "an expired route is dropped when met");
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_oldest() {
        let t0 = Instant::now();
        let mut r = ClientRoutes::default();
        let client = |i: usize| IpAddr::from([198, 19, (i >> 8) as u8, i as u8]);
        for i in 0..MAX_CLIENT_ROUTES + 10 {
            let ttl = Duration::from_secs(300 + i as u64);
            r.insert(LOCAL.into(), client(i), 40_000..=40_099, TO, ttl, t0);
        }
        assert_eq!(r.len(), MAX_CLIENT_ROUTES);
        assert_eq!(
            r.route(LOCAL.into(), client(0), 40_000, t0),
            None,
            "evicted"
        );
        let last = client(MAX_CLIENT_ROUTES + 9);
        assert_eq!(r.route(LOCAL.into(), last, 40_000, t0), Some(TO));
    }
}
