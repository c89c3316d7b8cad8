//! Fencing: a box its peers have taken over must stop serving at once, as
//! a crash would have, or its clients meet two senders and its
//! retransmissions end in resets.
//!
//! Two signs say a box was taken over: its own box table entry marked dead
//! by a survivor ([`declared_dead`]), or — where no peer can mark the
//! entry (a replicated segment) — a live peer answering for one of its
//! own addresses after it went unheard for longer than detection
//! ([`claimed`]). The rules are pure; [`fence`] carries a verdict out.
use std::net::IpAddr;
use std::thread;
use std::time::Duration;

use baton_dataplane::DataplaneHandle;
use baton_shmem::{BoxInfo, BoxState, Region};

/// What this box does about its own entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Verdict {
    /// Nothing says it was taken over.
    CarryOn,
    /// A verdict on the previous incarnation landed just after this one
    /// started: clear the mark, do not obey it.
    ClearLateMark,
    /// Taken over: stop serving now.
    Fence,
}

/// A peer marked this box dead. `settled`: the box has run for longer than
/// twice the detection time; before that a `dead` mark can only be a
/// survivor's verdict on the previous incarnation (it read the epoch a
/// moment before our restart).
pub(crate) fn declared_dead(me: &BoxInfo, settled: bool) -> Verdict {
    if me.state != BoxState::Dead {
        Verdict::CarryOn
    } else if settled {
        Verdict::Fence
    } else {
        Verdict::ClearLateMark
    }
}

/// A live peer's entry `peer` lists one of `own_ips`, seen after this box
/// was silent for longer than detection. Not while this box drains: its
/// peers take its addresses on purpose then.
pub(crate) fn claimed(me: &BoxInfo, peer: &BoxInfo, own_ips: &[IpAddr]) -> Verdict {
    let ours = peer.service_ips.iter().any(|ip| own_ips.contains(ip));
    if ours && me.state != BoxState::Draining {
        Verdict::Fence
    } else {
        Verdict::CarryOn
    }
}

/// Carries out `verdict` for the box of `region`, whose entry is `me`,
/// `why` naming the sign. A fenced box stops its dataplane and exits with
/// status 3.
pub(crate) fn apply(
    verdict: Verdict,
    me: &BoxInfo,
    region: &Region,
    dataplane: &DataplaneHandle,
    why: &str,
) {
    match verdict {
        Verdict::CarryOn => {}
        Verdict::ClearLateMark => {
            tracing::info!(
                "a peer's verdict on this box's previous incarnation arrived late: ignored"
            );
            region.set_state(BoxState::Rejoined);
        }
        Verdict::Fence => fence(me.epoch, dataplane, why),
    }
}

/// Stops serving at once: the survivors serve our connections now.
fn fence(epoch: u32, dataplane: &DataplaneHandle, why: &str) -> ! {
    tracing::error!(
        epoch,
        "{why}: its survivors serve our connections now; fencing this box (the dataplane stops, the process exits with status 3)"
    );
    dataplane.shutdown();
    thread::sleep(Duration::from_millis(20));
    std::process::exit(3);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: BoxState, ips: &[&str]) -> BoxInfo {
        BoxInfo {
            heartbeat: 1,
            heartbeat_ms: 0,
            state,
            epoch: 3,
            mac: [0; 6],
            service_ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            connections: 0,
            checkpoints: 0,
        }
    }

    #[test]
    fn a_settled_box_marked_dead_fences_itself() {
        let me = entry(BoxState::Dead, &[]);
        assert_eq!(declared_dead(&me, true), Verdict::Fence);
    }

    #[test]
    fn a_dead_mark_in_a_new_incarnations_first_moments_is_cleared_not_obeyed() {
        let me = entry(BoxState::Dead, &[]);
        assert_eq!(declared_dead(&me, false), Verdict::ClearLateMark);
    }

    #[test]
    fn an_unmarked_box_carries_on() {
        for state in [BoxState::Alive, BoxState::Rejoined, BoxState::Draining] {
            assert_eq!(declared_dead(&entry(state, &[]), true), Verdict::CarryOn);
        }
    }

    #[test]
    fn a_live_peer_answering_for_our_address_fences_us_unless_we_drain() {
        let own: Vec<IpAddr> = vec!["198.18.0.11".parse().unwrap()];
        let peer = entry(BoxState::Alive, &["198.18.0.12", "198.18.0.11"]);
        assert_eq!(
            claimed(&entry(BoxState::Alive, &[]), &peer, &own),
            Verdict::Fence
        );
        assert_eq!(
            claimed(&entry(BoxState::Draining, &[]), &peer, &own),
            Verdict::CarryOn,
            "a draining box hands its addresses over on purpose"
        );
    }

    #[test]
    fn a_peer_with_only_its_own_addresses_claims_nothing() {
        let own: Vec<IpAddr> = vec!["198.18.0.11".parse().unwrap()];
        let peer = entry(BoxState::Alive, &["198.18.0.12"]);
        assert_eq!(
            claimed(&entry(BoxState::Alive, &[]), &peer, &own),
            Verdict::CarryOn
        );
    }
}
