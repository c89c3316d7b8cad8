//! The poll-mode worker: one thread, one port, its own flow table, timers,
//! neighbour table and buffers; nothing shared on the data path. It runs on
//! any [`Port`](crate::port::Port) and never knows which backend that is.
//!
//! One iteration ([`Worker::poll`], `poll.rs`):
//! 1. Ingress (`ingress.rs`): each frame of the `rx_burst` is parsed and
//!    dispatched: ARP and ICMP are answered at once; a TCP segment goes to
//!    the demux (`demux.rs`), which hands it to its TCB or, for an unknown
//!    4-tuple, runs the named steps (TIME-WAIT reuse, listener, drain,
//!    connection limit, forwarding, lazy restore). Its TCB is marked
//!    touched.
//! 2. Expired timers: `on_timeout` of each due TCB, marked touched.
//! 3. `App::poll`.
//! 4. Delivery (`deliver.rs`): for each touched TCB, its events go to the
//!    app (accept, readable, writable, closed), then egress (`egress.rs`)
//!    turns `poll_transmit` into frames (GSO-merged when the port
//!    offloads), flushed every 64 frames; then its timer is re-armed from
//!    `poll_timeout()`, or the TCB is removed if done.
//! 5. `tx_burst` of what is left.
//!
//! In [`PollMode::Adaptive`] a worker that found no work for `spins`
//! iterations blocks on the port until a frame arrives or its next timer
//! or the app's [`App::next_deadline`](crate::app::App::next_deadline)
//! is due, or its [`Waker`] is called (commands from the control core
//! wake it too).
//!
//! The state the steps share is `Core` (`state.rs`); the small types around
//! the loop have files of their own: [`Waker`] (`waker.rs`), [`Command`]
//! and [`WorkerStats`] (`command.rs`), [`Siblings`] (`siblings.rs`: what
//! one worker learns from ARP and NDP, which only worker 0 receives, told
//! to the others), [`RestoreStats`]
//! (`restore_stats.rs`), [`WorkerConfig`] and [`PollMode`] (`config.rs`).
//! Starting workers on threads is the runtime's ([`crate::runtime`]).

mod client_routes;
mod command;
mod config;
mod deliver;
mod demux;
mod egress;
mod ingress;
mod ingress6;
mod parking;
mod poll;
mod restore_stats;
mod siblings;
mod state;
mod udp;
mod unready;
pub mod waker;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests6;

pub use client_routes::MAX_CLIENT_ROUTES;
pub use command::{Command, WorkerStats};
pub use config::{PollMode, WorkerConfig, DEFAULT_RESTORE_WINDOW, NO_UDP_PORTS};
pub use poll::Worker;
pub use restore_stats::{RestoreStats, READY_BUCKET};
pub use siblings::Siblings;
pub use waker::Waker;
