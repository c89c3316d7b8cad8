//! A worker's UDP flows: per-flow state keyed by the 5-tuple (the
//! protocol is implied by the table; the addresses and ports are a
//! [`FourTuple`], local side ours), for the datagrams a client sends to
//! the server ports of a UDP service (RTCP receiver reports of an RTSP
//! stream, issue 18).
//!
//! UDP has no handshake, so a flow exists from its first datagram to a
//! port the worker serves and lives until it has been idle for
//! `idle_timeout`. The table is bounded: when it is full, idle flows are
//! swept first, and a datagram that would need a new flow beyond the bound
//! is refused (counted by the caller), never an old flow evicted. Knows
//! nothing of frames, the app or what a datagram carries.

use crate::tcp::FourTuple;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a worker knows of one UDP flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpFlow {
    /// Datagrams received.
    pub rx_datagrams: u64,
    /// Payload bytes received.
    pub rx_bytes: u64,
    /// When the last datagram arrived.
    pub last_rx: Instant,
}

/// Why a datagram found no flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpRefused {
    /// The table holds its maximum of flows, none idle.
    Full,
}

/// What [`UdpFlowTable::on_datagram`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpAccepted {
    /// The datagram opened the flow.
    pub new: bool,
    /// Idle flows swept to make room.
    pub expired: usize,
}

/// The UDP flows of one worker.
#[derive(Debug)]
pub struct UdpFlowTable {
    flows: HashMap<FourTuple, UdpFlow>,
    max: usize,
    idle_timeout: Duration,
}

impl UdpFlowTable {
    /// An empty table of at most `max` flows.
    pub fn new(max: usize, idle_timeout: Duration) -> Self {
        UdpFlowTable {
            flows: HashMap::new(),
            max,
            idle_timeout,
        }
    }

    /// Flows held.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow is held.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The flow of `tuple`, if held.
    pub fn get(&self, tuple: &FourTuple) -> Option<&UdpFlow> {
        self.flows.get(tuple)
    }

    /// Accounts a datagram of `len` payload bytes on `tuple`'s flow,
    /// opening it if needed.
    pub fn on_datagram(
        &mut self,
        tuple: FourTuple,
        len: usize,
        now: Instant,
    ) -> Result<UdpAccepted, UdpRefused> {
        let mut expired = 0;
        if !self.flows.contains_key(&tuple) && self.flows.len() >= self.max {
            expired = self.expire(now);
            if self.flows.len() >= self.max {
                return Err(UdpRefused::Full);
            }
        }
        let mut new = false;
        let f = self.flows.entry(tuple).or_insert_with(|| {
            new = true;
            UdpFlow {
                rx_datagrams: 0,
                rx_bytes: 0,
                last_rx: now,
            }
        });
        f.rx_datagrams += 1;
        f.rx_bytes += len as u64;
        f.last_rx = now;
        Ok(UdpAccepted { new, expired })
    }

    /// Drops the flows idle for `idle_timeout` or longer; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.flows.len();
        let timeout = self.idle_timeout;
        self.flows
            .retain(|_, f| now.saturating_duration_since(f.last_rx) < timeout);
        before - self.flows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    fn tuple(client_port: u16) -> FourTuple {
        FourTuple {
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 11)), 6971),
            remote: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)), client_port),
        }
    }

    #[test]
    fn the_first_datagram_opens_a_flow_and_later_ones_count_on_it() {
        let now = Instant::now();
        let mut t = UdpFlowTable::new(10, Duration::from_secs(60));
        assert_eq!(
            t.on_datagram(tuple(5001), 32, now),
            Ok(UdpAccepted {
                new: true,
                expired: 0
            })
        );
        let later = now + Duration::from_secs(5);
        assert_eq!(
            t.on_datagram(tuple(5001), 40, later),
            Ok(UdpAccepted {
                new: false,
                expired: 0
            })
        );
        assert_eq!(
            t.get(&tuple(5001)),
            Some(&UdpFlow {
                rx_datagrams: 2,
                rx_bytes: 72,
                last_rx: later
            })
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_full_table_sweeps_idle_flows_and_refuses_rather_than_evicting_live_ones() {
        let now = Instant::now();
        let mut t = UdpFlowTable::new(2, Duration::from_secs(60));
        t.on_datagram(tuple(1), 1, now).unwrap();
        t.on_datagram(tuple(2), 1, now + Duration::from_secs(30))
            .unwrap();
        let at = now + Duration::from_secs(40);
        assert_eq!(t.on_datagram(tuple(3), 1, at), Err(UdpRefused::Full));
        assert!(t.get(&tuple(1)).is_some(), "a live flow is never evicted");
        // Once flow 1 has been idle for the timeout it makes room.
        let at = now + Duration::from_secs(60);
        assert_eq!(
            t.on_datagram(tuple(3), 1, at),
            Ok(UdpAccepted {
                new: true,
                expired: 1
            })
        );
        assert!(t.get(&tuple(1)).is_none());
        assert_eq!(t.len(), 2);
        assert_eq!(t.expire(now + Duration::from_secs(200)), 2);
        assert!(t.is_empty());
    }
}
