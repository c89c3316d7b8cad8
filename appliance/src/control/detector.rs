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
/// more than two intervals after it went to sleep (`tick_gap`; the
/// previous tick's own work does not count), or its own heartbeat is
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

/// How long each peer has been silent, measured without any box's wall
/// clock: a peer's heartbeat counter (which it increments at every beat,
/// in the shared segment or mirrored by replication) observed against this
/// box's own monotonic clock. Judging by the time a peer wrote would
/// compare two wall clocks (across hosts in replicated mode; in shared mode
/// the host's one clock, which NTP or an operator may step): a clock ahead,
/// or stepped back, hides a death for as long as the difference; a clock
/// behind, or stepped forward, fakes one.
pub(crate) struct PeerTracker {
    /// Per peer: its heartbeat counter when last seen to change, and our
    /// monotonic time of that change.
    beats: Vec<(u16, Option<(u64, u64)>)>,
    /// Per peer: the incarnation last judged as the view's member, and our
    /// monotonic time when it was first judged.
    members: Vec<(u16, Member, u64)>,
}

impl PeerTracker {
    /// Tracks the peers `ids`.
    pub(crate) fn new(ids: &[u16]) -> Self {
        Self {
            beats: ids.iter().map(|&id| (id, None)).collect(),
            members: Vec::new(),
        }
    }

    /// How long `member` of the agreed view has been silent, in ms, at
    /// `now_ms`: its entry's silence ([`Self::silence_ms`]), but never
    /// longer than this box has judged that incarnation. A restarted box's
    /// join can be committed (through the view's store) before its first
    /// beat reaches this box (replication, a loaded machine): its entry's
    /// counter is then still the dead predecessor's, whose silence is not
    /// the new member's. A new member gets one detection time from here.
    pub(crate) fn member_silence_ms(&mut self, member: Member, info: &BoxInfo, now_ms: u64) -> u64 {
        let silent = self.silence_ms(member.id, info, now_ms);
        let since = match self.members.iter_mut().find(|(id, _, _)| *id == member.id) {
            Some((_, m, since)) if *m == member => *since,
            Some(entry) => {
                *entry = (member.id, member, now_ms);
                now_ms
            }
            None => {
                self.members.push((member.id, member, now_ms));
                now_ms
            }
        };
        silent.min(now_ms.saturating_sub(since))
    }

