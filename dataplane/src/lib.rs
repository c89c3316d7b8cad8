//! Baton's dataplane: everything between the wire and the application.
//!
//! A frame's way in: [`port`] (AF_PACKET ring, fanout to the right worker)
//! → [`worker`] (the poll loop) → [`wire`] (parse Ethernet, IPv4, TCP) →
//! [`arp`] answers ARP and ICMP, or [`flow`] finds the connection's
//! [`tcp`] state machine (or its listener) → [`app`] callbacks. The way
//! out runs backwards: the app sends through [`app::Ctx`], the TCB's
//! segments become frames in [`wire`], the port sends them in bursts.
//! [`timer`] keeps every TCB's deadline; [`stats`] counts every drop.
//!
//! - [`port`]: ways to move bursts of frames (AF_PACKET TPACKET_V3, an
//!   in-memory pair for tests), and the fanout rule that maps a flow to its
//!   worker.
//! - [`wire`]: parsing and emitting Ethernet, ARP, IPv4, ICMP and TCP headers.
//! - [`arp`]: the neighbour cache and ARP/ICMP answers for owned addresses.
//! - [`tcp`]: the sans-IO TCP state machine (RFC 9293) with takeover hooks.
//! - [`flow`], [`timer`]: a worker's connection table and timer wheel.
//! - [`worker`]: the poll-mode loop of one pinned thread.
//! - [`app`]: the application interface, options, and [`app::start`].
//! - [`responder`]: a tiny HTTP responder app for tests and the lab.
//!
//! This crate knows nothing of the configuration file or of the HTTP
//! cache. Start reading at [`worker`].
#![deny(missing_docs)]

pub mod app;
pub mod arp;
pub mod flow;
pub mod port;
pub mod responder;
pub mod stats;
pub mod tcp;
pub mod timer;
pub mod wire;
pub mod worker;

pub use app::{
    start, App, CloseReason, ConnError, Ctx, DataplaneError, DataplaneHandle, DataplaneOptions,
    PollMode, UnknownAction,
};
pub use flow::ConnId;
