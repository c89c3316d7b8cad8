//! The worker's TCP buffer budget: one count of the bytes held in the send
//! and receive queues of all of a worker's connections, and the rule that
//! caps what a connection may add once the count reaches the budget
//! (`dataplane.tcp_buffer_budget`, SECURITY.md "Memory limits").
//!
//! The rule is Linux's `tcp_mem` with its per-socket minimum
//! (`tcp_wmem[0]`, `tcp_rmem[0]`): under the budget a connection uses its
//! whole `send_buffer` / `recv_buffer`; at or over it, every connection is
//! held to a small guaranteed floor ([`SEND_FLOOR`], [`RECV_FLOOR`]): the
//! application may queue no more response bytes beyond it (it is told again
//! through `Writable` when acknowledgements free space) and the receive
//! window opens no further than it. Nothing is dropped, reset or refused,
//! and the window never shrinks (RFC 9293 §3.8.6.2.2): a full budget slows
//! transfers, it does not stop them, so one client holding the budget
//! cannot lock the others out. New connections and restored ones (a
//! takeover) are accepted as usual, starting at the floor.
//!
//! Each queue holds a [`BufferBudget`] handle and reports what it adds and
//! frees (and frees the rest when dropped), so the count cannot drift from
//! the queues. One handle per worker: the atomics are never contended
//! (they are atomics only so a worker stays `Send`). This module knows
//! nothing of TCBs, the worker or the application.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes of send queue every connection may hold whatever the budget:
/// enough for a response header block and a few segments, so a connection
/// under pressure still makes progress (Linux `tcp_wmem[0]` is 4 KiB; ours
/// also covers a response header with a long `Location`).
pub const SEND_FLOOR: usize = 16 * 1024;
/// Receive window every connection may offer whatever the budget: a
/// request's header block in a few segments (Linux `tcp_rmem[0]`).
pub const RECV_FLOOR: usize = 4 * 1024;

#[derive(Debug, Default)]
struct Shared {
    limit: usize,
    used: AtomicUsize,
    send_limited: AtomicU64,
    window_limited: AtomicU64,
}

/// A worker's shared count of queued bytes and its limit (see the module
/// doc). Cloning shares the count; [`BufferBudget::fresh`] starts another.
#[derive(Debug, Clone)]
pub struct BufferBudget(Arc<Shared>);

impl Default for BufferBudget {
    fn default() -> Self {
        BufferBudget::new(usize::MAX)
    }
}

/// Two budgets are equal when their limits are (a config comparison).
impl PartialEq for BufferBudget {
    fn eq(&self, other: &Self) -> bool {
        self.0.limit == other.0.limit
    }
}

/// A snapshot of a budget, for the worker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetStats {
    /// Bytes held in queues now.
    pub used: u64,
    /// Times a send capacity was held to the floor by the budget.
    pub send_limited: u64,
    /// Times a receive window was held to the floor by the budget.
    pub window_limited: u64,
}

impl BufferBudget {
    /// A budget of `limit` bytes with nothing used.
    pub fn new(limit: usize) -> BufferBudget {
        BufferBudget(Arc::new(Shared {
            limit,
            ..Shared::default()
        }))
    }

    /// A new, empty count with the same limit (one per worker).
    pub fn fresh(&self) -> BufferBudget {
        BufferBudget::new(self.0.limit)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// Whether the budget is spent: connections are held to their floors.
    pub fn exhausted(&self) -> bool {
        self.used() >= self.0.limit
    }

    pub(crate) fn add(&self, n: usize) {
        if n > 0 {
            self.0.used.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn sub(&self, n: usize) {
        if n > 0 {
            // Every `sub` follows an `add` of at least as much by the same
            // queue, so this never wraps.
            self.0.used.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// What a connection holding `queued` send bytes, allowed `room` more
    /// by its own buffer, may queue now.
    pub(crate) fn send_room(&self, queued: usize, room: usize) -> usize {
        if room == 0 || !self.exhausted() {
            return room;
        }
        let floor = SEND_FLOOR.saturating_sub(queued).min(room);
        if floor < room {
            self.0.send_limited.fetch_add(1, Ordering::Relaxed);
        }
        floor
    }

    /// The receive window a connection holding `queued` received bytes,
    /// with `free` bytes of its own buffer left, may offer now.
    pub(crate) fn recv_room(&self, queued: usize, free: u32) -> u32 {
        if free == 0 || !self.exhausted() {
            return free;
        }
        let floor = u32::try_from(RECV_FLOOR.saturating_sub(queued))
            .unwrap_or(u32::MAX)
            .min(free);
        if floor < free {
            self.0.window_limited.fetch_add(1, Ordering::Relaxed);
        }
        floor
    }

    /// The count and the times it held connections back.
    pub fn stats(&self) -> BudgetStats {
        BudgetStats {
            used: self.used() as u64,
            send_limited: self.0.send_limited.load(Ordering::Relaxed),
            window_limited: self.0.window_limited.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_the_budget_a_connection_keeps_its_own_buffer() {
        let b = BufferBudget::new(100_000);
        b.add(99_999);
        assert_eq!(b.send_room(50_000, 200_000), 200_000);
        assert_eq!(b.recv_room(0, 65_536), 65_536);
        assert_eq!(b.stats().send_limited, 0);
    }

    #[test]
    fn at_the_budget_every_connection_is_held_to_its_floor() {
        let b = BufferBudget::new(100_000);
        b.add(100_000);
        assert!(b.exhausted());
        // An empty connection may still queue its floor…
        assert_eq!(b.send_room(0, 200_000), SEND_FLOOR);
        // …a full one nothing more, until acknowledgements free it.
        assert_eq!(b.send_room(SEND_FLOOR + 1, 200_000), 0);
        assert_eq!(b.recv_room(0, 65_536), RECV_FLOOR as u32);
        assert_eq!(b.recv_room(10_000, 65_536), 0);
        // A buffer smaller than the floor is not raised.
        assert_eq!(b.send_room(0, 100), 100);
        let s = b.stats();
        assert_eq!((s.used, s.send_limited, s.window_limited), (100_000, 2, 2));
        b.sub(1);
        assert_eq!(b.send_room(50_000, 200_000), 200_000);
    }

    #[test]
    fn a_fresh_budget_shares_the_limit_not_the_count() {
        let a = BufferBudget::new(10);
        a.add(10);
        let b = a.fresh();
        assert_eq!((b.limit(), b.used()), (10, 0));
        assert_eq!(a.clone().used(), 10);
    }
}
