//! Parking (issue 19): an idle keep-alive connection is kept as its
//! checkpoint alone. After `checkpoint.park_idle_after_ms` at rest (its
//! TCB quiescent, its HTTP session between requests) the worker writes its
//! final record, drops its TCB and session, and remembers only that the
//! slot is parked, and since when the connection was idle: 4 bytes a slot
//! and one entry of the expiry queue, against about a kilobyte for a live
//! idle connection. Its client's next segment finds the record through the
//! segment's tuple index and rebuilds the connection (`UnknownAction::Resume`),
//! as a survivor's lazy takeover would; at its idle limit the box brings
//! it back itself (`Ctx::resume`) so that its HTTP session closes it as it
//! would have closed a live one.
//!
//! A parked record is an idle connection's record like any other, so a
//! takeover, a drain or a migration moves it as it is.
//!
//! [`Parking`] is the bookkeeping (which slots are parked, which
//! connections came to rest, when the parked ones expire), pure; the
//! `impl CacheApp` below joins it to the checkpointer, the HTTP sessions
//! and the worker. It knows nothing of the record's bytes nor of TCP.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use baton_dataplane::app::{Ctx, UnknownAction};
use baton_dataplane::connmap::ConnMap;
use baton_dataplane::flow::ConnId;
use baton_dataplane::tcp::FourTuple;
use baton_dataplane::wire::ethernet::MacAddr;
use baton_shmem::SlotId;
use tracing::{debug, info, warn};

use super::CacheApp;
use crate::http::counters::bump;
use crate::orphans::{OrphanRoute, Restore};

/// Candidates and expiries looked at per worker iteration: parking is
/// background work, a burst of it must not hold the worker's packets.
const BATCH: usize = 256;
/// How long after an expired connection was asked back before it is asked
/// again (its resume was refused: the flow table was full).
const RETRY: Duration = Duration::from_secs(5);
/// The heap's free pages go back to the kernel (`crate::sys::release_free_heap`)
/// once the live sessions fell to a quarter of their peak since the last
/// trim, by at least this many: after a burst of parks, never for the
/// steady churn of connections parked and brought back (whose memory the
/// next ones reuse). A trim holds the worker while the allocator walks its
/// free chunks (300,000 parked after their ramp-up: three trims, 6.1, 3.5
/// and 1.3 ms, release) — hence so rarely.
const TRIM_AFTER_PARKS: usize = 1024;
/// Least time between two trims.
const TRIM_GAP: Duration = Duration::from_secs(1);

/// What a parked connection's restore carries to the app.
pub(super) struct Unparked {
    /// What a restore of its record carries.
    pub(super) restore: Restore,
    /// Its slot, which its checkpoints keep.
    pub(super) slot: SlotId,
    /// Since when it was idle: its HTTP session's idle limit counts from
    /// there.
    pub(super) idle_since: Instant,
}

/// One worker's parked connections (see the module doc).
pub(super) struct Parking {
    after: Duration,
    idle_timeout: Duration,
    /// Whole seconds are counted from here.
    epoch: Instant,
    /// The worker's first slot.
    base: u32,
    /// Per slot of the worker's range: 0 when not parked, else 1 + the
    /// second (from `epoch`, rounded up) its connection became idle.
    marks: Vec<u32>,
    parked: usize,
    /// Connections that came to rest, oldest first, each with that moment.
    resting: VecDeque<(Instant, ConnId)>,
    /// Parked slots by expiry, oldest first: (second of its idle limit,
    /// slot, its mark then; an entry whose mark changed is stale).
    expiry: VecDeque<(u32, u32, u32)>,
    /// Connections brought back and not ready yet, with their idle start.
    waking: ConnMap<ConnId, Instant>,
    /// Parks since the heap was last trimmed, and when that was.
    /// The most live sessions since the heap was last trimmed, and when
    /// that was.
    live_peak: usize,
    trimmed_at: Instant,
}

impl Parking {
    /// Parking for the slots `range`, after `after` at rest, with the HTTP
    /// sessions' `idle_timeout`.
    pub(super) fn new(
        after: Duration,
        idle_timeout: Duration,
        range: std::ops::Range<u32>,
        now: Instant,
    ) -> Parking {
        Parking {
            after,
            idle_timeout,
            epoch: now,
            base: range.start,
            marks: vec![0; range.len()],
            parked: 0,
            resting: VecDeque::new(),
            expiry: VecDeque::new(),
            waking: ConnMap::default(),
            live_peak: 0,
            trimmed_at: now,
        }
    }

