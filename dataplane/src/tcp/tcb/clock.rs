//! A TCB's own clock: its deadlines and the moments it remembers, as
//! 4-byte millisecond ticks from its epoch (`Tcb::ts_epoch`, which also
//! anchors its TCP timestamps) where an `Option<Instant>` takes 16 bytes —
//! 84 bytes less in each of 300,000 TCBs (issue 19).
//!
//! Deadlines round up, so a timer never fires early and at most a
//! millisecond late (the worker's timer wheel has millisecond slots
//! anyway); moments round down. A tick holds 2^32 ms (49.7 days), so a TCB
//! whose epoch is older than [`REBASE_AFTER`] moves it on by whole
//! milliseconds, its TCP timestamps unchanged (`Tcb::rebase_clock`). It
//! knows nothing of TCP.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

/// A point on a TCB's clock: milliseconds since its epoch, plus one, so
/// that an `Option<Tick>` takes 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Tick(NonZeroU32);

/// Age of the epoch past which a TCB moves it on ([`REBASE_STEP_MS`] at a
/// time): half of what a tick holds.
pub(super) const REBASE_AFTER: Duration = Duration::from_millis(1 << 31);
/// How far a TCB moves its epoch on at a time.
pub(super) const REBASE_STEP_MS: u32 = 1 << 30;

impl Tick {
    fn from_ms(ms: u128) -> Tick {
        let plus_one = u32::try_from(ms.saturating_add(1)).unwrap_or(u32::MAX);
        Tick(NonZeroU32::new(plus_one).unwrap_or(NonZeroU32::MIN))
    }

    /// The moment `t`, rounded down to its millisecond (the epoch if `t`
    /// is before it).
    pub(super) fn at(epoch: Instant, t: Instant) -> Tick {
        Tick::from_ms(t.saturating_duration_since(epoch).as_millis())
    }

    /// The deadline `t`, rounded up: the first tick not before `t`.
    pub(super) fn deadline(epoch: Instant, t: Instant) -> Tick {
        let ns = t.saturating_duration_since(epoch).as_nanos();
        Tick::from_ms(ns.div_ceil(1_000_000))
    }

    /// The instant this tick stands for.
    pub(super) fn instant(self, epoch: Instant) -> Instant {
        epoch + Duration::from_millis(u64::from(self.0.get() - 1))
    }

    /// Whether the deadline `self` has come at `now`.
    pub(super) fn reached(self, epoch: Instant, now: Instant) -> bool {
        Tick::at(epoch, now) >= self
    }

    /// Time from `self` to `now` (zero if `now` is earlier).
    pub(super) fn elapsed(self, epoch: Instant, now: Instant) -> Duration {
        let now = Tick::at(epoch, now).0.get();
        Duration::from_millis(u64::from(now.saturating_sub(self.0.get())))
    }

    /// This point on a clock whose epoch moved on by `ms`; a point before
    /// the new epoch becomes the epoch (it is long past either way).
    pub(super) fn rebased(self, ms: u32) -> Tick {
        Tick(NonZeroU32::new(self.0.get().saturating_sub(ms)).unwrap_or(NonZeroU32::MIN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_takes_four_bytes_even_when_optional() {
        assert_eq!(std::mem::size_of::<Option<Tick>>(), 4);
    }

    /// A deadline between two milliseconds falls due at the later one,
    /// never before the instant it was set for.
    #[test]
    fn a_deadline_is_never_early_and_at_most_a_millisecond_late() {
        let epoch = Instant::now();
        for us in [0u64, 1, 999, 1_000, 1_001, 40_500, 200_000] {
            let t = epoch + Duration::from_micros(us);
            let d = Tick::deadline(epoch, t);
            assert!(d.instant(epoch) >= t, "{us} µs");
            assert!(d.instant(epoch) < t + Duration::from_millis(1), "{us} µs");
            assert!(d.reached(epoch, d.instant(epoch)), "{us} µs");
            assert!(
                us == 0 || !d.reached(epoch, t - Duration::from_micros(1)),
                "{us} µs"
            );
        }
    }

    #[test]
    fn moments_round_down_and_elapsed_time_counts_from_them() {
        let epoch = Instant::now();
        let t = Tick::at(epoch, epoch + Duration::from_micros(2_700));
        assert_eq!(t.instant(epoch), epoch + Duration::from_millis(2));
        let later = epoch + Duration::from_millis(62);
        assert_eq!(t.elapsed(epoch, later), Duration::from_millis(60));
        assert_eq!(t.elapsed(epoch, epoch), Duration::ZERO);
        assert_eq!(
            Tick::at(epoch, epoch - Duration::from_secs(1)),
            Tick::at(epoch, epoch)
        );
    }

    /// Past what a tick holds, points saturate instead of wrapping to the
    /// epoch (a TCB rebases long before).
    #[test]
    fn points_beyond_the_range_saturate_and_rebase_moves_them_back() {
        let epoch = Instant::now();
        let far = epoch + Duration::from_millis(u64::from(u32::MAX) + 5);
        assert_eq!(Tick::at(epoch, far).0.get(), u32::MAX);
        let t = Tick::at(
            epoch,
            epoch + Duration::from_millis(u64::from(REBASE_STEP_MS) + 7),
        );
        assert_eq!(
            t.rebased(REBASE_STEP_MS),
            Tick::at(epoch, epoch + Duration::from_millis(7))
        );
        assert_eq!(
            Tick::at(epoch, epoch).rebased(REBASE_STEP_MS),
            Tick::at(epoch, epoch)
        );
    }
}