    /// How long peer `id` has been silent, in ms, at `now_ms` of this box's
    /// monotonic clock (any origin, never stepped). The first sight of a
    /// peer counts as a beat: the detector then judges a box that was
    /// already dead one detection time after this box started watching,
    /// rather than believe a timestamp from another clock. An id that is
    /// not tracked is never silent.
    pub(crate) fn silence_ms(&mut self, id: u16, info: &BoxInfo, now_ms: u64) -> u64 {
        let Some((_, beat)) = self.beats.iter_mut().find(|(p, _)| *p == id) else {
            return 0;
        };
        match beat {
            Some((counter, at)) if *counter == info.heartbeat => now_ms.saturating_sub(*at),
            _ => {
                *beat = Some((info.heartbeat, now_ms));
                0
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
            load: None,
        }
    }

    /// Drives a tracker on virtual time: each step is (counter the peer
    /// wrote, the time it wrote with it, our monotonic now); returns the
    /// silence and whether the member is judged (detection 90 ms).
    fn judge(t: &mut PeerTracker, counter: u64, wrote_ms: u64, now: u64) -> (u64, bool) {
        let i = beat(1, counter, wrote_ms);
        let s = t.silence_ms(2, &i, now);
        (s, verdict_on(member(2, 1), &i, s, 90).is_some())
    }

    #[test]
    fn a_peer_is_judged_by_its_counter_on_our_monotonic_clock_whatever_its_clock_says() {
        for skew in [-10_000i64, 0, 10_000, 3_600_000] {
            let wrote = |at: u64| at.saturating_add_signed(skew);
            let mut t = PeerTracker::new(&[2]);
            assert_eq!(
                judge(&mut t, 7, wrote(1000), 1000),
                (0, false),
                "first sight"
            );
            assert_eq!(judge(&mut t, 8, wrote(1030), 1030), (0, false));
            assert_eq!(judge(&mut t, 8, wrote(1030), 1100), (70, false));
            assert_eq!(
                judge(&mut t, 8, wrote(1030), 1121),
                (91, true),
                "silent 91 ms by our clock since its counter last moved (skew {skew})"
            );
        }
    }

    #[test]
    fn a_stepped_wall_clock_neither_fakes_nor_hides_a_death() {
        // Shared mode: one host, one wall clock, stepped by NTP or by hand
        // while the peer beats every 30 ms. Stepped forward an hour: by the
        // peer's timestamps every peer would look an hour silent (a false
        // death); back an hour: a dead peer would look alive for an hour.
        let mut t = PeerTracker::new(&[2]);
        let mut counter = 1;
        let mut wall = 1_700_000_000_000u64;
        for now in (0..3000).step_by(30) {
            if now == 1500 {
                wall += 3_600_000;
            }
            wall += 30;
            counter += 1;
            assert_eq!(
                judge(&mut t, counter, wall, now),
                (0, false),
                "alive at {now}"
            );
        }
        // The peer dies after its beat seen at 2970; the clock is stepped
        // back an hour at once.
        wall -= 3_600_000;
        for now in (2980..=3060).step_by(10) {
            assert!(!judge(&mut t, counter, wall, now).1, "not yet at {now}");
        }
        assert_eq!(
            judge(&mut t, counter, wall, 3061),
            (91, true),
            "dead 91 ms after its last beat, the stepped clock notwithstanding"
        );
    }

    #[test]
    fn a_new_incarnation_whose_join_beats_its_first_heartbeat_here_is_not_charged_its_predecessor_s_silence(
    ) {
        let mut t = PeerTracker::new(&[2]);
        let old = member(2, 1);
        assert_eq!(t.member_silence_ms(old, &beat(1, 7, 0), 1000), 0);
        // Epoch 1 dies after its beat 7; it is judged, then removed.
        assert_eq!(t.member_silence_ms(old, &beat(1, 7, 0), 1900), 900);
        // Epoch 2's join is committed while its entry here still shows
        // epoch 1's last beat: not silent 1,388 ms, just now a member.
        let new = member(2, 2);
        assert_eq!(t.member_silence_ms(new, &beat(1, 7, 0), 2388), 0);
        assert_eq!(t.member_silence_ms(new, &beat(1, 7, 0), 2450), 62);
        // Its beats arrive: judged by them from then on.
        assert_eq!(t.member_silence_ms(new, &beat(2, 1, 0), 2460), 0);
        assert_eq!(t.member_silence_ms(new, &beat(2, 1, 0), 2500), 40);
        // A new member that never beats is judged one detection time
        // after its join was seen.
        let mut t = PeerTracker::new(&[2]);
        assert_eq!(t.member_silence_ms(old, &beat(1, 7, 0), 0), 0);
        assert_eq!(t.member_silence_ms(new, &beat(1, 7, 0), 5000), 0);
        let s = t.member_silence_ms(new, &beat(1, 7, 0), 5091);
        assert!(verdict_on(new, &beat(1, 7, 0), s, 90).is_some());
    }

    #[test]
    fn an_untracked_id_is_never_silent() {
        let mut t = PeerTracker::new(&[2]);
        assert_eq!(t.silence_ms(5, &info(1, 0), 1_000_000), 0);
    }

    #[test]
    fn a_slot_never_used_is_no_peer_at_all() {
        let mut unused = info(0, 0);
        unused.state = BoxState::Unused;
        assert_eq!(verdict_on(member(2, 0), &unused, 1_000_000, 90), None);
    }
}
