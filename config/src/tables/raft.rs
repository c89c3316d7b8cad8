//! `[raft]`: the embedded Raft that holds the agreed membership view when
//! the boxes share no segment (`checkpoint.mode = "replicated"`; issue #21,
//! `docs/MEMBERSHIP.md`). Ignored in shared mode, where the view lives in
//! the segment.
//!
//! The rules within the table: the heartbeat is shorter than an election
//! timeout, and the quorum lease outlasts an election (a leader's crash
//! must not take every survivor's lease with it). The rule with
//! `[failure]` (a fenced box stops before its survivors act) is the
//! root's, in `super`.

use std::path::{Path, PathBuf};

use crate::convert::*;
use crate::model::*;
use crate::read::{Checker, Tbl};
use crate::schema::*;

table! {
    /// `[raft]`: the replicated mode's view Raft.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RaftConfig: Default {
        /// UDP port of the Raft on the back LAN, at each member's back_addr IP.
        port: u16 = or(DEFAULT_RAFT_PORT, int_in(1, 65535)),
        /// The Raft's state file (vote, log, snapshot); `None`: beside the
        /// segment, `segment_path` + `.raft` (see [`RaftConfig::state_path`]).
        state_path: Option<PathBuf> = opt(absolute_path),
        /// Leader heartbeat period, milliseconds.
        heartbeat_ms: u64 = or(DEFAULT_RAFT_HEARTBEAT_MS, positive),
        /// Election timeout, lower bound, milliseconds (> heartbeat_ms).
        election_min_ms: u64 = or(DEFAULT_RAFT_ELECTION_MIN_MS, positive),
        /// Election timeout, upper bound, milliseconds (> election_min_ms).
        election_max_ms: u64 = or(DEFAULT_RAFT_ELECTION_MAX_MS, positive),
        /// How long a box serves without a quorum's backing, milliseconds
        /// (>= 2 * election_max_ms + 2 * heartbeat_ms).
        lease_ms: u64 = or(DEFAULT_RAFT_LEASE_MS, positive),
        /// How long a starting box may serve before it first holds the
        /// lease (the cluster forming), milliseconds.
        startup_grace_ms: u64 = or(DEFAULT_RAFT_STARTUP_GRACE_MS, positive),
    }
    check = timings_in_order;
}

/// Heartbeat < election min < election max, and the lease outlasts an
/// election that follows a leader's crash: the followers' last proof is
/// up to two heartbeats old when the leader dies, and in openraft 0.9 a
/// follower stands only after its leader's lease (`election_max_ms`)
/// plus a random election timeout, so the new leader proves its quorum
/// up to `2 * election_max_ms` after the last heartbeat.
fn timings_in_order(c: &mut Checker<'_>, t: &Tbl<'_>, p: &mut Parts) -> bool {
    let (Some(hb), Some(min), Some(max), Some(lease)) = (
        p.heartbeat_ms,
        p.election_min_ms,
        p.election_max_ms,
        p.lease_ms,
    ) else {
        return true;
    };
    let mut ok = true;
    let mut bad = |c: &mut Checker<'_>, key: &str, msg: String| {
        let line = c.key_line(t, key);
        c.problem(line, t.key_path(key), msg);
        ok = false;
    };
    if min <= hb {
        bad(
            c,
            "election_min_ms",
            format!("expected more than raft.heartbeat_ms ({hb}), found {min}: followers would start elections between heartbeats"),
        );
    }
    if max <= min {
        bad(
            c,
            "election_max_ms",
            format!("expected more than raft.election_min_ms ({min}), found {max}"),
        );
    }
    let floor = max.saturating_mul(2).saturating_add(hb.saturating_mul(2));
    if lease < floor {
        bad(
            c,
            "lease_ms",
            format!("expected at least 2 * raft.election_max_ms + 2 * raft.heartbeat_ms ({floor}), found {lease}: a leader's crash would fence every survivor before a new leader is elected"),
        );
    }
    ok
}

impl RaftConfig {
    /// The state file: `state_path`, else `segment` with `.raft` appended.
    pub fn state_path(&self, segment: &Path) -> PathBuf {
        self.state_path.clone().unwrap_or_else(|| {
            let mut p = segment.as_os_str().to_owned();
            p.push(".raft");
            PathBuf::from(p)
        })
    }

    /// The shortest failure detection (`failure.heartbeat_interval_ms *
    /// failure.missed`) that lets a box cut off from the quorum stop
    /// before its survivors take it over: the lease, plus three
    /// heartbeat intervals. Its peers may have heard its last heartbeat
    /// up to an interval before the cut (heartbeats ship once per
    /// interval); it notices the lease is gone up to an interval after
    /// it ran out (the quorum guard's tick), and stopping its dataplane
    /// takes a few ms more. The follower's proof is dated late by the
    /// one-way delay on the back LAN, well under a millisecond.
    pub fn min_detection_ms(&self, heartbeat_interval_ms: u64) -> u64 {
        self.lease_ms
            .saturating_add(heartbeat_interval_ms.saturating_mul(3))
    }
}
