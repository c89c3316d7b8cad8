//! The quorum lease (replicated mode): a box that has not heard a quorum
//! of its Raft for the lease stops serving. It may be on the minority
//! side of a partition, where no new view reaches it: its peers may have
//! removed it and be taking its connections over. `check-config` makes
//! the failure detection outlast the lease by three intervals, so it has
//! stopped before they act (`docs/MEMBERSHIP.md`, "Fencing").
//!
//! A starting box has never heard a quorum: it serves for a start-up
//! grace while the cluster forms, and is judged by the lease from its
//! first quorum on. The rule ([`QuorumGuard`]) is pure, instants passed
//! in; [`spawn_quorum_guard`] polls the Raft on a thread of its own,
//! apart from the watcher, whose reads of the view wait on the leader
//! and must not delay a fence. It knows nothing of the view's members or
//! of takeovers.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use baton_raft::RaftStore;
use tracing::{info, warn};

use super::fence;
use super::handle::Control;
use super::view::RaftSnapshot;
use crate::sys::{pin_to_cpu, realtime_priority};

/// What the lease says this box must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LeaseDecision {
    /// A quorum backed it within the lease: serve.
    Serve,
    /// It never heard a quorum, but is still in its start-up grace.
    Forming,
    /// Stop serving, for this reason.
    Fence(String),
}

/// The lease rule for one incarnation.
#[derive(Debug)]
pub(crate) struct QuorumGuard {
    started: Instant,
    grace: Duration,
    lease: Duration,
    held_once: bool,
}

impl QuorumGuard {
    /// An incarnation started at `started`, with `lease` and a start-up
    /// `grace`.
    pub(crate) fn new(started: Instant, lease: Duration, grace: Duration) -> QuorumGuard {
        QuorumGuard {
            started,
            grace,
            lease,
            held_once: false,
        }
    }

    /// Whether it has heard a quorum since it started.
    pub(crate) fn held_once(&self) -> bool {
        self.held_once
    }

    /// The decision at `now`, given the age of the box's newest quorum
    /// proof (`None`: it never had one) and how long since the previous
    /// check (`gap`).
    ///
    /// A box whose checks were apart for the lease or longer was frozen
    /// (stopped, starved) for that long: its peers may have removed it
    /// meanwhile, and a proof it took since is no proof, since a follower
    /// dates the leader's proof when it reads the message, and messages
    /// queued while it was frozen read as fresh. It fences, whatever the
    /// proof says.
    pub(crate) fn check(
        &mut self,
        age: Option<Duration>,
        gap: Duration,
        now: Instant,
    ) -> LeaseDecision {
        if self.held_once && gap >= self.lease {
            return LeaseDecision::Fence(format!(
                "this box was frozen for {} ms, longer than its quorum lease ({} ms): its peers may have removed it meanwhile",
                gap.as_millis(),
                self.lease.as_millis()
            ));
        }
        match age {
            Some(a) if a < self.lease => {
                self.held_once = true;
                LeaseDecision::Serve
            }
            _ if !self.held_once => {
                let waited = now.saturating_duration_since(self.started);
                if waited < self.grace {
                    LeaseDecision::Forming
                } else {
                    LeaseDecision::Fence(format!(
                        "no quorum of the view's Raft heard in the {} ms start-up grace: this box cannot join the view",
                        self.grace.as_millis()
                    ))
                }
            }
            age => LeaseDecision::Fence(format!(
                "no quorum of the view's Raft heard for {} ms (lease {} ms): this box may be on the minority side of a partition, where no new view reaches it",
                age.map_or(0, |a| a.as_millis()),
                self.lease.as_millis()
            )),
        }
    }
}

