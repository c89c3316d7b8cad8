//! The measured figure: commit latency of one proposal on loopback, from
//! the leader and from a follower (one forward each way), over 200
//! proposals each. Printed, and bounded loosely so a regression by an
//! order of magnitude fails. Run with `--no-capture` to see the figures.

mod common;

use std::time::{Duration, Instant};

use baton_membership::{Member, Reason, ViewStore};
use common::{secs, Cluster};

const N: u32 = 200;

fn measure(c: &Cluster, from: u16) -> Vec<Duration> {
    let store = c.node(from);
    let mut times = Vec::with_capacity(N as usize);
    let mut view = store.read().unwrap_or_else(|e| panic!("{e}"));
    for epoch in 1..=N {
        let me = Member { id: from, epoch };
        let reason = Reason::Joined(me);
        let members = reason.apply(&view.members);
        let t = Instant::now();
        view = store
            .propose(from, view.number, &members, reason)
            .unwrap_or_else(|e| panic!("proposal {epoch} from box {from}: {e}"));
        times.push(t.elapsed());
    }
    times.sort();
    times
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[test]
fn commit_latency_of_one_proposal_on_loopback() {
    let c = Cluster::start("latency", 3);
    let leader = c.leader(&[1, 2, 3], secs(10));
    let follower = if leader == 1 { 2 } else { 1 };
    for (who, id) in [("leader", leader), ("follower", follower)] {
        let t = measure(&c, id);
        let (p50, p99) = (pct(&t, 50), pct(&t, 99));
        eprintln!(
            "raft commit latency from the {who}, {N} proposals, 3 voters on loopback: p50 {:?} p99 {:?} max {:?}",
            p50,
            p99,
            t[t.len() - 1]
        );
        assert!(p50 < Duration::from_millis(100), "p50 {p50:?}");
    }
}
