//! Planned moves: connections leave this box on purpose, with exact final
//! checkpoints and no detection delay — all of them (drain, for
//! maintenance), some to one box (migrate, for rebalancing), and the
//! receiving side (adopt).
//!
//! The workers freeze and hand off; this module only decides what moves
//! where and tells the other box through its admin API. The drain, which
//! moves everything and then steps aside, is `super::drain`.
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_dataplane::tcp::FourTuple;
use baton_dataplane::wire::ethernet::MacAddr;
use baton_dataplane::DataplaneError;
use baton_shmem::{ArchivedBundle, BoxState, BoxTableError, Region, SlotId};
use tracing::{info, warn};

use super::bundle::{follows_the_address, movable_tuples};
use super::handle::Control;
use super::pace::restore_paced;
use super::takeover::orphans_in_slots;
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
        let target = self.move_target(to)?;
        let mut picked = Picked::default();
        for slot in self.region.records().flatten() {
            if picked.slots.len() == count {
                break;
            }
            picked.add(slot.slot(), slot.bundle());
        }
        match self.hand_over(&target, picked) {
            Ok(moved) => Ok(moved.len()),
            Err(e) => {
                if !e.adopted.is_empty() {
                    warn!(
                        to,
                        adopted = e.adopted.len(),
                        "migrate: only part of the connections moved"
                    );
                }
                Err(e.err)
            }
        }
    }

    /// Box `to`, if connections may move to it: another member, alive.
    pub(super) fn move_target(&self, to: u16) -> Result<MoveTarget, MoveError> {
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
        Ok(MoveTarget {
            id: to,
            mac: MacAddr(info.mac),
            admin: SocketAddr::new(member.back_addr.ip(), self.admin_port),
        })
    }

    /// Hands the `picked` connections to `target`: their final checkpoints
    /// are written and their TCBs dropped here silently, their frames
    /// forwarded to it, and it restores them from our region through its
    /// admin API (`/adopt`, [`ADOPT_BATCH`] slots a request); once it
    /// answered success (not before), their slots are cleared so that
    /// nobody restores them twice; what it did not take is restored here.
    /// Returns the connections it adopted.
    pub(super) fn hand_over(
        &self,
        target: &MoveTarget,
        picked: Picked,
    ) -> Result<Vec<FourTuple>, HandOverError> {
        let to = target.id;
        if picked.slots.is_empty() {
            return Ok(Vec::new());
        }
        let tuples = picked
            .slots
            .iter()
            .flat_map(|(_, t)| t.iter().copied())
            .collect();
        let handed_off = self
            .dataplane
            .handoff(tuples, target.mac)
            .map_err(|e| HandOverError {
                adopted: Vec::new(),
                err: e.into(),
            })?;
        // Looked up once per connection below: a set, not a list (a drain
        // hands over thousands).
        let handed_off: HashSet<FourTuple> = handed_off.into_iter().collect();
        // Only what the workers handed off: a connection that ended
        // meanwhile must not be restored elsewhere.
        let slots: Vec<_> = picked
            .slots
            .into_iter()
            .filter(|(_, t)| t.iter().any(|t| handed_off.contains(t)))
            .collect();
        // The slots go in the request's path: a few hundred per request
        // keep its head under the admin API's limit (8 KiB).
        let mut adopted = Vec::new();
        let mut adopted_ftp = Vec::new();
        let mut failed = None;
        for chunk in slots.chunks(ADOPT_BATCH) {
            let answer = self.ask_to_adopt(target, chunk);
            let tuples = chunk.iter().flat_map(|(_, t)| t.iter().copied());
            // The records are the connections' only copy until the adopter
            // has restored them: cleared on its success only. On a refusal
            // or no answer they stay in our region, where a retried
            // `/adopt` or a takeover of this box still finds them.
            match answer {
                Ok(()) => {
                    let mut writer = self.region.writer();
                    for (slot, _) in chunk {
                        let _ = writer.clear(*slot);
                    }
                    adopted.extend(tuples.filter(|t| handed_off.contains(t)));
                    adopted_ftp.extend(
                        picked
                            .ftp
                            .iter()
                            .filter(|c| chunk.iter().any(|(_, t)| t.contains(c))),
                    );
                }
                Err(err) => {
                    let slots: Vec<u32> = chunk.iter().map(|(s, _)| s.0).collect();
                    self.take_back(to, &slots);
                    failed.get_or_insert(err);
                }
            }
        }
        // Only once the adopter holds the sessions: taken back, their next
        // data connections must stay here.
        self.route_ftp_clients(&adopted_ftp, &handed_off, target.mac);
        if !adopted.is_empty() {
            info!(to, moved = adopted.len(), "connections moved");
        }
        match failed {
            None => Ok(adopted),
            Some(err) => Err(HandOverError { adopted, err }),
        }
    }

    /// Asks `target` to adopt the connections of our `slots` (`/adopt`).
    fn ask_to_adopt(
        &self,
        target: &MoveTarget,
        slots: &[(SlotId, Vec<FourTuple>)],
    ) -> Result<(), MoveError> {
        let to = target.id;
        let listed: Vec<String> = slots.iter().map(|(s, _)| s.0.to_string()).collect();
        let path = format!("/adopt?from={}&slots={}", self.me, listed.join(","));
        // Each box has its own admin token: the target's `/adopt` is opened
        // by the token derived from the cluster key for that box alone.
        let token = crate::admin::auth::adopt_token(&self.cluster_key, to);
        let answer = crate::admin::request(target.admin, &token, "POST", &path);
        adoption(to, target.admin, answer)
    }

    /// The adopter `to` did not take the connections of `slots`, which our
    /// workers already handed off (their frames forwarded to `to`, which
    /// may be dead): restore them here from their final checkpoints, still
    /// in our region, as an adopter would. Without this they were lost.
    ///
    /// A connection restored here writes its checkpoints to a new slot: its
    /// final checkpoint's slot is cleared once the new one holds it (up to
    /// [`RERECORD_LIMIT`]), so that a takeover of this box never finds two
    /// records of one connection, the older one stale.
    fn take_back(&self, to: u16, slots: &[u32]) {
        let orphans: Vec<Arc<Orphan>> = orphans_in_slots(&self.segment, self.me, slots)
            .into_iter()
            .map(Arc::new)
            .collect();
        let firsts: Vec<(SlotId, FourTuple)> = slots
            .iter()
            .filter_map(|&s| {
                let valid = self.region.read(SlotId(s)).ok().flatten()?;
                let first = valid.bundle().records.iter().next()?.view();
                Some((SlotId(s), crate::record::tuple_of(&first)))
            })
            .collect();
        warn!(
            to,
            connections = orphans.len(),
            "migrate: the adopter did not take the connections: restoring them here"
        );
        self.orphans
            .extend(orphans.iter().cloned().map(Orphan::route_here));
        restore_paced(&self.dataplane, orphans, 1);
        let stale = clear_once_rerecorded(&self.region, firsts, RERECORD_LIMIT);
        if stale > 0 {
            warn!(
                to,
                connections = stale,
                "migrate: connections taken back not re-recorded in time: their final checkpoints stay"
            );
        }
    }

    /// A moved FTP session's next data connection is a new 4-tuple (the
    /// client → our address, a passive port): routes by client address
    /// forward it to the adopter, whose restored session waits for it
    /// there, until the session's idle limit (docs/FTP.md, "Takeover").
    fn route_ftp_clients(&self, controls: &[FourTuple], moved: &HashSet<FourTuple>, to: MacAddr) {
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
        let orphans: Vec<Arc<Orphan>> = orphans_in_slots(&self.segment, from, slots)
            .into_iter()
            .map(Arc::new)
            .collect();
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

/// Slots named in one `/adopt` request: up to 7 characters each ("299999,")
/// keep the request head well under the admin API's 8 KiB.
const ADOPT_BATCH: usize = 500;

/// A hand-over that did not (wholly) happen.
#[derive(Debug)]
pub(super) struct HandOverError {
    /// The connections the target adopted before the failure.
    pub(super) adopted: Vec<FourTuple>,
    /// Why the rest did not move.
    pub(super) err: MoveError,
}

/// A box connections may move to.
pub(super) struct MoveTarget {
    /// Its member id.
    pub(super) id: u16,
    /// Its MAC, where the handed-off connections' frames are forwarded.
    mac: MacAddr,
    /// Its admin API (`/adopt`).
    admin: SocketAddr,
}

/// The connections picked for a move, by slot: a bundle moves whole.
#[derive(Default)]
pub(super) struct Picked {
    /// Each slot, with its bundle's TCP connections.
    slots: Vec<(SlotId, Vec<FourTuple>)>,
    /// The control connections of the FTP sessions picked.
    ftp: Vec<FourTuple>,
}

impl Picked {
    /// Picks the bundle in `slot` if it can move (`super::bundle`).
    pub(super) fn add(&mut self, slot: SlotId, bundle: &ArchivedBundle<'_>) {
        let Some(tuples) = movable_tuples(bundle) else {
            return;
        };
        if follows_the_address(bundle) {
            self.ftp.extend(tuples.first().copied());
        }
        self.slots.push((slot, tuples));
    }

    /// The first connection of each bundle picked.
    pub(super) fn firsts(&self) -> impl Iterator<Item = FourTuple> + '_ {
        self.slots.iter().filter_map(|(_, t)| t.first().copied())
    }
}

