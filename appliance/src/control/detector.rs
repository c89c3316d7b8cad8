//! The failure detector: what this box believes of each peer, from the
//! peers' box table entries and the time it is handed.
//!
//! Pure: no thread, no clock, no segment. The watcher (`super::watcher`)
//! reads the box table and the clock and feeds them in; the rules — a
//! peer silent for longer than the detection time is dead, a new epoch is
//! a new member, a draining peer is gone at once, a watcher that was itself
//! starved judges nobody — are tested here with times as numbers.
//!
//! With an agreed view (`super::view`) the detector only gives verdicts
//! ([`verdict_on`]): the view's store decides who is dead, once for
//! everybody. Without one (replicated segments, until the Raft store
//! lands) its transitions are acted on directly ([`PeerTracker::observe`]).
use std::time::Duration;

use baton_membership::{Member, Verdict};
use baton_shmem::{BoxInfo, BoxState};
use tracing::{info, warn};

/// Whether the watcher's tick shows its own box starved of CPU: it woke
/// more than two intervals after the last tick, or its own heartbeat is
/// more than two intervals old (5 ms of slack for an ordinary wakeup).
pub(crate) fn was_starved_tick(
    tick_gap: Duration,
    own_silence_ms: u64,
    interval: Duration,
) -> bool {
    let limit = interval * 2 + Duration::from_millis(5);
    tick_gap > limit || Duration::from_millis(own_silence_ms) > limit
}

/// The detector's verdict on `member` of the agreed view, whose box table
/// entry is `info` and has been silent for `silent_ms`: silent for longer
/// than the detection time, or draining (it asks to be taken over now).
/// An entry that holds a newer epoch than the view's member is judged by
/// its silence too: the member's incarnation is gone, but its region may
/// be written by the new one, which must be dead as well before anybody
/// takes the region over (a live new incarnation's join replaces the old
/// member instead). Repeated at every tick while it holds, as
/// `Membership::handle_verdict` expects.
pub(crate) fn verdict_on(
    member: Member,
    info: &BoxInfo,
    silent_ms: u64,
    deadline_ms: u64,
) -> Option<Verdict> {
    let draining = info.state == BoxState::Draining && info.epoch == member.epoch;
    let judged = info.state != BoxState::Unused && (draining || silent_ms > deadline_ms);
    judged.then_some(Verdict {
        peer: member,
        silent_for: Duration::from_millis(silent_ms),
    })
}

/// What this box believes of each peer: alive (with the epoch last seen) or
/// dead. A box is dead once its heartbeat is older than the detection time;
/// a new epoch means it restarted and is a new member.
pub(crate) struct PeerTracker {
    peers: Vec<(u16, PeerView)>,
    clock: HeartbeatClock,
    /// Per peer: its heartbeat counter when last seen to change, and our
    /// time of that change (for [`HeartbeatClock::Counter`]).
    beats: Vec<(u16, Option<(u64, u64)>)>,
}

/// How a heartbeat's age is measured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HeartbeatClock {
    /// From the time the peer wrote with its beat: boxes sharing one
    /// segment share one host and its clock, so this is exact.
    PeerTime,
    /// From when we last saw the peer's counter change, by our own clock:
    /// replicated segments may cross hosts whose clocks differ, and a
    /// peer's clock ahead of ours would otherwise hide its death.
    Counter,
}

/// A change in a peer's life the control core acts on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Transition {
    /// Declared dead: take its connections over.
    Died,
    /// Back with a new epoch after being dead: a new member.
    Rejoined,
}

/// One peer as this box believes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PeerView {
    /// Never seen alive.
    Unknown,
    /// Beating, in incarnation `epoch`.
    Alive { epoch: u32 },
    /// Declared dead in incarnation `epoch`: only a new epoch revives it.
    Dead { epoch: u32 },
}

impl PeerTracker {
    /// Tracks the peers `ids`, ages measured by `clock`.
    pub(crate) fn new(ids: &[u16], clock: HeartbeatClock) -> Self {
        Self {
            peers: ids.iter().map(|&id| (id, PeerView::Unknown)).collect(),
            clock,
            beats: ids.iter().map(|&id| (id, None)).collect(),
        }
    }

    /// How long peer `id` has been silent, in ms.
    pub(crate) fn silence_ms(&mut self, id: u16, info: &BoxInfo, now_ms: u64) -> u64 {
        let by_peer_time = now_ms.saturating_sub(info.heartbeat_ms);
        if self.clock == HeartbeatClock::PeerTime {
            return by_peer_time;
        }
        let Some((_, beat)) = self.beats.iter_mut().find(|(p, _)| *p == id) else {
            return by_peer_time;
        };
        match beat {
            Some((counter, at)) if *counter == info.heartbeat => now_ms.saturating_sub(*at),
            Some(b) => {
                *b = (info.heartbeat, now_ms);
                0
            }
            None => {
                // First sight: only the peer's own time can say whether
                // it beat lately (a box dead for an hour is not "alive
                // since now").
                *beat = Some((info.heartbeat, now_ms.saturating_sub(by_peer_time)));
                by_peer_time
            }
        }
    }

