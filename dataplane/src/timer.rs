//! A hierarchical hashed timer wheel (Varghese & Lauck, "Hashed and
//! Hierarchical Timing Wheels", 1987; the layout of Linux's classic
//! `kernel/timer.c`): four levels of 64 slots, 1 ms per tick at level 0,
//! 64× coarser at each level up, so level 3 spans 4.6 hours.
//!
//! Each worker keeps one wheel for all its connections: a TCB has at most
//! one deadline (its `poll_timeout()`), so the wheel is keyed by the
//! connection's slab index and stores its entries in a `Vec` indexed by key,
//! linked into intrusive doubly-linked slot lists. Insert, cancel and re-arm
//! are O(1) with no allocation once the `Vec` has grown to the connection
//! count; this is what keeps 300,000 connections cheap, since every touched
//! TCB re-arms its timer on every segment.
//!
//! Deadlines are rounded up to a whole tick, so a timer never fires early;
//! it fires at most one tick late (plus however late [`TimerWheel::expire`]
//! is called).

use std::time::{Duration, Instant};

const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const LEVELS: usize = 4;
const NIL: u32 = u32::MAX;
const UNARMED: u16 = u16::MAX;
/// Longest delay that gets an exact slot; later deadlines park in the last
/// level's farthest slot and are re-placed when it cascades.
const MAX_SPAN: u64 = 1 << (SLOT_BITS as usize * LEVELS);

/// Latest tick a deadline can name: 48 bits, 8,900 years of 1 ms ticks.
const MAX_TICK: u64 = (1 << 48) - 1;

/// 16 bytes, not the 24 a `u64` deadline would align it to: one per
/// connection slot in each of a worker's two wheels (issue 19).
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The deadline tick's low 32 bits ([`Entry::deadline`]).
    deadline_lo: u32,
    prev: u32,
    next: u32,
    /// The deadline tick's bits 32..48.
    deadline_hi: u16,
    /// level * SLOTS + slot, or `UNARMED`.
    slot: u16,
}

impl Entry {
    const EMPTY: Entry = Entry {
        deadline_lo: 0,
        prev: NIL,
        next: NIL,
        deadline_hi: 0,
        slot: UNARMED,
    };

    fn deadline(&self) -> u64 {
        u64::from(self.deadline_lo) | (u64::from(self.deadline_hi) << 32)
    }

    /// Sets the deadline tick, at most [`MAX_TICK`].
    fn set_deadline(&mut self, tick: u64) {
        let tick = tick.min(MAX_TICK);
        self.deadline_lo = tick as u32;
        self.deadline_hi = (tick >> 32) as u16;
    }
}

/// The timer wheel of one worker. Keys are small dense integers (slab
/// indices); each key has at most one deadline.
#[derive(Debug)]
pub struct TimerWheel {
    start: Instant,
    tick: Duration,
    /// Ticks since `start` that have been processed.
    now_tick: u64,
    heads: Vec<u32>,
    /// One bit per non-empty slot, per level.
    occupied: [u64; LEVELS],
    entries: Vec<Entry>,
    armed: usize,
}

impl TimerWheel {
    /// A wheel whose tick 0 is `start`, with `tick` granularity (1 ms is what
    /// the worker uses: finer than any TCP timer needs, RFC 6298 §4 asks for
    /// ≤ 100 ms clock granularity).
    pub fn new(start: Instant, tick: Duration) -> Self {
        TimerWheel {
            start,
            tick: tick.max(Duration::from_micros(1)),
            now_tick: 0,
            heads: vec![NIL; SLOTS * LEVELS],
            occupied: [0; LEVELS],
            entries: Vec::new(),
            armed: 0,
        }
    }

    /// Number of armed timers.
    pub fn len(&self) -> usize {
        self.armed
    }

