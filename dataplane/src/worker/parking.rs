//! Parking (issue 19): an app may drop a quiescent connection's TCB and
//! keep only its checkpoint ([`crate::app::Ctx::park`]); the connection is
//! rebuilt from that checkpoint when its client's next segment arrives
//! ([`crate::app::UnknownAction::Resume`]: no probe, the segment
//! synchronises it) or when the app wants it back
//! ([`crate::app::Ctx::resume`]: probed, as a restore is).
//!
//! The TCB machinery is the takeover's (`Tcb::restore`): a parked
//! connection comes back exactly as a survivor would take it over. Unlike
//! a takeover's restores, these are not tallied in [`super::RestoreStats`]
//! (they are no takeover) and the restore window does not pace them (there
//! is at most one probe each, and the app decides when). This file knows
//! nothing of where the app keeps the checkpoints.

use super::state::{app_ctx, Core};
use crate::app::App;
use crate::flow::ConnId;
use crate::tcp::{Segment, Tcb, TcbExport};
use crate::wire::ethernet::MacAddr;
use std::any::Any;
use std::time::Instant;

impl Core {
    /// Drops the connections the app parked in its last callback, then
    /// rebuilds the ones it resumed (each probes its client).
    pub(super) fn settle_parking<A: App>(&mut self, app: &mut A, now: Instant) {
        // Twice every iteration: nothing to do is the common case.
        if self.parking.is_empty() && self.resuming.is_empty() {
            return;
        }
        for id in std::mem::take(&mut self.parking) {
            if self.flows.get(id).is_some() {
                self.drop_silently(id);
                self.counters.tcp_parked += 1;
            }
        }
        for (export, data) in std::mem::take(&mut self.resuming) {
            if self.flows.lookup(&export.tuple).is_some() {
                // Its client brought it back first.
                self.counters.restore_duplicate += 1;
                continue;
            }
            let Some(id) = self.unpark(&export, now) else {
                continue;
            };
            self.touch(id);
            let mut ctx = app_ctx!(self, now);
            app.on_restored(id, data, &mut ctx);
        }
    }

    /// A segment of a connection the app parked: rebuilt from `export`
    /// and given the segment, which synchronises it (its client speaks
    /// first, so no probe is owed).
    pub(super) fn resume_from_segment<A: App>(
        &mut self,
        app: &mut A,
        export: &TcbExport,
        data: Box<dyn Any + Send>,
        seg: &Segment<'_>,
        peer: Option<MacAddr>,
        now: Instant,
    ) {
        let Some(id) = self.unpark(export, now) else {
            return;
        };
        self.feed_rebuilt(id, seg, peer, now);
        let mut ctx = app_ctx!(self, now);
        app.on_restored(id, data, &mut ctx);
    }

    /// The TCB of a parked connection back in the flow table (unready
    /// until its client answers), unless the table is full: then its
    /// client's segment is dropped and counted, and its retransmission
    /// tries again.
    fn unpark(&mut self, export: &TcbExport, now: Instant) -> Option<ConnId> {
        if self.flows.len() >= self.cfg.max_connections {
            self.counters.drop_tcp_max_connections += 1;
            return None;
        }
        let tcb = Tcb::restore(now, self.restored_tcp(), export);
        let id = self.flows.insert(tcb);
        if let Some(c) = self.flows.get_mut(id) {
            c.announced = true;
        }
        self.counters.tcp_unparked += 1;
        Some(id)
    }
}
