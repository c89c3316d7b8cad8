//! When a connection's next checkpoint is due: the configured cadence, and
//! what the checkpointer keeps per connection to follow it (where its
//! record is, what it covered, how fast its client acknowledges).
//!
//! It knows no segment nor TCP beyond sequence numbers: the checkpointer
//! hands it the acknowledged sequence and the time.

use std::time::{Duration, Instant};

use baton_dataplane::tcp::SeqNum;
use baton_shmem::SlotId;

/// Throughput above which a connection counts as fast (bytes per second).
const FAST_RATE: f32 = 1_000_000.0;

/// When to checkpoint a connection that is sending.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// Bytes acknowledged between checkpoints of a fast connection.
    pub fast_bytes: u64,
    /// Bytes acknowledged between checkpoints of a slow connection.
    pub slow_bytes: u64,
    /// Longest time between checkpoints while bytes are acknowledged.
    pub interval: Duration,
    /// How long a connection rests before it is parked (kept as its
    /// checkpoint alone, `super::parking`); `None`: never.
    pub park_after: Option<Duration>,
}

impl Cadence {
    /// From the `[checkpoint]` section.
    pub fn from_config(c: &baton_config::CheckpointConfig) -> Cadence {
        Cadence {
            fast_bytes: c.fast_bytes,
            slow_bytes: c.slow_bytes,
            interval: Duration::from_millis(c.interval_ms),
            park_after: (c.park_idle_after_ms > 0)
                .then(|| Duration::from_millis(c.park_idle_after_ms)),
        }
    }

    /// Bytes between checkpoints at throughput `rate` (bytes/s).
    fn bytes_at(&self, rate: f32) -> u64 {
        if rate >= FAST_RATE {
            self.fast_bytes
        } else {
            self.slow_bytes
        }
    }
}

/// What the checkpointer keeps per connection: 20 bytes (32 with its key
/// in the checkpointer's slab, where a `u64` instant and rate took 48; one
/// per connection slot, issue 19).
#[derive(Debug)]
pub(super) struct ConnState {
    pub(super) slot: SlotId,
    pub(super) last_una: SeqNum,
    /// The client's bytes the last `Cover::All` write covered.
    pub(super) covered: SeqNum,
    /// When the last write went, on the checkpointer's [`Micros`] clock.
    last_us: u32,
    /// Acknowledged bytes per second, exponentially averaged per checkpoint.
    rate: f32,
}

/// A worker's microsecond clock for [`ConnState`]: 32 bits, wrapping every
/// 71 minutes. Only differences are taken, so a connection with no write
/// for longer sees a shorter gap: its next interval write comes at most
/// one interval late, and one rate sample is off.
#[derive(Debug, Clone, Copy)]
pub(super) struct Micros(Instant);

impl Micros {
    pub(super) fn new(now: Instant) -> Micros {
        Micros(now)
    }

    pub(super) fn at(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.0).as_micros() as u32
    }
}

impl ConnState {
    /// A connection's first record, written at `now_us` into `slot`.
    pub(super) fn new(slot: SlotId, una: SeqNum, covered: SeqNum, now_us: u32) -> ConnState {
        ConnState {
            slot,
            last_una: una,
            covered,
            last_us: now_us,
            rate: 0.0,
        }
    }

    /// A write at `now_us` with `una` acknowledged: samples the rate since
    /// the last one (a write with nothing acknowledged is a zero sample
    /// only if `zero_samples`).
    pub(super) fn advance(&mut self, una: SeqNum, now_us: u32, zero_samples: bool) {
        let acked = bytes_between(self.last_una, una);
        let elapsed_us = now_us.wrapping_sub(self.last_us);
        if elapsed_us > 0 && (acked > 0 || zero_samples) {
            let sample = acked as f32 * 1e6 / elapsed_us as f32;
            self.rate = if self.rate == 0.0 {
                sample
            } else {
                0.75 * self.rate + 0.25 * sample
            };
        }
        self.last_una = una;
        self.last_us = now_us;
    }

    /// Whether `cadence` calls for a write at `now_us` with `una`
    /// acknowledged.
    pub(super) fn due(&self, cadence: &Cadence, una: SeqNum, now_us: u32) -> bool {
        let acked = bytes_between(self.last_una, una);
        let elapsed = Duration::from_micros(u64::from(now_us.wrapping_sub(self.last_us)));
        acked >= cadence.bytes_at(self.rate) || (acked > 0 && elapsed >= cadence.interval)
    }
}

/// Bytes from `from` to `to` (0 if `to` is not after `from`).
pub(super) fn bytes_between(from: SeqNum, to: SeqNum) -> u64 {
    (to - from).max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const CADENCE: Cadence = Cadence {
        fast_bytes: 100_000,
        slow_bytes: 10_000,
        interval: Duration::from_millis(200),
        park_after: None,
    };

    #[test]
    fn a_conn_state_is_20_bytes_and_its_slab_slot_32() {
        use baton_dataplane::flow::ConnId;
        assert_eq!(std::mem::size_of::<ConnState>(), 20);
        assert_eq!(std::mem::size_of::<Option<(ConnId, ConnState)>>(), 32);
    }

    #[test]
    fn a_fast_transfer_s_sub_millisecond_writes_keep_its_fast_cadence() {
        // 100 KB acknowledged every 80 us: 1.25 GB/s.
        let mut c = ConnState::new(SlotId(0), SeqNum(0), SeqNum(0), 1_000);
        let mut una = SeqNum(0);
        for i in 1..=4u32 {
            una += 100_000;
            c.advance(una, 1_000 + 80 * i, true);
        }
        assert!(c.rate > 1e9, "{}", c.rate);
        assert!(!c.due(&CADENCE, una + 50_000, 1_400), "fast: 100 KB apart");
        assert!(c.due(&CADENCE, una + 100_000, 1_400));
    }

    #[test]
    fn a_slow_one_is_written_every_slow_bytes_or_interval() {
        let mut c = ConnState::new(SlotId(0), SeqNum(0), SeqNum(0), 0);
        c.advance(SeqNum(1_000), 1_000_000, true); // 1 KB/s
        assert!(c.due(&CADENCE, SeqNum(11_000), 1_000_001));
        assert!(!c.due(&CADENCE, SeqNum(2_000), 1_100_000), "100 ms, 1 KB");
        assert!(c.due(&CADENCE, SeqNum(2_000), 1_200_000), "the interval");
        assert!(
            !c.due(&CADENCE, SeqNum(1_000), 9_000_000),
            "nothing acknowledged"
        );
    }

    #[test]
    fn the_clock_wraps_and_differences_stay_right() {
        let mut c = ConnState::new(SlotId(0), SeqNum(0), SeqNum(0), u32::MAX - 50_000);
        // 250 ms later, across the wrap.
        assert!(c.due(&CADENCE, SeqNum(1), 200_000));
        c.advance(SeqNum(20_000), 200_000, true);
        assert!((c.rate - 80_000.0).abs() < 1.0, "{}", c.rate);
    }
}
