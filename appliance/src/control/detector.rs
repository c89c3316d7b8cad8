//! The failure detector: what this box believes of each peer, from the
//! peers' box table entries and the time it is handed.
//!
//! Pure: no thread, no clock, no segment. The watcher (`super::watcher`)
//! reads the box table and the clock and feeds them in; the rules — a
//! peer silent for longer than the detection time is dead, a new epoch is
//! a new member, a draining peer is gone at once, a watcher that was itself
//! starved judges nobody — are tested here with times as numbers.
//!
//! The detector only gives verdicts ([`verdict_on`]): the agreed view's
//! store (`super::view`) decides who is dead, once for everybody.
use std::time::Duration;

use baton_membership::{Member, Verdict};
use baton_shmem::{BoxInfo, BoxState};

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

/// How long each peer has been silent, by the clock it is measured with.
pub(crate) struct PeerTracker {
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

impl PeerTracker {
    /// Tracks the peers `ids`, ages measured by `clock`.
    pub(crate) fn new(ids: &[u16], clock: HeartbeatClock) -> Self {
        Self {
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
    fn across_hosts_a_peer_is_judged_by_its_counter_on_our_clock_not_by_its_clock() {
        let m = member(2, 1);
        // Its clock 10 s ahead: by its timestamps it would never die.
        let mut t = PeerTracker::new(&[2], HeartbeatClock::Counter);
        let ahead = 10_000;
        let silent = |t: &mut PeerTracker, counter, at, now| {
            let i = beat(1, counter, at);
            let s = t.silence_ms(2, &i, now);
            (s, verdict_on(m, &i, s, 90).is_some())
        };
        assert_eq!(silent(&mut t, 7, 1000 + ahead, 1000), (0, false));
        assert_eq!(silent(&mut t, 8, 1030 + ahead, 1030), (0, false));
        assert_eq!(silent(&mut t, 8, 1030 + ahead, 1100), (70, false));
        assert_eq!(
            silent(&mut t, 8, 1030 + ahead, 1121),
            (91, true),
            "silent 91 ms by our clock since its counter last moved"
        );
        // Its clock 10 s behind: alive as long as its counter moves.
        let mut t = PeerTracker::new(&[2], HeartbeatClock::Counter);
        let behind = 10_000;
        assert_eq!(
            silent(&mut t, 1, 100_000 - behind, 100_000),
            (behind, true),
            "first sight: its time says stale"
        );
        for (i, now) in (100_030..100_400).step_by(30).enumerate() {
            assert_eq!(silent(&mut t, 2 + i as u64, now - behind, now), (0, false));
        }
    }

    #[test]
    fn on_one_host_a_peer_is_judged_by_the_time_it_wrote() {
        let mut t = PeerTracker::new(&[2], HeartbeatClock::PeerTime);
        assert_eq!(t.silence_ms(2, &info(1, 1000), 1091), 91);
        assert_eq!(t.silence_ms(2, &info(1, 1000), 900), 0);
    }

    #[test]
    fn a_slot_never_used_is_no_peer_at_all() {
        let mut unused = info(0, 0);
        unused.state = BoxState::Unused;
        assert_eq!(verdict_on(member(2, 0), &unused, 1_000_000, 90), None);
    }
}