    /// True when the `live` sessions fell to a quarter of their peak since
    /// the heap's free pages last went back to the kernel (by at least
    /// [`TRIM_AFTER_PARKS`]), and no park is due now (a burst is over).
    fn trim_due(&mut self, now: Instant, live: usize) -> bool {
        self.live_peak = self.live_peak.max(live);
        let burst_over = self
            .resting
            .front()
            .is_none_or(|&(at, _)| at + self.after > now);
        let due = live.saturating_mul(4) <= self.live_peak
            && self.live_peak - live >= TRIM_AFTER_PARKS
            && now >= self.trimmed_at + TRIM_GAP
            && burst_over;
        if due {
            self.live_peak = live;
            self.trimmed_at = now;
            // The burst's candidates are gone: their room goes back too
            // (24 bytes a connection of the burst otherwise).
            self.resting.shrink_to_fit();
        }
        due
    }

    fn second_of(&self, at: Instant) -> u32 {
        let ms = at.saturating_duration_since(self.epoch).as_millis();
        u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX - 1)
    }

    fn instant_of(&self, second: u32) -> Instant {
        self.epoch + Duration::from_secs(u64::from(second))
    }

    fn mark(&self, slot: SlotId) -> Option<&u32> {
        self.marks.get(slot.0.checked_sub(self.base)? as usize)
    }

    /// Connections parked now.
    pub(super) fn len(&self) -> usize {
        self.parked
    }

    /// True when `slot` holds a parked connection.
    pub(super) fn is_parked(&self, slot: SlotId) -> bool {
        self.mark(slot).is_some_and(|&m| m != 0)
    }

    /// `conn` came to rest at `now`: a candidate once `after` has passed.
    pub(super) fn rested(&mut self, conn: ConnId, now: Instant) {
        self.resting.push_back((now, conn));
    }

    /// The next connection that has rested `after` since it was noted
    /// (the caller checks it still rests), at most one batch a call.
    fn due(&mut self, now: Instant) -> Option<ConnId> {
        let &(at, conn) = self.resting.front()?;
        (at + self.after <= now).then(|| {
            self.resting.pop_front();
            conn
        })
    }

    /// `slot`'s connection, idle since `idle_since`, is parked.
    pub(super) fn park(&mut self, slot: SlotId, idle_since: Instant) {
        let second = self.second_of(idle_since);
        let Some(m) = slot
            .0
            .checked_sub(self.base)
            .and_then(|i| self.marks.get_mut(i as usize))
        else {
            return;
        };
        if *m == 0 {
            self.parked += 1;
        }
        *m = second + 1;
        let limit = second.saturating_add(self.idle_timeout.as_secs().max(1) as u32);
        self.expiry.push_back((limit, slot.0, second + 1));
    }

    /// Since when `slot`'s parked connection was idle (`None`: not parked).
    fn idle_since(&self, slot: SlotId) -> Option<Instant> {
        match self.mark(slot) {
            Some(&m) if m != 0 => Some(self.instant_of(m - 1)),
            _ => None,
        }
    }

    /// `slot` is parked no more; returns since when its connection was
    /// idle.
    pub(super) fn take(&mut self, slot: SlotId) -> Option<Instant> {
        let i = slot.0.checked_sub(self.base)? as usize;
        let m = std::mem::take(self.marks.get_mut(i)?);
        if m == 0 {
            return None;
        }
        self.parked -= 1;
        Some(self.instant_of(m - 1))
    }

    /// Forgets every parked slot (their connections left this box);
    /// returns how many there were.
    pub(super) fn clear(&mut self) -> usize {
        self.marks.iter_mut().for_each(|m| *m = 0);
        self.expiry.clear();
        std::mem::take(&mut self.parked)
    }

    /// The next parked slot past its idle limit, with since when it was
    /// idle; it stays parked (asked again after [`RETRY`] unless it comes
    /// back meanwhile).
    fn expired(&mut self, now: Instant) -> Option<(SlotId, Instant)> {
        while let Some(&(limit, slot, mark)) = self.expiry.front() {
            // The limit's second is at or after the session's own limit
            // (rounded up): brought back then, the session closes it.
            if self.instant_of(limit) > now {
                return None;
            }
            self.expiry.pop_front();
            if self.mark(SlotId(slot)) == Some(&mark) {
                let retry = self.second_of(now).saturating_add(RETRY.as_secs() as u32);
                self.expiry.push_back((retry, slot, mark));
                return Some((SlotId(slot), self.instant_of(mark - 1)));
            }
        }
        None
    }

    /// `conn` is a parked connection brought back, idle since `idle_since`.
    pub(super) fn waking(&mut self, conn: ConnId, idle_since: Instant) {
        self.waking.insert(conn, idle_since);
    }

    /// Since when `conn`, a parked connection now ready, was idle (`None`:
    /// not one).
    pub(super) fn woke(&mut self, conn: ConnId) -> Option<Instant> {
        self.waking.remove(&conn)
    }
}

