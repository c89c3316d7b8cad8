//! Baton's dataplane: everything between the wire and the application.
//!
//! - [`port`]: ways to move bursts of frames (AF_PACKET TPACKET_V3, DPDK).
//! - [`wire`]: parsing and emitting Ethernet, ARP, IPv4, ICMP and TCP headers.
//! - [`tcp`]: the sans-IO TCP state machine (RFC 9293) with takeover hooks.
//! - `worker`: the poll-mode loop that ties a port, the flow table, timers
//!   and the application together on one pinned core.
//!
//! This crate knows nothing of HTTP. Start reading at [`tcp`].
pub mod tcp;
