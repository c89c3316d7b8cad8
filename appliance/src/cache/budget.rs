//! The cache's memory budget as it applies to objects still being fetched
//! (SECURITY.md, "Memory limits"): their bytes count against
//! `cache.memory_bytes` like stored objects' do, so many concurrent misses
//! for big objects cannot grow memory past it unnoticed.
//!
//! The cache's index implements [`FillAccount`]: each chunk a fetcher adds
//! to an object is reported ([`FillAccount::grew`]); when stored and
//! in-flight bytes together pass the budget, completed objects are evicted
//! (LRU) first; if that is not enough the object becomes pass-through (its
//! readers get it, the cache does not keep it) and its fill is paced: the
//! fetcher stops reading the origin while the object is more than
//! [`PACE_LAG`] ahead of its fastest reader ([`pace`]), and gives the fill
//! up when no reader moved for the origin timeout (a client that never
//! reads does not hold a fetcher, nor memory, for ever).
//!
//! This module knows objects' byte counts and time, not the index, the
//! fetcher's sockets, nor clients.

use std::time::{Duration, Instant};

/// What an object reports its growth to (the cache's index).
pub trait FillAccount: Send + Sync {
    /// A fetcher added `n` bytes to an object; returns true when the
    /// budget is passed even after evicting: the object is then
    /// pass-through.
    fn grew(&self, n: u64) -> bool;
    /// Whether stored and in-flight bytes together pass the budget now.
    fn over(&self) -> bool;
    /// A fill was held back (once per pause: a fill may pause many times)
    /// or given up.
    fn paced(&self, abandoned: bool);
}

/// Over the budget, a fill may run this far ahead of its fastest reader:
/// a reader that keeps up is never slowed, one that does not read costs at
/// most this much.
pub const PACE_LAG: u64 = 2 << 20;

/// How often a paced fetcher looks again.
pub const PACE_POLL: Duration = Duration::from_millis(2);

/// What a fetcher does with a fill after adding a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Read on.
    Go,
    /// Wait for a reader (or for the budget to free).
    Wait,
    /// No reader moved for the whole timeout: give the fill up.
    Abandon,
}

/// The rule: read on under the budget or while the fastest reader is
/// within [`PACE_LAG`]; else wait, for at most `timeout` without reader
/// progress (`stalled`).
pub fn pace(over: bool, filled: u64, read: u64, stalled: Duration, timeout: Duration) -> Pace {
    if !over || filled.saturating_sub(read) <= PACE_LAG {
        Pace::Go
    } else if stalled >= timeout {
        Pace::Abandon
    } else {
        Pace::Wait
    }
}

/// Waits (on the fetcher's thread) while [`pace`] says so, watching the
/// budget (`over`), the bytes filled and the furthest byte read; returns
/// [`Pace::Go`] at once when there is nothing to wait for, [`Pace::Wait`]
/// after a wait that ended well, [`Pace::Abandon`] when no reader moved
/// for `timeout`.
pub fn wait_for_reader(
    over: impl Fn() -> bool,
    filled: impl Fn() -> u64,
    read: impl Fn() -> u64,
    timeout: Duration,
) -> Pace {
    let mut mark = read();
    let mut since = Instant::now();
    let mut waited = false;
    loop {
        let now = Instant::now();
        let r = read();
        if r != mark {
            (mark, since) = (r, now);
        }
        match pace(
            over(),
            filled(),
            r,
            now.saturating_duration_since(since),
            timeout,
        ) {
            Pace::Go if waited => return Pace::Wait,
            Pace::Wait => {
                waited = true;
                std::thread::sleep(PACE_POLL);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[test]
    fn under_the_budget_a_fill_never_waits() {
        assert_eq!(pace(false, 100 << 20, 0, T * 2, T), Pace::Go);
    }

    #[test]
    fn over_the_budget_a_fill_keeps_within_reach_of_its_fastest_reader() {
        assert_eq!(pace(true, PACE_LAG, 0, Duration::ZERO, T), Pace::Go);
        assert_eq!(pace(true, PACE_LAG + 1, 0, Duration::ZERO, T), Pace::Wait);
        // A reader that catches up lets it go on.
        assert_eq!(pace(true, 10 << 20, (10 << 20) - 1, T, T), Pace::Go);
    }

    #[test]
    fn a_fill_nobody_reads_is_given_up_after_the_timeout() {
        // Virtual time: the fetcher measures `stalled` from the last
        // reader progress it saw.
        let mut stalled = Duration::ZERO;
        let mut steps = 0;
        while pace(true, 64 << 20, 0, stalled, T) == Pace::Wait {
            stalled += PACE_POLL;
            steps += 1;
        }
        assert_eq!(pace(true, 64 << 20, 0, stalled, T), Pace::Abandon);
        assert_eq!(steps, (T.as_millis() / PACE_POLL.as_millis()) as usize);
    }
}