impl CacheApp {
    /// `conn` came to rest: it may be parked once it has rested long enough.
    pub(super) fn note_rest(&mut self, conn: ConnId, now: Instant) {
        if let Some(p) = self.parking.as_mut() {
            p.rested(conn, now);
        }
    }

    /// Parks the connections that have rested long enough, and brings back
    /// the parked ones past their idle limit (one batch of each).
    pub(super) fn tend_parking(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now();
        for _ in 0..BATCH {
            let Some(conn) = self.parking.as_mut().and_then(|p| p.due(now)) else {
                break;
            };
            self.try_park(conn, ctx);
        }
        for _ in 0..BATCH {
            let Some((slot, idle_since)) = self.parking.as_mut().and_then(|p| p.expired(now))
            else {
                break;
            };
            self.wake_expired(slot, idle_since, ctx);
        }
        let live = self.http.sessions();
        if self.parking.as_mut().is_some_and(|p| p.trim_due(now, live)) {
            let started = Instant::now();
            let released = crate::sys::release_free_heap();
            // Rare (after a burst of parks) and it holds the worker: said
            // at info, with what it took.
            info!(
                released,
                took_us = started.elapsed().as_micros() as u64,
                parked = self.parking.as_ref().map_or(0, Parking::len),
                "parked a burst: the heap's free pages went back to the kernel"
            );
        }
    }

    /// Parks `conn` if it still rests and has for long enough; a
    /// connection that rests but not yet that long is looked at again.
    fn try_park(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let now = ctx.now();
        let (Some(parking), Some(checkpoints)) = (self.parking.as_mut(), self.checkpoints.as_mut())
        else {
            return;
        };
        let other = self.tls.as_ref().is_some_and(|t| t.has(conn))
            || self.ftp.as_ref().is_some_and(|f| f.owns(conn))
            || self.rtsp.as_ref().is_some_and(|r| r.owns(conn))
            || self.restoring.contains_key(&conn);
        if other || !ctx.quiescent(conn) {
            return;
        }
        let Some(since) = self.http.rest_since(conn) else {
            return;
        };
        if since + parking.after > now {
            // Active since it was noted: its rest starts later.
            parking.rested(conn, now);
            return;
        }
        let Some(slot) = checkpoints.write_parked(ctx, conn) else {
            return;
        };
        if !ctx.park(conn) {
            return;
        }
        checkpoints.detach(conn);
        self.http.on_handed_off(conn);
        parking.park(slot, since);
        bump(&self.counters.counters.parked);
    }

    /// A parked connection reached its idle limit: brought back (probed)
    /// so that its session closes it as a live one is closed.
    fn wake_expired(&mut self, slot: SlotId, idle_since: Instant, ctx: &mut Ctx<'_>) {
        let (Some(parking), Some(checkpoints)) = (self.parking.as_mut(), self.checkpoints.as_mut())
        else {
            return;
        };
        let record = checkpoints.read_record_in(slot);
        let Some(orphan) = record else {
            warn!(
                slot = slot.0,
                "a parked connection's record is unreadable: forgotten"
            );
            parking.take(slot);
            checkpoints.free_slot(slot);
            return;
        };
        let (export, restore) = orphan.into_restore();
        ctx.resume(
            export,
            Box::new(Unparked {
                restore,
                slot,
                idle_since,
            }),
        );
    }

