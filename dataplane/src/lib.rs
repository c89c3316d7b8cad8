//! Baton's dataplane: everything between the wire and the application.
//!
//! - [`port`]: ways to move bursts of frames (AF_PACKET TPACKET_V3, an
//!   in-memory pair for tests), and the fanout rule that maps a flow to its
//!   worker.
//! - [`wire`]: parsing and emitting Ethernet, ARP, IPv4, ICMP and TCP headers.
//! - [`arp`]: the neighbour cache and ARP/ICMP answers for owned addresses.
//! - [`tcp`]: the sans-IO TCP state machine (RFC 9293) with takeover hooks.
//! - [`timer`]: the hashed timer wheel each worker uses for its TCBs.
//! - [`stats`]: per-worker counters, one per drop reason.
//!
//! This crate knows nothing of HTTP. Start reading at [`wire`], then
//! [`port`].
#![deny(missing_docs)]

#[allow(missing_docs)]
pub mod arp;
pub mod flow;
pub mod port;
pub mod stats;
pub mod tcp;
pub mod timer;
pub mod wire;
