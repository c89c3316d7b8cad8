//! What the box does about the agreed view's events: a committed change
//! takes over the boxes that died in it (survivors, heir and split from
//! the change, `baton_membership::rules`) and hands addresses back to a box
//! that rejoined; a fence stops the box. Every change is logged here, once,
//! with why.
//!
//! It decides nothing: the change decides, the machine (`super::view`)
//! produced it, the handle (`super::handle`) acts.
use std::time::{Duration, Instant};

use baton_membership::{address_heir, split_of, survivors, Event, Fence, Split, ViewChange};
use baton_shmem::view::Member;
use baton_shmem::BoxState;
use tracing::info;

use super::fence;
use super::handle::Control;
use super::inherited;
use super::placement::{log_split, per_owner, route_by_claims_meanwhile};
use super::takeover::{self, TakeoverSnapshot};

impl Control {
    /// Acts on one event of the agreed view; `took`: this box's time from
    /// its verdict to the commit, when it judged the departed member.
    pub(super) fn act_on_view(&self, event: Event, took: Option<Duration>) {
        match event {
            Event::Committed(change) => self.act_on_change(&change, took),
            Event::Admitted { view } => info!(
                view = view.0,
                "admitted to the view: this box judges its peers and is judged from now on"
            ),
            Event::Fence(fence) => self.fence_by_view(fence),
        }
    }

    fn act_on_change(&self, change: &ViewChange, took: Option<Duration>) {
        let took_us = took.map(|d| d.as_micros() as u64);
        info!(
            view = change.number.0,
            verdict_to_commit_us = took_us,
            "{change}"
        );
        self.view.update(|s| {
            s.changes += 1;
            if took_us.is_some() {
                s.last_commit_us = took_us;
            }
        });
        let survivors = survivors(change);
        for left in &change.left {
            if left.id == self.me || !change.died(left.id) {
                continue;
            }
            // A second of CPU at 300,000 connections: not at the watcher's
            // real-time priority (`crate::sys::as_ordinary_thread`).
            crate::sys::as_ordinary_thread(|| self.take_over_from(change, left, &survivors));
        }
        for joined in &change.joined {
            if joined.id != self.me && self.holds_addresses_of(joined.id) {
                self.forget_inherited_epoch(joined.id);
                self.hand_back(joined.id);
            }
        }
    }

    /// Takes over the connections of `left`, a member that died in
    /// `change`: plans this box's share by the change's split, adds what
    /// the dead box had itself inherited, routes, claims and restores.
    fn take_over_from(&self, change: &ViewChange, left: &Member, survivors: &[u16]) {
        let started = Instant::now();
        let before = TakeoverSnapshot::of(&self.dataplane);
        // The split is the committed change's: by the loads committed
        // with it, or round-robin when it carries none, whatever this
        // box is configured with (TAKEOVER.md, "Load-aware assignment").
        let split = split_of(change);
        let owner = |slot: usize| split.owner(slot);
        let heir = address_heir(change, left.id);
        let inherit = heir == Some(self.me);
        let mut plan = takeover::plan_with(&self.segment, left.id, self.me, &owner, heir);
        inherited::add_inherited(
            &self.segment,
            left.id,
            self.me,
            &owner,
            heir,
            survivors,
            change.number,
            &mut plan,
        );
        log_split(change, left.id, &split, &per_owner(&plan, self.me));
        if matches!(split, Split::Unreadable { .. }) {
            route_by_claims_meanwhile(
                self.segment.clone(),
                self.orphans.clone(),
                left.id,
                self.me,
                change.number.0,
            );
        }
        if inherit {
            self.inherited_epochs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(left.id, left.epoch);
            // The inherited addresses bring the frames of connections
            // earlier takeovers left with other survivors: forward them.
            let others = super::routes::routes_to_holders_among(
                &self.segment,
                self.me,
                &plan.service_ips,
                &|h| survivors.contains(&h),
            );
            self.orphans.extend(others);
        }
        self.take_over(
            left.id,
            plan,
            survivors,
            Some(change.number),
            started,
            before,
        );
    }

    /// Hands the addresses this box inherited from a box back as soon as
    /// a new incarnation of it beats (an epoch newer than the one they
    /// were taken from, and `beating` says its heartbeat counter moved
    /// within the detection time, by the watcher's monotonic clock), as
    /// without a view: before its dataplane is up, so the frames it
    /// forwards to us once it answers for its addresses reach a box that
    /// no longer owns them and learns no client's MAC from them (a
    /// forwarded frame carries the forwarder's MAC; learning it stalled a
    /// taken-over download in the lab). Its join, committed later, finds
    /// nothing left to hand back.
    pub(super) fn hand_back_to_new_incarnations(
        &self,
        beating: &mut dyn FnMut(u16, &baton_shmem::BoxInfo) -> bool,
    ) {
        let taken: Vec<(u16, u32)> = self
            .inherited_epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(&id, &epoch)| (id, epoch))
            .collect();
        for (id, epoch) in taken {
            let Ok(info) = self.segment.box_info(id) else {
                continue;
            };
            if info.epoch > epoch && info.state != BoxState::Unused && beating(id, &info) {
                self.forget_inherited_epoch(id);
                self.hand_back(id);
            }
        }
    }

    /// Whether this box drains (its workers are stopped on purpose, its
    /// peers take its connections over by plan).
    pub(super) fn is_draining(&self) -> bool {
        self.region
            .box_info()
            .is_ok_and(|i| i.state == BoxState::Draining)
    }

    fn forget_inherited_epoch(&self, id: u16) {
        self.inherited_epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// A committed view no longer holds this incarnation: its survivors
    /// serve its connections. A box that drained asked for that: its
    /// workers forward a little longer, then stop (`super::drain`), and
    /// the box stays up.
    fn fence_by_view(&self, why: Fence) {
        if self.is_draining() {
            info!("{why}: this box drained; its workers stop once the heir holds the address");
            return;
        }
        fence::stop_serving(&why.to_string(), &self.dataplane);
    }
}