    /// True when no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.armed == 0
    }

    /// True if `key` has an armed timer.
    pub fn is_armed(&self, key: usize) -> bool {
        self.entries.get(key).is_some_and(|e| e.slot != UNARMED)
    }

    /// The instant of `key`'s deadline, rounded up to the tick.
    pub fn deadline(&self, key: usize) -> Option<Instant> {
        let e = self.entries.get(key).filter(|e| e.slot != UNARMED)?;
        Some(self.instant_of(e.deadline()))
    }

    fn instant_of(&self, tick: u64) -> Instant {
        self.start
            + self
                .tick
                .saturating_mul(tick.min(u64::from(u32::MAX)) as u32)
    }

    // In u64 nanoseconds (584 years): a u128 division is a libcall that
    // `expire` would pay on every worker iteration.
    fn ticks_ceil(&self, at: Instant) -> u64 {
        self.nanos_since_start(at).div_ceil(self.tick_nanos())
    }

    fn ticks_floor(&self, at: Instant) -> u64 {
        self.nanos_since_start(at) / self.tick_nanos()
    }

    fn nanos_since_start(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.start);
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    fn tick_nanos(&self) -> u64 {
        // At least 1 µs (`new`), at most 584 years.
        u64::try_from(self.tick.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Arms `key` to fire at `at`, replacing any earlier deadline (re-arm).
    /// A deadline already past fires at the next [`TimerWheel::expire`].
    pub fn arm(&mut self, key: usize, at: Instant) {
        let deadline = self.ticks_ceil(at);
        self.arm_ticks(key, deadline);
    }

    fn arm_ticks(&mut self, key: usize, deadline: u64) {
        if key >= self.entries.len() {
            self.entries.resize(key + 1, Entry::EMPTY);
        }
        if self.entries[key].slot != UNARMED {
            if self.entries[key].deadline() == deadline.min(MAX_TICK) {
                return; // the common re-arm to the same tick costs nothing
            }
            self.unlink(key);
        } else {
            self.armed += 1;
        }
        self.entries[key].set_deadline(deadline);
        self.place(key);
    }

    /// Disarms `key`; a no-op if it has no timer.
    pub fn cancel(&mut self, key: usize) {
        if self.is_armed(key) {
            self.unlink(key);
            self.armed -= 1;
        }
    }

    /// Puts an entry (already unlinked, deadline set) into its slot.
    fn place(&mut self, key: usize) {
        let deadline = self.entries[key].deadline();
        // Due or overdue entries go to the next tick's slot so that the next
        // advance fires them.
        let d = deadline.max(self.now_tick + 1);
        let delta = d - self.now_tick;
        let (level, slot) = if delta >= MAX_SPAN {
            // Park at the farthest slot of the top level; cascaded later.
            let far = self.now_tick + MAX_SPAN - 1;
            (LEVELS - 1, Self::slot_of(far, LEVELS - 1))
        } else {
            let level = ((63 - delta.leading_zeros()) / SLOT_BITS) as usize;
            (level, Self::slot_of(d, level))
        };
        let idx = level * SLOTS + slot;
        let head = self.heads[idx];
        let e = &mut self.entries[key];
        e.slot = idx as u16;
        e.prev = NIL;
        e.next = head;
        if head != NIL {
            self.entries[head as usize].prev = key as u32;
        }
        self.heads[idx] = key as u32;
        self.occupied[level] |= 1 << slot;
    }

    fn slot_of(tick: u64, level: usize) -> usize {
        ((tick >> (SLOT_BITS as usize * level)) as usize) & (SLOTS - 1)
    }

    fn unlink(&mut self, key: usize) {
        let Entry {
            prev, next, slot, ..
        } = self.entries[key];
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else {
            self.heads[usize::from(slot)] = next;
            if next == NIL {
                let level = usize::from(slot) / SLOTS;
                self.occupied[level] &= !(1 << (usize::from(slot) % SLOTS));
            }
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        let e = &mut self.entries[key];
        e.slot = UNARMED;
        e.prev = NIL;
        e.next = NIL;
    }

    /// Takes the whole list of slot `idx`.
    fn take_slot(&mut self, idx: usize) -> u32 {
        let head = self.heads[idx];
        self.heads[idx] = NIL;
        self.occupied[idx / SLOTS] &= !(1 << (idx % SLOTS));
        head
    }

    /// Advances the wheel to `now` and appends the key of every timer that
    /// is due to `fired` (those timers are disarmed).
    pub fn expire(&mut self, now: Instant, fired: &mut Vec<usize>) {
        let target = self.ticks_floor(now);
        while self.now_tick < target {
            if self.armed == 0 {
                self.now_tick = target;
                break;
            }
            // Skip ticks with nothing at level 0 up to the next cascade point.
            if self.occupied[0] == 0 {
                let next_cascade = (self.now_tick | (SLOTS as u64 - 1)) + 1;
                if next_cascade > target {
                    self.now_tick = target;
                    break;
                }
                self.now_tick = next_cascade - 1;
            }
            self.now_tick += 1;
            let t = self.now_tick;
            if t & (SLOTS as u64 - 1) == 0 {
                // Cascade from the highest level whose index wrapped, down,
                // so entries settle at the finest level that fits them.
                let mut top = 1;
                while top + 1 < LEVELS && t & ((1u64 << (SLOT_BITS as usize * (top + 1))) - 1) == 0
                {
                    top += 1;
                }
                for level in (1..=top).rev() {
                    let idx = level * SLOTS + Self::slot_of(t, level);
                    let mut k = self.take_slot(idx);
                    while k != NIL {
                        let next = self.entries[k as usize].next;
                        self.entries[k as usize].slot = UNARMED;
                        if self.entries[k as usize].deadline() <= t {
                            self.fire_now(k as usize, fired);
                        } else {
                            self.place(k as usize);
                        }
                        k = next;
                    }
                }
            }
            let idx = Self::slot_of(t, 0);
            let mut k = self.take_slot(idx);
            while k != NIL {
                let next = self.entries[k as usize].next;
                self.entries[k as usize].slot = UNARMED;
                self.fire_now(k as usize, fired);
                k = next;
            }
        }
    }

    fn fire_now(&mut self, key: usize, fired: &mut Vec<usize>) {
        let e = &mut self.entries[key];
        e.slot = UNARMED;
        e.prev = NIL;
        e.next = NIL;
        self.armed -= 1;
        fired.push(key);
    }

    /// A lower bound on the next deadline, for blocking until then: exact
    /// when a level-0 timer is armed, otherwise the next cascade of the
    /// nearest occupied higher slot (the caller wakes, cascades, asks again).
    pub fn next_wakeup(&self) -> Option<Instant> {
        if self.armed == 0 {
            return None;
        }
        for level in 0..LEVELS {
            let occ = self.occupied[level];
            if occ == 0 {
                continue;
            }
            let shift = SLOT_BITS as usize * level;
            let cur = Self::slot_of(self.now_tick, level);
            // Slots after the current index, in wheel order.
            let rot = occ.rotate_right(((cur + 1) % SLOTS) as u32);
            let dist = u64::from(rot.trailing_zeros()) + 1;
            let base = (self.now_tick >> shift) << shift;
            let tick = base + (dist << shift);
            return Some(self.instant_of(tick.max(self.now_tick + 1)));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_16_bytes_and_keeps_a_48_bit_deadline() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        let mut e = Entry::EMPTY;
        for t in [0, 1, u64::from(u32::MAX), u64::from(u32::MAX) + 7, MAX_TICK] {
            e.set_deadline(t);
            assert_eq!(e.deadline(), t);
        }
        e.set_deadline(u64::MAX);
        assert_eq!(e.deadline(), MAX_TICK, "clamped, not wrapped");
    }

    const MS: Duration = Duration::from_millis(1);

    fn wheel() -> (TimerWheel, Instant) {
        let t0 = Instant::now();
        (TimerWheel::new(t0, MS), t0)
    }

    fn fire(w: &mut TimerWheel, at: Instant) -> Vec<usize> {
        let mut v = Vec::new();
        w.expire(at, &mut v);
        v.sort();
        v
    }

    #[test]
    fn timer_never_fires_early_and_at_most_one_tick_late() {
        let (mut w, t0) = wheel();
        w.arm(1, t0 + Duration::from_micros(2500));
        assert!(fire(&mut w, t0 + Duration::from_micros(2999)).is_empty());
        assert_eq!(fire(&mut w, t0 + Duration::from_micros(3000)), vec![1]);
        assert!(w.is_empty());
    }

    #[test]
    fn cancelled_timer_does_not_fire() {
        let (mut w, t0) = wheel();
        w.arm(3, t0 + 10 * MS);
        w.arm(4, t0 + 10 * MS);
        w.cancel(3);
        w.cancel(99); // never armed: no-op
        assert_eq!(fire(&mut w, t0 + 20 * MS), vec![4]);
    }

    #[test]
    fn rearm_moves_the_deadline_both_ways() {
        let (mut w, t0) = wheel();
        w.arm(1, t0 + 100 * MS);
        w.arm(1, t0 + 5 * MS);
        assert_eq!(w.len(), 1);
        assert_eq!(fire(&mut w, t0 + 5 * MS), vec![1]);
        w.arm(2, t0 + 10 * MS);
        w.arm(2, t0 + 5000 * MS);
        assert!(fire(&mut w, t0 + 4999 * MS).is_empty());
        assert_eq!(fire(&mut w, t0 + 5000 * MS), vec![2]);
    }

    #[test]
    fn overdue_deadline_fires_on_next_expire() {
        let (mut w, t0) = wheel();
        assert!(fire(&mut w, t0 + 50 * MS).is_empty());
        w.arm(7, t0 + 10 * MS);
        assert_eq!(fire(&mut w, t0 + 51 * MS), vec![7]);
    }

    #[test]
    fn deadlines_beyond_the_top_level_still_fire_on_time() {
        let (mut w, t0) = wheel();
        let far = t0 + Duration::from_secs(6 * 3600); // past the 4.6 h span
        w.arm(1, far);
        assert!(fire(&mut w, far - MS).is_empty());
        assert_eq!(fire(&mut w, far), vec![1]);
    }

    #[test]
    fn many_random_timers_fire_exactly_when_due() {
        // A deterministic pseudo-random schedule checked against a plain list.
        let (mut w, t0) = wheel();
        let mut rng = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut expect: Vec<Option<u64>> = vec![None; 2000];
        let mut now = 0u64;
        for round in 0..200 {
            for _ in 0..50 {
                let k = (next() % 2000) as usize;
                if next() % 5 == 0 {
                    w.cancel(k);
                    expect[k] = None;
                } else {
                    let d = now + 1 + next() % [70, 5000, 300_000][round % 3];
                    w.arm(k, t0 + Duration::from_millis(d));
                    expect[k] = Some(d);
                }
            }
            now += 1 + next() % 3000;
            let got = fire(&mut w, t0 + Duration::from_millis(now));
            let mut want: Vec<usize> = (0..2000)
                .filter(|&k| expect[k].is_some_and(|d| d <= now))
                .collect();
            want.sort();
            for &k in &want {
                expect[k] = None;
            }
            assert_eq!(got, want, "round {round} at tick {now}");
            assert_eq!(w.len(), expect.iter().flatten().count());
        }
    }

    #[test]
    fn next_wakeup_is_never_after_the_earliest_deadline() {
        let (mut w, t0) = wheel();
        assert_eq!(w.next_wakeup(), None);
        w.arm(1, t0 + 30 * MS);
        assert_eq!(w.next_wakeup(), Some(t0 + 30 * MS));
        w.arm(2, t0 + 10_000 * MS);
        w.cancel(1);
        let wake = w.next_wakeup().unwrap();
        assert!(wake <= t0 + 10_000 * MS && wake > t0);
    }
}