    /// Updates the view of peer `id`; says when it has just died or come back.
    pub(crate) fn observe(
        &mut self,
        id: u16,
        info: &BoxInfo,
        now_ms: u64,
        deadline_ms: u64,
    ) -> Option<Transition> {
        if info.state == BoxState::Unused {
            return None;
        }
        let silent_ms = self.silence_ms(id, info, now_ms);
        let (_, view) = self.peers.iter_mut().find(|(p, _)| *p == id)?;
        // A draining box has frozen its connections and asks to be taken
        // over now: for the survivors it is gone, without detection delay.
        let fresh = silent_ms <= deadline_ms && info.state != BoxState::Draining;
        let next = match (*view, fresh) {
            (PeerView::Dead { epoch }, true) if info.epoch == epoch => PeerView::Dead { epoch },
            (_, true) => PeerView::Alive { epoch: info.epoch },
            (PeerView::Alive { epoch }, false) => PeerView::Dead { epoch },
            (other, false) => other,
        };
        if next != *view {
            match next {
                PeerView::Alive { epoch } => info!(peer = id, epoch, "peer alive"),
                PeerView::Dead { epoch } if info.state == BoxState::Draining => {
                    info!(
                        peer = id,
                        epoch, "peer draining: taking its connections over"
                    )
                }
                PeerView::Dead { epoch } => warn!(
                    peer = id,
                    epoch, silent_ms, "peer declared dead: heartbeat missed"
                ),
                PeerView::Unknown => {}
            }
            let was_dead = matches!(*view, PeerView::Dead { .. });
            *view = next;
            return match next {
                PeerView::Dead { .. } => Some(Transition::Died),
                PeerView::Alive { .. } if was_dead => Some(Transition::Rejoined),
                _ => None,
            };
        }
        None
    }

    /// Whether peer `id` is believed alive.
    pub(crate) fn is_alive(&self, id: u16) -> bool {
        self.peers
            .iter()
            .any(|(p, v)| *p == id && matches!(v, PeerView::Alive { .. }))
    }

    /// The peers believed alive, and `me`.
    pub(crate) fn alive_with(&self, me: u16) -> Vec<u16> {
        let mut ids: Vec<u16> = self
            .peers
            .iter()
            .filter(|(_, v)| matches!(v, PeerView::Alive { .. }))
            .map(|(id, _)| *id)
            .collect();
        ids.push(me);
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u16, epoch: u32) -> Member {
        Member { id, epoch }
    }

    #[test]
    fn a_view_member_is_judged_once_silent_for_longer_than_detection_and_at_every_tick_after() {
        let m = member(3, 1);
        assert_eq!(verdict_on(m, &info(1, 0), 90, 90), None);
        for silent in [91, 500] {
            let v = verdict_on(m, &info(1, 0), silent, 90).expect("a verdict");
            assert_eq!(v.peer, m);
            assert_eq!(v.silent_for, Duration::from_millis(silent));
        }
    }

    #[test]
    fn a_draining_member_is_judged_at_once_but_not_a_new_incarnation_that_drains() {
        let mut draining = info(2, 0);
        draining.state = BoxState::Draining;
        assert!(verdict_on(member(3, 2), &draining, 0, 90).is_some());
        assert_eq!(verdict_on(member(3, 1), &draining, 0, 90), None);
    }

    #[test]
    fn a_restarted_member_is_judged_by_its_new_incarnations_silence() {
        // The view holds epoch 1; the entry is epoch 2's, beating: its join
        // replaces epoch 1, no removal (that would take over the region
        // the new incarnation writes).
        assert_eq!(verdict_on(member(3, 1), &info(2, 0), 10, 90), None);
        // Epoch 2 fell silent too: the region has no writer left.
        assert!(verdict_on(member(3, 1), &info(2, 0), 200, 90).is_some());
    }

    #[test]
    fn a_watcher_that_woke_late_or_whose_own_heartbeat_is_late_judges_nobody() {
        let i = Duration::from_millis(30);
        assert!(!was_starved_tick(Duration::from_millis(31), 29, i));
        assert!(!was_starved_tick(Duration::from_millis(65), 65, i));
        assert!(was_starved_tick(Duration::from_millis(120), 10, i));
        assert!(was_starved_tick(Duration::from_millis(30), 100, i));
    }

    fn info(epoch: u32, heartbeat_ms: u64) -> BoxInfo {
        beat(epoch, 1, heartbeat_ms)
    }

    fn beat(epoch: u32, counter: u64, heartbeat_ms: u64) -> BoxInfo {
        BoxInfo {
            heartbeat: counter,
            heartbeat_ms,
            state: BoxState::Alive,
            epoch,
            mac: [0; 6],
            service_ips: vec![],
            connections: 0,
            checkpoints: 0,
        }
    }