/// Watches `raft`'s lease every `interval` until `stop`, for the
/// incarnation that started at `started` with a start-up `grace`; fences the box
/// (the dataplane stops, exit 3) when [`QuorumGuard`] says so, and keeps
/// the status's Raft snapshot fresh. A box that drained stays up, stopped.
pub(crate) fn spawn_quorum_guard(
    control: Arc<Control>,
    raft: Arc<RaftStore>,
    started: Instant,
    grace: Duration,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<thread::JoinHandle<()>> {
    let lease = raft.timings().lease;
    thread::Builder::new()
        .name("quorum".into())
        .spawn(move || {
            realtime_priority("quorum");
            pin_to_cpu("quorum", 1);
            let mut guard = QuorumGuard::new(started, lease, grace);
            let mut forming_logged = false;
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                let gap = now.saturating_duration_since(last);
                last = now;
                let snap = RaftSnapshot::of(&raft, now);
                control.view.update(|s| s.raft = Some(snap.clone()));
                let was_held = guard.held_once();
                match guard.check(raft.lease_age(now), gap, now) {
                    LeaseDecision::Serve if !was_held => info!(
                        leader = snap.leader,
                        term = snap.term,
                        "the view's Raft has a quorum: this box is fenced from now on if it loses it for {} ms",
                        lease.as_millis()
                    ),
                    LeaseDecision::Serve => {}
                    LeaseDecision::Forming if !forming_logged => {
                        forming_logged = true;
                        warn!(
                            grace_ms = grace.as_millis() as u64,
                            "no quorum of the view's Raft yet: serving while the cluster forms"
                        );
                    }
                    LeaseDecision::Forming => {}
                    LeaseDecision::Fence(why) => {
                        if control.is_draining() {
                            info!("{why}: this box drained, its workers are stopped already");
                            return;
                        }
                        warn!(
                            leader = snap.leader,
                            term = snap.term,
                            lease_age_ms = snap.lease_age_ms,
                            "quorum lease lost"
                        );
                        fence::stop_serving(&why, &control.dataplane);
                    }
                }
                thread::sleep(interval);
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const TICK: Duration = Duration::from_millis(30);

    fn guard(t0: Instant) -> QuorumGuard {
        QuorumGuard::new(t0, 600 * MS, 10_000 * MS)
    }

    #[test]
    fn a_box_that_hears_a_quorum_within_the_lease_serves() {
        let t0 = Instant::now();
        let mut g = guard(t0);
        assert_eq!(g.check(Some(50 * MS), TICK, t0 + MS), LeaseDecision::Serve);
        assert_eq!(
            g.check(Some(599 * MS), TICK, t0 + 700 * MS),
            LeaseDecision::Serve
        );
    }

    #[test]
    fn a_box_that_lost_its_quorum_for_the_lease_is_fenced_whatever_its_age() {
        let t0 = Instant::now();
        let mut g = guard(t0);
        assert_eq!(
            g.check(Some(10 * MS), TICK, t0 + 100 * MS),
            LeaseDecision::Serve
        );
        // Well within the start-up grace: having held the lease once, the
        // grace no longer applies.
        match g.check(Some(600 * MS), TICK, t0 + 700 * MS) {
            LeaseDecision::Fence(why) => {
                assert!(why.contains("for 600 ms (lease 600 ms)"), "{why}");
                assert!(why.contains("minority side of a partition"), "{why}");
            }
            other => panic!("expected a fence, got {other:?}"),
        }
    }

    #[test]
    fn a_booting_box_is_not_fenced_before_the_cluster_formed_but_only_for_the_grace() {
        let t0 = Instant::now();
        let mut g = guard(t0);
        assert_eq!(g.check(None, TICK, t0 + 5_000 * MS), LeaseDecision::Forming);
        assert_eq!(
            g.check(Some(900 * MS), TICK, t0 + 5_000 * MS),
            LeaseDecision::Forming,
            "a proof older than the lease (a leader's, from before this start) is not a quorum"
        );
        match g.check(None, TICK, t0 + 10_000 * MS) {
            LeaseDecision::Fence(why) => assert!(why.contains("start-up grace"), "{why}"),
            other => panic!("expected a fence, got {other:?}"),
        }
    }

    #[test]
    fn a_box_frozen_for_longer_than_its_lease_is_fenced_even_with_a_fresh_proof() {
        let t0 = Instant::now();
        let mut g = guard(t0);
        assert_eq!(
            g.check(Some(10 * MS), TICK, t0 + 100 * MS),
            LeaseDecision::Serve
        );
        assert_eq!(
            g.check(Some(10 * MS), 599 * MS, t0 + 700 * MS),
            LeaseDecision::Serve,
            "a stall shorter than the lease is survived"
        );
        // SIGSTOP for 1.5 s: the leader's queued heartbeat reads as fresh.
        match g.check(Some(MS), 1_500 * MS, t0 + 2_200 * MS) {
            LeaseDecision::Fence(why) => assert!(why.contains("frozen for 1500 ms"), "{why}"),
            other => panic!("expected a fence, got {other:?}"),
        }
    }

    #[test]
    fn the_first_quorum_ends_the_grace() {
        let t0 = Instant::now();
        let mut g = guard(t0);
        assert_eq!(g.check(None, TICK, t0 + MS), LeaseDecision::Forming);
        assert_eq!(g.check(Some(MS), TICK, t0 + 2 * MS), LeaseDecision::Serve);
        assert!(g.held_once());
        assert!(matches!(
            g.check(None, TICK, t0 + 3 * MS),
            LeaseDecision::Fence(_)
        ));
    }
}
