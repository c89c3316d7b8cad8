//! Baton's dataplane: everything between the wire and the application.
//!
//! Where a packet goes, folder by folder:
//!
//! ```text
//!  port/ ──► worker/ingress ──► neighbour (ARP)      ─┐
//!   ▲          │  (wire/ parses)  ICMP echo           │ replies
//!   │          ▼                                      │
//!   │        worker/demux ──► tcp/ (TCB, listener) ◄──┤ timers (timer)
//!   │          │  flow: 4-tuple → connection          │
//!   │          ▼                                      │
//!   │        worker/deliver ──► app (your App)        │
//!   │          │                                      │
//!   └──── worker/egress ◄─────────────────────────────┘
//!          (wire/ builds frames, GSO; neighbour/ holds frames
//!           for a MAC being resolved)
//! ```
//!
//! - [`port`]: ways to move bursts of frames (AF_PACKET rings, DPDK with
//!   the `dpdk` feature, an in-memory pair for tests), the fanout rule that
//!   maps a flow to its worker, and [`port::PortConfig`], which names a
//!   backend and opens it. Nothing above `port/` knows the backend.
//! - [`wire`]: parsing and emitting Ethernet, ARP, IPv4, ICMP and TCP
//!   headers.
//! - [`tcp`]: the sans-IO TCP state machine (RFC 9293) with takeover hooks:
//!   segments and `now` in, segments, timers and events out.
//! - [`neighbour`]: which MAC an address is at (ARP today, NDP beside it
//!   next), and frames waiting for the answer.
//! - [`worker`]: the poll-mode loop of one pinned thread, by direction:
//!   ingress, TCP demux, delivery to the app, egress.
//! - [`flow`], [`timer`]: a worker's connection table and timer wheel;
//!   [`stats`] counts every drop.
//! - [`app`]: the application interface ([`App`], [`Ctx`]).
//! - [`runtime`]: starting workers on threads over a [`port::PortConfig`],
//!   and the control core's [`DataplaneHandle`].
//! - [`responder`]: a tiny HTTP responder app for tests and the lab.
//!
//! This crate knows nothing of the configuration file or of the HTTP
//! cache. Start reading at [`worker`], then [`tcp`].
#![deny(missing_docs)]

pub mod app;
pub mod flow;
pub mod neighbour;
pub mod port;
pub mod responder;
pub mod runtime;
pub mod stats;
pub mod tcp;
pub mod timer;
pub mod wire;
pub mod worker;

pub use app::{App, CloseReason, ConnError, Ctx, UnknownAction};
pub use flow::ConnId;
pub use port::PortConfig;
pub use runtime::{start, start_with_ports, DataplaneError, DataplaneHandle, DataplaneOptions};
pub use worker::PollMode;
