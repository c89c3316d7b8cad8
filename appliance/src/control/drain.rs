//! The drain: every connection leaves this box on purpose, for
//! maintenance, and the clients do not notice (issue 19, "invisible planned
//! moves"). The order is what makes it invisible:
//!
//! 1. stop accepting (new SYNs are dropped; the client's retry reaches the
//!    address's next owner);
//! 2. hand every movable connection to a live member, split as a failure
//!    takeover would split it (slot `s` to survivor `s mod n`, a bundle that
//!    follows the address to the heir), each adopter restoring through
//!    `/adopt` while this box forwards its clients' frames to it: served
//!    throughout, with exact state and no detection to wait for;
//! 3. wait (bounded) until each adopter has checkpointed what it adopted,
//!    so that the heir, once it holds the address, finds every connection's
//!    holder in the segment;
//! 4. let go of what could not move (a half-finished FTP session, RTSP):
//!    final checkpoints, TCBs dropped silently, their frames held;
//! 5. mark the box draining: the view removes it at the peers' next tick,
//!    the heir takes the address and the leftovers, as after a failure;
//! 6. go on forwarding until the view no longer holds this box and the
//!    heir's announcements have reached the clients, then stop the workers.
//!
//! With no live member to hand to, the drain freezes and stops at once, as
//! before (the connections wait in the region for a box to take them).
//! It decides the order, not how a connection moves (`super::moves`) nor
//! how the view removes a box (`super::agreed`).
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use baton_dataplane::tcp::FourTuple;
use baton_dataplane::DataplaneHandle;
use baton_shmem::{BoxState, Segment};
use tracing::{info, warn};

use super::bundle::survivor_for;
use super::handle::Control;
use super::moves::{retain_until, MoveError, MoveTarget, Picked};
use super::view::ViewStatus;

/// How long the drain waits for the adopters' first checkpoints.
const RECORDED_LIMIT: Duration = Duration::from_secs(1);
/// How long the drained box waits for the view to remove it before it
/// stops forwarding anyway.
const REMOVAL_LIMIT: Duration = Duration::from_secs(5);
/// How long the drained box forwards after its removal: the heir announces
/// the address at once and again 20, 120 and 420 ms later; a client's
/// neighbour cache has moved by then.
const FORWARD_GRACE: Duration = Duration::from_millis(600);

impl Control {
    /// A planned move of every connection of this box (drain for
    /// maintenance), in the order the module describes.
    pub(crate) fn drain(&self) -> Result<String, MoveError> {
        let before = self.region.box_info().map(|i| i.connections).unwrap_or(0);
        self.dataplane.drain(true)?;
        let targets = self.drain_targets();
        if targets.is_empty() {
            return self.drain_in_place(before);
        }
        let started = Instant::now();
        let mut picked: BTreeMap<u16, Picked> = BTreeMap::new();
        let heir = targets.first().map(|t| t.id);
        for slot in self.region.records().flatten() {
            let by_slot = targets[slot.slot().0 as usize % targets.len()].id;
            let to = survivor_for(slot.bundle(), by_slot, heir);
            picked
                .entry(to)
                .or_default()
                .add(slot.slot(), slot.bundle());
        }
        let mut adopted: Vec<(u16, FourTuple)> = Vec::new();
        let mut shares = Vec::new();
        for target in &targets {
            let Some(mine) = picked.remove(&target.id) else {
                continue;
            };
            let firsts: Vec<FourTuple> = mine.firsts().collect();
            let moved = match self.hand_over(target, mine) {
                Ok(moved) => moved,
                // What it did not take was taken back: released below,
                // for the takeover.
                Err(e) => {
                    warn!(to = target.id, adopted = e.adopted.len(), err = %e.err, "drain: a hand-over failed");
                    e.adopted
                }
            };
            shares.push(format!("{} to box {}", moved.len(), target.id));
            let moved: HashSet<FourTuple> = moved.into_iter().collect();
            adopted.extend(
                firsts
                    .into_iter()
                    .filter(|t| moved.contains(t))
                    .map(|t| (target.id, t)),
            );
        }
        let handed = started.elapsed();
        let missing = wait_recorded(&self.segment, adopted, RECORDED_LIMIT);
        let released = self.dataplane.release()?;
        self.region.set_state(BoxState::Draining);
        info!(
            connections = before,
            handed_over_ms = handed.as_millis() as u64,
            recorded_ms = started.elapsed().as_millis() as u64 - handed.as_millis() as u64,
            not_recorded = missing,
            released,
            "draining: connections handed over ({}); the view removes this box next",
            shares.join(", ")
        );
        stop_once_removed(self.dataplane.clone(), self.view.clone(), self.me);
        Ok(format!(
            "box {} draining: {} handed over, {released} left to the takeover",
            self.me,
            if shares.is_empty() {
                "none".to_string()
            } else {
                shares.join(", ")
            }
        ))
    }