    #[test]
    fn peer_is_dead_after_the_detection_time_and_rejoins_with_a_new_epoch() {
        let mut t = PeerTracker::new(&[2], HeartbeatClock::PeerTime);
        assert_eq!(t.observe(2, &info(1, 1000), 1010, 90), None);
        assert_eq!(t.peers[0].1, PeerView::Alive { epoch: 1 });
        assert_eq!(t.alive_with(1), vec![1, 2]);
        assert_eq!(
            t.observe(2, &info(1, 1000), 1091, 90),
            Some(Transition::Died),
            "declared dead once"
        );
        assert_eq!(t.peers[0].1, PeerView::Dead { epoch: 1 });
        assert_eq!(t.alive_with(1), vec![1]);
        // A stale beat of the old incarnation never revives it.
        t.observe(2, &info(1, 1080), 1100, 90);
        assert_eq!(t.peers[0].1, PeerView::Dead { epoch: 1 });
        assert_eq!(
            t.observe(2, &info(2, 1200), 1210, 90),
            Some(Transition::Rejoined)
        );
        assert_eq!(t.peers[0].1, PeerView::Alive { epoch: 2 });
    }

    #[test]
    fn across_hosts_a_peer_is_judged_by_its_counter_on_our_clock_not_by_its_clock() {
        // Its clock 10 s ahead: by its timestamps it would never die.
        let mut t = PeerTracker::new(&[2], HeartbeatClock::Counter);
        let ahead = 10_000;
        assert_eq!(t.observe(2, &beat(1, 7, 1000 + ahead), 1000, 90), None);
        assert_eq!(t.observe(2, &beat(1, 8, 1030 + ahead), 1030, 90), None);
        assert_eq!(t.observe(2, &beat(1, 8, 1030 + ahead), 1100, 90), None);
        assert_eq!(
            t.observe(2, &beat(1, 8, 1030 + ahead), 1121, 90),
            Some(Transition::Died),
            "silent 91 ms by our clock since its counter last moved"
        );
        // Its clock 10 s behind: alive as long as its counter moves.
        let mut t = PeerTracker::new(&[2], HeartbeatClock::Counter);
        let behind = 10_000;
        assert_eq!(
            t.observe(2, &beat(1, 1, 100_000 - behind), 100_000, 90),
            None
        );
        assert_eq!(
            t.peers[0].1,
            PeerView::Unknown,
            "first sight: its time says stale"
        );
        for (i, now) in (100_030..100_400).step_by(30).enumerate() {
            assert_eq!(
                t.observe(2, &beat(1, 2 + i as u64, now - behind), now, 90),
                None
            );
            assert_eq!(t.peers[0].1, PeerView::Alive { epoch: 1 });
        }
    }

    #[test]
    fn a_draining_peer_is_gone_at_once_without_detection_delay() {
        let mut t = PeerTracker::new(&[2], HeartbeatClock::PeerTime);
        t.observe(2, &info(1, 1000), 1000, 90);
        let mut draining = info(1, 1000);
        draining.state = BoxState::Draining;
        assert_eq!(
            t.observe(2, &draining, 1001, 90),
            Some(Transition::Died),
            "its heartbeat is fresh, yet it is taken over now"
        );
    }

    #[test]
    fn a_slot_never_used_is_no_peer_at_all() {
        let mut t = PeerTracker::new(&[2], HeartbeatClock::PeerTime);
        let mut unused = info(0, 0);
        unused.state = BoxState::Unused;
        assert_eq!(t.observe(2, &unused, 1_000_000, 90), None);
        assert!(!t.is_alive(2));
    }

    #[test]
    fn a_peer_first_seen_long_silent_is_never_declared_dead_since_it_was_never_seen_alive() {
        // A box dead before this one started: nothing of it is ours to take
        // over by this transition (its survivors did, or will at its rejoin).
        let mut t = PeerTracker::new(&[2], HeartbeatClock::PeerTime);
        assert_eq!(t.observe(2, &info(1, 1000), 60_000, 90), None);
        assert_eq!(t.observe(2, &info(1, 1000), 61_000, 90), None);
        assert!(!t.is_alive(2));
        assert_eq!(t.alive_with(1), vec![1]);
    }

    #[test]
    fn a_peer_is_declared_dead_once_not_at_every_tick() {
        let mut t = PeerTracker::new(&[2], HeartbeatClock::PeerTime);
        t.observe(2, &info(1, 1000), 1000, 90);
        assert_eq!(
            t.observe(2, &info(1, 1000), 1091, 90),
            Some(Transition::Died)
        );
        assert_eq!(t.observe(2, &info(1, 1000), 1200, 90), None);
        assert_eq!(t.observe(2, &info(1, 1000), 5000, 90), None);
    }
}