    /// What a segment of `tuple`, no connection of the worker's, means if
    /// it is a parked connection's: its client's RST ends it; anything
    /// else brings it back. `None`: not parked here.
    pub(super) fn parked_segment(&mut self, tuple: &FourTuple, rst: bool) -> Option<UnknownAction> {
        let parking = self.parking.as_mut().filter(|p| p.len() > 0)?;
        let checkpoints = self.checkpoints.as_mut()?;
        let slot = checkpoints
            .slots_of(tuple)
            .find(|s| parking.is_parked(*s))?;
        if rst {
            parking.take(slot);
            checkpoints.free_slot(slot);
            bump(&self.counters.counters.parked_reset);
            debug!(?tuple, "parked connection reset by its client");
            return Some(UnknownAction::Drop);
        }
        let Some(orphan) = checkpoints.read_record(slot, tuple) else {
            warn!(
                ?tuple,
                slot = slot.0,
                "a parked connection's record is unreadable: forgotten"
            );
            parking.take(slot);
            checkpoints.free_slot(slot);
            return Some(UnknownAction::Listener);
        };
        let idle_since = parking.idle_since(slot)?;
        let (export, restore) = orphan.into_restore();
        Some(UnknownAction::Resume(
            export,
            Box::new(Unparked {
                restore,
                slot,
                idle_since,
            }),
        ))
    }

    /// True when `tuple` is parked here.
    pub(super) fn holds_parked_conn(&self, tuple: &FourTuple) -> bool {
        let (Some(parking), Some(checkpoints)) = (self.parking.as_ref(), self.checkpoints.as_ref())
        else {
            return false;
        };
        parking.len() > 0 && checkpoints.slots_of(tuple).any(|s| parking.is_parked(s))
    }

    /// A parked connection is back in the worker (`on_restored`): its slot
    /// is its own again, its session waits for it to be ready.
    pub(super) fn unparked(&mut self, conn: ConnId, data: Unparked, ctx: &mut Ctx<'_>) {
        let (Some(parking), Some(checkpoints)) = (self.parking.as_mut(), self.checkpoints.as_mut())
        else {
            return;
        };
        if parking.take(data.slot).is_none() {
            // Brought back twice (its client and its idle limit at once):
            // the first holds the slot.
            ctx.abort(conn);
            return;
        }
        checkpoints.adopt(ctx, conn, data.slot);
        parking.waking(conn, data.idle_since);
        bump(&self.counters.counters.unparked);
        self.restoring.insert(conn, data.restore);
    }

    /// A new connection on `tuple`: a parked one of the same 4-tuple is
    /// over (its client closed it while it was parked and reused the
    /// port), and its record must not outlive it.
    pub(super) fn drop_parked_namesake(&mut self, tuple: &FourTuple) {
        let Some(parking) = self.parking.as_mut().filter(|p| p.len() > 0) else {
            return;
        };
        let Some(checkpoints) = self.checkpoints.as_mut() else {
            return;
        };
        let stale: Vec<SlotId> = checkpoints
            .slots_of(tuple)
            .filter(|s| parking.is_parked(*s))
            .collect();
        for slot in stale {
            parking.take(slot);
            checkpoints.free_slot(slot);
        }
    }

    /// A parked `tuple` moves to the box at `to` (a planned move): its
    /// record stays for the adopter, its frames go there.
    pub(super) fn hand_off_parked(&mut self, tuple: &FourTuple, to: MacAddr) -> bool {
        let Some(parking) = self.parking.as_mut().filter(|p| p.len() > 0) else {
            return false;
        };
        let Some(checkpoints) = self.checkpoints.as_mut() else {
            return false;
        };
        let Some(slot) = checkpoints.slots_of(tuple).find(|s| parking.is_parked(*s)) else {
            return false;
        };
        parking.take(slot);
        checkpoints.forget_parked(1);
        self.orphans.insert(*tuple, OrphanRoute::Elsewhere(to));
        true
    }

