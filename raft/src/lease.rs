//! The quorum lease: when this box last knew that a quorum backed the
//! leader it is, or follows.
//!
//! A box that has not had that proof for `lease` must stop serving: it can
//! no longer learn that it was removed from the view. A leader gets the
//! proof from its peers' answers: a peer that accepted an AppendEntries
//! (any answer but a higher vote) backed it when that message was *sent*,
//! and once a majority of voters (counting itself) did so since an instant,
//! a quorum backed it then. A follower gets it from the leader: each
//! AppendEntries carries how long ago the leader's quorum proof was, so a
//! follower of a leader that lost its quorum (the old leader's side of a
//! partition) loses its lease with it instead of being kept alive by
//! heartbeats. The follower dates the proof by its own clock at receipt,
//! which is late by the one-way delay: a margin for `check-config`.
//!
//! Pure: instants come in as arguments. This module knows nothing of
//! openraft or sockets.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The newest quorum proof this box holds.
#[derive(Debug)]
pub struct Lease {
    voters: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The term whose acknowledgements `acks` holds.
    term: u64,
    /// Per peer, the send time of the newest message it accepted in `term`.
    acks: BTreeMap<u64, Instant>,
    quorum_at: Option<Instant>,
}

impl Lease {
    /// No proof yet, among `voters` voters.
    pub fn new(voters: usize) -> Lease {
        Lease {
            voters,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Each update is a single step; a panic elsewhere leaves it whole.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// As leader of `term`: `peer` accepted a message sent at `sent_at`.
    pub fn leader_ack(&self, term: u64, peer: u64, sent_at: Instant) {
        let mut i = self.lock();
        if term < i.term {
            return;
        }
        if term > i.term {
            i.term = term;
            i.acks.clear();
        }
        let at = i.acks.entry(peer).or_insert(sent_at);
        *at = (*at).max(sent_at);
        // A majority counting the leader itself: voters / 2 peers.
        let needed = self.voters / 2;
        let mut times: Vec<Instant> = i.acks.values().copied().collect();
        times.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&t) = needed.checked_sub(1).and_then(|k| times.get(k)) {
            i.quorum_at = Some(i.quorum_at.map_or(t, |q| q.max(t)));
        }
    }

    /// As follower: a leader's message received at `at` said its quorum
    /// proof was `age` old.
    pub fn follower_heard(&self, at: Instant, age: Duration) {
        if let Some(t) = at.checked_sub(age) {
            let mut i = self.lock();
            i.quorum_at = Some(i.quorum_at.map_or(t, |q| q.max(t)));
        }
    }

    /// How old the newest proof is at `now`; `None` if there never was one.
    pub fn age(&self, now: Instant) -> Option<Duration> {
        self.lock()
            .quorum_at
            .map(|t| now.saturating_duration_since(t))
    }

    /// The age as a leader's message carries it: ms, `u32::MAX` for none.
    pub fn age_ms(&self, now: Instant) -> u32 {
        self.age(now)
            .map_or(u32::MAX, |a| a.as_millis().min(u32::MAX as u128 - 1) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_leader_holds_the_proof_from_when_a_majority_last_accepted() {
        let t0 = Instant::now();
        let lease = Lease::new(5);
        lease.leader_ack(3, 2, t0);
        assert_eq!(
            lease.age(t0 + 10 * MS),
            None,
            "one peer and the leader are 2 of 5"
        );
        lease.leader_ack(3, 4, t0 + 5 * MS);
        assert_eq!(
            lease.age(t0 + 10 * MS),
            Some(10 * MS),
            "the older of the two acks"
        );
        lease.leader_ack(3, 2, t0 + 8 * MS);
        assert_eq!(lease.age(t0 + 10 * MS), Some(5 * MS));
    }

    #[test]
    fn acknowledgements_of_an_older_term_do_not_count_for_a_new_one() {
        let t0 = Instant::now();
        let lease = Lease::new(4);
        lease.leader_ack(1, 2, t0);
        lease.leader_ack(2, 3, t0 + MS);
        lease.leader_ack(1, 4, t0 + 2 * MS);
        assert_eq!(lease.age(t0 + 3 * MS), None, "2 of 4 voters in term 2");
    }

    #[test]
    fn a_follower_dates_the_leaders_proof_by_its_age() {
        let t0 = Instant::now();
        let lease = Lease::new(3);
        lease.follower_heard(t0 + 100 * MS, 30 * MS);
        assert_eq!(lease.age(t0 + 100 * MS), Some(30 * MS));
        lease.follower_heard(t0 + 200 * MS, Duration::from_millis(u32::MAX as u64));
        assert_eq!(
            lease.age(t0 + 200 * MS),
            Some(130 * MS),
            "an older proof never replaces a newer one"
        );
        assert_eq!(lease.age_ms(t0 + 200 * MS), 130);
    }
}
