//! The neighbour table: which MAC each address we send to is at, how we
//! ask for one we do not know, and the frames that wait for the answer.
//!
//! - [`cache`]: address → MAC, generic over the address family
//!   ([`NeighbourAddr`]), aged and LRU-bounded, with the
//!   one-request-per-second rule.
//! - [`pending`]: frames built for a neighbour being resolved (RFC 1122
//!   §2.3.2.2), sent the moment its MAC is learned.
//! - [`arp`]: the IPv4 protocol that fills the cache and answers for our
//!   addresses (RFC 826, RFC 5227 announcements).
//!
//! - [`ndp`]: IPv6 neighbour discovery (RFC 4861), the same job for
//!   IPv6 with a `NeighbourCache<Ipv6Addr>` and a `PendingFrames<Ipv6Addr>`
//!   in the worker: solicitations answered (DAD probes too), unsolicited
//!   advertisements with Override on the ARP announcements' schedule.
//!
//! This module builds frames and keeps tables; it does not know
//! ports, TCP or the worker that drives it.

pub mod arp;
pub mod cache;
pub mod ndp;
pub mod pending;

pub use cache::{
    Learned, NeighbourAddr, NeighbourCache, DEFAULT_CAPACITY, DEFAULT_MAX_AGE, REQUEST_INTERVAL,
};
pub use pending::{PendingFrame, PendingFrames, PENDING_MAX_AGE};