    /// The members a drain hands to: the agreed view's, alive, this box
    /// left out, by id (the first inherits the addresses, as
    /// `baton_membership::address_heir` picks after a removal).
    fn drain_targets(&self) -> Vec<MoveTarget> {
        let mut ids: Vec<u16> = self.strays.members().into_keys().collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter(|&id| id != self.me)
            .filter_map(|id| self.move_target(id).ok())
            .collect()
    }

    /// The drain with nobody to hand to: every connection's exact final
    /// checkpoint, the workers stopped, the box marked draining; whoever
    /// comes takes the connections from the region.
    fn drain_in_place(&self, before: i64) -> Result<String, MoveError> {
        self.dataplane.freeze()?;
        // The workers write their final checkpoints before they stop; the
        // stats command is answered only by a running worker, so wait for
        // every worker to be gone before telling anybody.
        wait_stopped(&self.dataplane);
        self.region.set_state(BoxState::Draining);
        warn!(
            connections = before,
            "draining with no live member to hand to: connections frozen in the region"
        );
        Ok(format!(
            "box {} draining: no live member; {before} connections frozen for a takeover",
            self.me
        ))
    }
}

/// Waits until every adopter's region holds a record of each connection
/// it adopted, or `limit` passed; returns how many were still missing.
/// Polls the tuple index: a few cache lines per connection.
fn wait_recorded(segment: &Segment, adopted: Vec<(u16, FourTuple)>, limit: Duration) -> usize {
    retain_until(adopted, limit, |(to, t)| {
        segment
            .region(*to)
            .map_or(true, |r| r.locate(t.local, t.remote).is_none())
    })
}

/// Forwards on until the agreed view no longer holds box `me` (bounded)
/// and the grace has passed, then stops the workers, on a thread of its
/// own: the drain's answer does not wait for it.
fn stop_once_removed(dataplane: Arc<DataplaneHandle>, view: Arc<ViewStatus>, me: u16) {
    let spawned = thread::Builder::new()
        .name("drain-stop".into())
        .spawn(move || {
            let held = || {
                view.get()
                    .view
                    .is_some_and(|v| v.members.iter().any(|m| m.id == me))
            };
            let deadline = Instant::now() + REMOVAL_LIMIT;
            while held() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            if held() {
                warn!(
                    "drain: the view still holds this box after {} s: stopping the workers anyway",
                    REMOVAL_LIMIT.as_secs()
                );
            } else {
                thread::sleep(FORWARD_GRACE);
            }
            if let Err(err) = dataplane.freeze() {
                warn!(%err, "drain: the workers could not be stopped");
            }
            wait_stopped(&dataplane);
            info!("drained: removed from the view, forwarding ended, workers stopped");
        });
    if let Err(err) = spawned {
        warn!(%err, "drain: no thread to stop the workers later; they go on forwarding");
    }
}

/// Waits (up to 5 s) for every worker thread to end.
fn wait_stopped(dataplane: &DataplaneHandle) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dataplane.stopped() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(2));
    }
}
