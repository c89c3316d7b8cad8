//! Fencing: a box its peers have taken over must stop serving at once, as
//! a crash would have, or its clients meet two senders and its
//! retransmissions end in resets.
//!
//! With an agreed view the sign is the view itself: a committed view
//! without this incarnation (`baton_membership::Fence`, acted on in
//! `super::agreed`). Without one (replicated segments, until the Raft
//! store lands) the sign is a live peer answering for one of this box's
//! own addresses after it went unheard for longer than detection
//! ([`claimed`]). The rules are pure; [`stop_serving`] carries a fence out.
use std::net::IpAddr;
use std::thread;
use std::time::Duration;

use baton_dataplane::DataplaneHandle;
use baton_shmem::{BoxInfo, BoxState};

/// What this box does about its peers' entries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Verdict {
    /// Nothing says it was taken over.
    CarryOn,
    /// Taken over: stop serving now.
    Fence,
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

/// Carries out `verdict` for the box whose entry is `me`, `why` naming
/// the sign.
pub(crate) fn apply(verdict: Verdict, me: &BoxInfo, dataplane: &DataplaneHandle, why: &str) {
    if verdict == Verdict::Fence {
        stop_serving(&format!("{why} (epoch {})", me.epoch), dataplane);
    }
}

/// Stops serving at once: the survivors serve our connections now. The
/// dataplane stops and the process exits with status 3, as a crash
/// would have (a supervisor restarts it as a new incarnation).
pub(crate) fn stop_serving(why: &str, dataplane: &DataplaneHandle) -> ! {
    tracing::error!(
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
