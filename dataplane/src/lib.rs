//! Baton's dataplane: everything between the wire and the application.
//!
//! Where a packet goes, folder by folder:
//!
//! ```text
//!   port/  ── a burst of frames ──►  worker/ingress   (wire/ parses)
//!                                      ├─ ARP ───────► neighbour/  (learn, answer)
//!                                      ├─ ICMP echo ─► answered at once
//!                                      └─ TCP ───────► worker/demux
//!                                                        ├─ flow: 4-tuple → its tcp/ TCB
//!                                                        └─ unknown: listener, forward, lazy restore
//!   timer: due TCBs ──► tcp/ on_timeout
//!   worker/deliver: each touched TCB's events ──► app (your App, via Ctx)
//!   worker/egress:  TCB segments ──► frames (wire/, GSO) ──► port/
//!                   (a frame for an unknown MAC waits in neighbour/)
//! ```
//!
//! [`runtime`] opens the port a [`port::PortConfig`] names and starts one
//! [`worker`] per port on its own thread.
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
//!   [`udpflow`]: its UDP flows by 5-tuple;
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
pub mod connmap;
pub mod flow;
pub mod neighbour;
pub mod port;
pub mod responder;
pub mod runtime;
pub mod stats;
pub mod tcp;
pub mod timer;
pub mod udpflow;
pub mod wire;
pub mod worker;

pub use app::{App, CloseReason, ConnError, Ctx, UnknownAction};
pub use flow::ConnId;
pub use port::PortConfig;
pub use runtime::{start, start_with_ports, DataplaneError, DataplaneHandle, DataplaneOptions};
pub use worker::PollMode;
