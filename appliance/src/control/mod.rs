//! The control core: the box's judgement of its peers and what it does
//! about them, off the packet path.
//!
//! - `detector`: the failure detector, pure (box table entries and time
//!   in, verdicts or "died" / "rejoined" out);
//! - `view`: the agreed view (issue #21): this box's membership machine,
//!   the store the view lives in, what the box shows of it;
//! - `agreed`: what a committed view change or a fence makes the box do;
//! - `load`: the load this box publishes with its heartbeat;
//! - `placement`: the loads this box commits with a removal it proposes
//!   (least_loaded), and the log line of each split;
//! - `fence`: stopping a box its peers took over;
//! - `quorum`: the quorum lease of replicated mode's Raft, which fences a
//!   box cut off from the majority;
//! - `takeover`: the split of a dead box's connections (seed Fig. 6), the
//!   paced restores (`pace`) and the report of how they went;
//! - `inherited`: what the dead box had claimed in earlier takeovers and
//!   not restored yet, taken over with its region;
//! - `routes`: where connections went, for a restarted box's previous
//!   incarnation and for an heir's inherited address;
//! - `moves`: migrate and adopt, the planned moves of some connections;
//! - `drain`: the planned move of all of them, in the order that hides it;
//! - `watcher`: the thread that ties them to the clock and the segment;
//! - `Control`: the handle they act with.
//!
//! It must not know how packets are carried (the dataplane does) or what
//! the connections carry (the HTTP sessions restore their own state).
//! Start reading at `watcher::spawn_watcher`, then `agreed`, then
//! `takeover::plan_with`.
mod agreed;
pub(crate) mod balance;
mod bundle;
mod detector;
mod drain;
mod fence;
mod handle;
mod inherited;
mod load;
mod moves;
mod ownership;
mod pace;
pub(crate) mod placement;
pub(crate) mod quorum;
pub(crate) mod routes;
pub(crate) mod takeover;
pub(crate) mod view;
mod watcher;

pub(crate) use handle::{announce_repeatedly, Control};
pub(crate) use watcher::spawn_watcher;