    /// Every parked connection leaves with the box's others (a drain's
    /// release): their records stay for the takeover.
    pub(super) fn release_parked(&mut self) -> usize {
        let n = self.parking.as_mut().map_or(0, Parking::clear);
        if let Some(c) = self.checkpoints.as_mut() {
            c.forget_parked(n);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(5);
    const IDLE: Duration = Duration::from_secs(60);

    fn parking(t0: Instant) -> Parking {
        Parking::new(AFTER, IDLE, 100..200, t0)
    }

    /// The id connection `n` of a fresh worker gets (the bookkeeping only
    /// stores ids).
    fn conn(n: u16) -> ConnId {
        let mut table = baton_dataplane::flow::FlowTable::new();
        let mut id = None;
        for port in 0..=n {
            let tuple = FourTuple {
                local: "198.18.0.11:80".parse().unwrap(),
                remote: std::net::SocketAddr::new([198, 18, 0, 100].into(), 1000 + port),
            };
            let tcb = baton_dataplane::tcp::Tcb::restore(
                Instant::now(),
                Default::default(),
                &export(tuple),
            );
            id = Some(table.insert(tcb));
        }
        id.unwrap()
    }

    fn export(tuple: FourTuple) -> baton_dataplane::tcp::TcbExport {
        baton_dataplane::tcp::TcbExport {
            tuple,
            state: baton_dataplane::tcp::State::Established,
            iss: 1,
            irs: 1,
            snd_una: 2,
            snd_nxt: 2,
            rcv_nxt: 2,
            snd_wnd: 1000,
            rcv_wnd: 1000,
            mss: 1460,
            snd_wscale: 0,
            rcv_wscale: 0,
            sack_permitted: false,
            timestamps: false,
            ts_recent: 0,
            ts_last_sent: 0,
            acks_covered: false,
        }
    }

    #[test]
    fn a_connection_is_a_candidate_only_once_it_has_rested_long_enough() {
        let t0 = Instant::now();
        let mut p = parking(t0);
        let c = conn(0);
        p.rested(c, t0);
        assert_eq!(p.due(t0 + AFTER - Duration::from_millis(1)), None);
        assert_eq!(p.due(t0 + AFTER), Some(c));
        assert_eq!(p.due(t0 + AFTER), None, "once");
    }

    #[test]
    fn a_parked_slot_is_counted_until_taken_and_says_since_when_it_was_idle() {
        let t0 = Instant::now();
        let mut p = parking(t0);
        let idle = t0 + Duration::from_millis(2_300);
        p.park(SlotId(150), idle);
        assert!(p.is_parked(SlotId(150)));
        assert!(!p.is_parked(SlotId(151)));
        assert!(!p.is_parked(SlotId(50)), "another worker's slot");
        assert_eq!(p.len(), 1);
        // Whole seconds, rounded up: the idle limit is never early.
        assert_eq!(p.take(SlotId(150)), Some(t0 + Duration::from_secs(3)));
        assert_eq!(p.take(SlotId(150)), None);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn a_parked_connection_expires_at_its_idle_limit_and_is_asked_again_until_it_comes_back() {
        let t0 = Instant::now();
        let mut p = parking(t0);
        p.park(SlotId(120), t0);
        assert_eq!(p.expired(t0 + IDLE - Duration::from_millis(1)), None);
        let at = t0 + IDLE;
        assert_eq!(p.expired(at), Some((SlotId(120), t0)));
        assert_eq!(p.expired(at), None, "asked once");
        // Its resume was refused: asked again after RETRY.
        assert_eq!(p.expired(at + RETRY), Some((SlotId(120), t0)));
        // Back (taken), then parked again later: the old entry is stale.
        p.take(SlotId(120));
        let again = t0 + Duration::from_secs(100);
        p.park(SlotId(120), again);
        assert_eq!(p.expired(again + RETRY * 2), None, "stale entries skipped");
        assert_eq!(p.expired(again + IDLE), Some((SlotId(120), again)));
    }

    #[test]
    fn clearing_forgets_every_parked_slot_and_its_expiry() {
        let t0 = Instant::now();
        let mut p = parking(t0);
        p.park(SlotId(101), t0);
        p.park(SlotId(102), t0);
        assert_eq!(p.clear(), 2);
        assert_eq!(p.len(), 0);
        assert!(!p.is_parked(SlotId(101)));
        assert_eq!(p.expired(t0 + IDLE * 2), None);
    }

    #[test]
    fn the_heap_is_trimmed_once_the_live_sessions_fell_to_a_quarter_not_during_a_burst() {
        let t0 = Instant::now();
        let mut p = Parking::new(AFTER, IDLE, 0..4000, t0);
        let t1 = t0 + TRIM_GAP;
        assert!(!p.trim_due(t1, 8000), "the peak");
        assert!(!p.trim_due(t1, 2001), "above a quarter");
        p.rested(conn(0), t1 - AFTER);
        assert!(
            !p.trim_due(t1, 2000),
            "a park is still due: the burst goes on"
        );
        assert_eq!(p.due(t1), Some(conn(0)));
        assert!(p.trim_due(t1, 2000));
        assert!(!p.trim_due(t1 + TRIM_GAP / 2, 400), "not within the gap");
        assert!(
            p.trim_due(t1 + TRIM_GAP, 500),
            "the peak is 2,000 now: 1,500 fewer is enough"
        );
        // Steady churn: the live count stays, nothing is trimmed.
        let mut p = Parking::new(AFTER, IDLE, 0..4000, t0);
        for k in 1..100 {
            assert!(!p.trim_due(t0 + TRIM_GAP * k, 5000 + (k as usize % 3) * 100));
        }
    }
}
