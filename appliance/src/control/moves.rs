//! Planned moves: connections leave this box on purpose, with exact final
//! checkpoints and no detection delay — all of them (drain, for
//! maintenance), some to one box (migrate, for rebalancing), and the
//! receiving side (adopt).
//!
//! The workers freeze and hand off; this module only decides what moves
//! where and tells the other box through its admin API.
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use baton_dataplane::tcp::FourTuple;
use baton_dataplane::wire::ethernet::MacAddr;
use baton_dataplane::DataplaneError;
use baton_shmem::{BoxState, BoxTableError};
use tracing::{info, warn};

use super::bundle::{follows_the_address, movable_tuples};
use super::handle::Control;
use super::takeover::{orphans_in_slots, restore_paced};
use crate::admin::AdminError;
use crate::orphans::Orphan;

/// Why a planned move did not happen (or did not finish).
#[derive(Debug, thiserror::Error)]
pub(crate) enum MoveError {
    /// The workers refused the command.
    #[error("{0}")]
    Dataplane(#[from] DataplaneError),
    /// The target box's entry cannot be read.
    #[error("{0}")]
    BoxTable(#[from] BoxTableError),
    /// Migrating to this very box.
    #[error("a box cannot migrate connections to itself")]
    ToItself,
    /// The target box is not alive.
    #[error("box {0} is not alive")]
    NotAlive(u16),
    /// The target box is not in the cluster's configuration.
    #[error("box {0} is not a cluster member")]
    NotMember(u16),
    /// The target box answered the adoption with an error status.
    #[error("box {to} refused the connections ({status}): {body}")]
    Refused {
        /// The target box.
        to: u16,
        /// Its admin API's status.
        status: u16,
        /// Its answer.
        body: String,
    },
    /// The target box's admin API could not be asked.
    #[error("box {to}'s admin API at {addr}: {source}")]
    Unreachable {
        /// The target box.
        to: u16,
        /// Where its admin API was asked.
        addr: SocketAddr,
        /// Why the request failed.
        source: AdminError,
    },
}

impl Control {
    /// A planned move of every connection of this box (drain for
    /// maintenance): stop accepting, write every connection's exact final
    /// checkpoint, stop the workers without a word to the clients, and mark
    /// the box draining so the survivors take over at once, by the same
    /// path as a failure but with no detection delay and no stale state.
    pub(crate) fn drain(&self) -> Result<String, MoveError> {
        let before = self.region.box_info().map(|i| i.connections).unwrap_or(0);
        self.dataplane.drain(true)?;
        self.dataplane.freeze()?;
        // The workers write their final checkpoints before they stop; the
        // stats command is answered only by a running worker, so wait for
        // every worker to be gone before telling the survivors.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.dataplane.stopped() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        self.region.set_state(BoxState::Draining);
        info!(
            connections = before,
            "draining: connections frozen and handed to the survivors"
        );
        Ok(format!(
            "box {} draining: {before} connections handed over",
            self.me
        ))
    }

    /// A planned move of `count` connections to box `to` (rebalancing):
    /// their final checkpoints are written and their TCBs dropped here
    /// silently, their frames forwarded to `to`, which restores them from
    /// our region through its admin API (`/adopt`); once it answered
    /// success (not before), their slots are cleared so that nobody
    /// restores them twice.
    pub(crate) fn migrate(&self, to: u16, count: usize) -> Result<String, MoveError> {
        Ok(match self.move_to(to, count)? {
            0 => format!("box {} has no established connection to move", self.me),
            moved => format!("box {}: {moved} connections moved to box {to}", self.me),
        })
    }

    /// `migrate`'s work: how many connections box `to` adopted.
    pub(crate) fn move_to(&self, to: u16, count: usize) -> Result<usize, MoveError> {
        if to == self.me {
            return Err(MoveError::ToItself);
        }
        let info = self.segment.box_info(to)?;
        if !matches!(info.state, BoxState::Alive | BoxState::Rejoined) {
            return Err(MoveError::NotAlive(to));
        }
        let member = self
            .members
            .iter()
            .find(|m| m.id == to)
            .ok_or(MoveError::NotMember(to))?;
        let mut picked = Vec::new();
        // The control connections of the FTP sessions picked.
        let mut ftp = Vec::new();
        for slot in self.region.records().flatten() {
            if picked.len() == count {
                break;
            }
            // A bundle moves whole (`super::bundle`): all its members are
            // handed off, and the adopter restores its slot.
            if let Some(tuples) = movable_tuples(slot.bundle()) {
                if follows_the_address(slot.bundle()) {
                    ftp.extend(tuples.first().copied());
                }
                picked.push((slot.slot(), tuples));
            }
        }
        if picked.is_empty() {
            return Ok(0);
        }
        let tuples = picked.iter().flat_map(|(_, t)| t.iter().copied()).collect();
        let moved = self.dataplane.handoff(tuples, MacAddr(info.mac))?;
        // Only what the workers handed off: a connection that ended
        // meanwhile must not be restored elsewhere.
        let picked: Vec<_> = picked
            .into_iter()
            .filter(|(_, t)| t.iter().any(|t| moved.contains(t)))
            .collect();
        let handed_off = moved;
        let moved = handed_off.len();
        let slots: Vec<String> = picked.iter().map(|(s, _)| s.0.to_string()).collect();
        let admin = SocketAddr::new(member.back_addr.ip(), self.admin_port);
        let path = format!("/adopt?from={}&slots={}", self.me, slots.join(","));
        // Each box has its own admin token: the target's `/adopt` is opened
        // by the token derived from the cluster key for that box alone.
        let token = crate::admin::auth::adopt_token(&self.cluster_key, to);
        let answer = crate::admin::request(admin, &token, "POST", &path);
        // The records are the connections' only copy until the adopter has
        // restored them: cleared on its success only. On a refusal or no
        // answer they stay in our region, where a retried `/adopt` or a
        // takeover of this box still finds them.
        if adopted(&answer) {
            let mut writer = self.region.writer();
            for (slot, _) in &picked {
                let _ = writer.clear(*slot);
            }
            // Only once the adopter holds the sessions: taken back, their
            // next data connections must stay here.
            self.route_ftp_clients(&ftp, &handed_off, MacAddr(info.mac));
        } else {
            let slots: Vec<u32> = picked.iter().map(|(s, _)| s.0).collect();
            self.take_back(to, &slots);
        }
        match answer {
            Ok((status, _)) if (200..300).contains(&status) => {
                info!(to, moved, "migrated connections");
                Ok(moved)
            }
            Ok((status, body)) => Err(MoveError::Refused { to, status, body }),
            Err(source) => Err(MoveError::Unreachable {
                to,
                addr: admin,
                source,
            }),
        }
    }

    /// The adopter `to` did not take the connections of `slots`, which our
    /// workers already handed off (their frames forwarded to `to`, which
    /// may be dead): restore them here from their final checkpoints, still
    /// in our region, as an adopter would. Without this they were lost.
    fn take_back(&self, to: u16, slots: &[u32]) {
        let orphans = orphans_in_slots(&self.segment, self.me, slots);
        warn!(
            to,
            connections = orphans.len(),
            "migrate: the adopter did not take the connections: restoring them here"
        );
        self.orphans
            .extend(orphans.iter().cloned().map(Orphan::route_here));
        restore_paced(&self.dataplane, orphans, 1);
    }

    /// A moved FTP session's next data connection is a new 4-tuple (the
    /// client → our address, a passive port): routes by client address
    /// forward it to the adopter, whose restored session waits for it
    /// there, until the session's idle limit (docs/FTP.md, "Takeover").
    fn route_ftp_clients(&self, controls: &[FourTuple], moved: &[FourTuple], to: MacAddr) {
        let Some((ports, ttl)) = self.ftp_passive.clone() else {
            return;
        };
        for c in controls.iter().filter(|c| moved.contains(c)) {
            let (local, client) = (c.local.ip(), c.remote.ip());
            match self
                .dataplane
                .route_client(local, client, ports.clone(), to, ttl)
            {
                Ok(()) => {
                    info!(%client, %local, "FTP client's data connections routed to the adopter")
                }
                Err(e) => tracing::warn!(%client, error = %e, "FTP client route not installed"),
            }
        }
    }

    /// Restores connections box `from` handed over (seed: "the takeover of
    /// connections can be applied specifically to load-balancing").
    pub(crate) fn adopt(&self, from: u16, slots: &[u32]) -> Result<String, MoveError> {
        let orphans = orphans_in_slots(&self.segment, from, slots);
        let n = orphans.len();
        // `from` forwards their frames until the client's path changes.
        self.note_forwarders(std::iter::once(from));
        // Frames forwarded before the eager restore below reaches a worker
        // restore the connection lazily instead of meeting a reset.
        self.orphans
            .extend(orphans.iter().cloned().map(Orphan::route_here));
        restore_paced(&self.dataplane, orphans, 1);
        info!(from, adopted = n, "adopting connections handed over");
        Ok(format!(
            "box {} adopted {n} connections from box {from}",
            self.me
        ))
    }
}

/// Whether the adopter's answer says it restored the connections (a 2xx).
fn adopted(answer: &Result<(u16, String), AdminError>) -> bool {
    matches!(answer, Ok((status, _)) if (200..300).contains(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_cleared_only_when_the_adopter_answered_success() {
        assert!(adopted(&Ok((200, "box 2 adopted 3".into()))));
        assert!(!adopted(&Ok((401, "bad token".into()))));
        assert!(!adopted(&Ok((500, "error".into()))));
        let unreachable = crate::admin::request(
            "127.0.0.1:1".parse().unwrap(),
            "token",
            "POST",
            "/adopt?from=1&slots=0",
        );
        assert!(unreachable.is_err());
        assert!(!adopted(&unreachable));
    }
}