/// How long a take-back waits for the restored connections' new records.
const RERECORD_LIMIT: Duration = Duration::from_secs(1);

/// Clears each of `old` slots once its connection is recorded in another
/// slot of `region` too, polling until `limit`; returns how many were not.
fn clear_once_rerecorded(region: &Region, old: Vec<(SlotId, FourTuple)>, limit: Duration) -> usize {
    let mut writer = region.writer();
    retain_until(old, limit, |(slot, t)| {
        let rerecorded = region.slots_of(t.local, t.remote).iter().any(|s| s != slot);
        if rerecorded {
            let _ = writer.clear(*slot);
        }
        !rerecorded
    })
}

/// Keeps what `waiting` says is still waiting, every 5 ms until none is or
/// `limit` passed; returns how many still were.
pub(super) fn retain_until<T>(
    mut items: Vec<T>,
    limit: Duration,
    mut waiting: impl FnMut(&T) -> bool,
) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        items.retain(&mut waiting);
        if items.is_empty() || Instant::now() >= deadline {
            return items.len();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the adopter `to`'s answer at `addr` says: it restored the
/// connections (a 2xx), refused them, or could not be asked.
fn adoption(
    to: u16,
    addr: SocketAddr,
    answer: Result<(u16, String), AdminError>,
) -> Result<(), MoveError> {
    match answer {
        Ok((status, _)) if (200..300).contains(&status) => Ok(()),
        Ok((status, body)) => Err(MoveError::Refused { to, status, body }),
        Err(source) => Err(MoveError::Unreachable { to, addr, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_cleared_only_when_the_adopter_answered_success() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(adoption(2, addr, Ok((200, "box 2 adopted 3".into()))).is_ok());
        assert!(matches!(
            adoption(2, addr, Ok((401, "bad token".into()))),
            Err(MoveError::Refused { status: 401, .. })
        ));
        assert!(adoption(2, addr, Ok((500, "error".into()))).is_err());
        let unreachable = crate::admin::request(addr, "token", "POST", "/adopt?from=1&slots=0");
        assert!(matches!(
            adoption(2, addr, unreachable),
            Err(MoveError::Unreachable { to: 2, .. })
        ));
    }

    #[test]
    fn an_adopt_request_for_a_whole_batch_of_the_largest_slots_fits_the_admin_head_limit() {
        let slots: Vec<String> = (0..ADOPT_BATCH)
            .map(|i| (299_999 - i).to_string())
            .collect();
        let path = format!("/adopt?from=65535&slots={}", slots.join(","));
        let head = format!("POST {path} HTTP/1.1\r\nHost: 198.19.0.255:65535\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\n\r\n", "x".repeat(128));
        assert!(head.len() < 8 * 1024, "{} bytes", head.len());
    }
}
