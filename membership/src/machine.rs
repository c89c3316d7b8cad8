//! One box's membership state machine: verdicts, start-up progress and
//! committed views in; proposals, fencing and committed changes out.
//!
//! Like a quinn-proto connection it does no I/O and reads no clock: the
//! failure detector's verdicts carry how long a peer was silent, the
//! caller reads and proposes to the [`ViewStore`](crate::ViewStore) (see
//! [`crate::driver`]). Methods fall into the same classes:
//!
//! - getters: [`Membership::me`], [`Membership::phase`], [`Membership::view`];
//! - inputs: [`Membership::handle_dataplane_up`], [`Membership::handle_beat`],
//!   [`Membership::handle_verdict`], [`Membership::handle_view`],
//!   [`Membership::handle_proposal_result`];
//! - outputs: [`Membership::poll_proposal`], [`Membership::poll_event`].
//!
//! Call order on each control tick: read the store and `handle_view`; then
//! the detector's verdicts (`handle_verdict`, judged against that view; a
//! detector repeats its verdict each tick while the peer stays silent);
//! then `poll_proposal` → propose to the store → `handle_proposal_result`,
//! until `poll_proposal` gives `None`; then drain `poll_event`.
//! [`crate::refresh`] and [`crate::propose`] do the store's part.
//!
//! The rules, in the words of issue #21:
//!
//! - A death or a join is one view change, committed once. One proposal
//!   carries one change; a proposal that loses the race re-reads, and is
//!   made again only if its change is still needed.
//! - A restarted box is not judged until its dataplane is up and it has
//!   beaten once: only then does it propose its join, and only members are
//!   judged (a verdict about a non-member is dropped).
//! - A box outside the committed view fences itself, whatever its age:
//!   once this incarnation was admitted, or as soon as a view names its id
//!   with a newer epoch. (A view naming an older epoch of its id names its
//!   previous incarnation, which its own join replaces.)
//!
//! This module knows nothing of packets, HTTP, heartbeats' bytes or stores.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use crate::change::changes_between;
use crate::{Member, Reason, StoreError, View, ViewChange, ViewNumber};

/// The failure detector's verdict: this incarnation of a peer has not been
/// heard for `silent_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The peer and the epoch the detector judged.
    pub peer: Member,
    /// How long it was silent.
    pub silent_for: Duration,
}

/// Where this incarnation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Dataplane not up, or not beaten yet: not proposing, not judged.
    Starting,
    /// Proposing its own join.
    Joining,
    /// In the committed view: judges peers, may be judged.
    Member,
    /// Outside the committed view: must stop serving at once.
    Fenced,
}

/// A view this box wants committed: `members` as the view after `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The committed view it builds on.
    pub expected: ViewNumber,
    /// The members of the proposed view.
    pub members: Vec<Member>,
    /// The one change it makes.
    pub reason: Reason,
}

impl Phase {
    /// The phase's name in logs and status output.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Joining => "joining",
            Phase::Member => "member",
            Phase::Fenced => "fenced",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why this box must stop its dataplane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// A committed view no longer holds this incarnation.
    Removed {
        /// The view that removed it.
        view: ViewNumber,
        /// Why, when the store still says.
        reason: Option<Reason>,
    },
    /// A committed view holds a newer incarnation of this box's id.
    Superseded {
        /// The view that names it.
        view: ViewNumber,
        /// The newer epoch.
        epoch: u32,
    },
}

impl fmt::Display for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fence::Removed {
                view,
                reason: Some(r),
            } => write!(f, "view {view} removed this box ({r})"),
            Fence::Removed { view, reason: None } => {
                write!(f, "view {view} does not hold this box")
            }
            Fence::Superseded { view, epoch } => {
                write!(
                    f,
                    "view {view} holds this box's epoch {epoch}, a newer incarnation"
                )
            }
        }
    }
}

/// What the box has to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A view change was committed: act on it (takeover for `left`,
    /// address hand-back for a rejoin). Each change is reported once, in
    /// order.
    Committed(ViewChange),
    /// This incarnation entered the committed view.
    Admitted {
        /// The view that admitted it.
        view: ViewNumber,
    },
    /// Stop the dataplane now; nothing more comes from this machine.
    Fence(Fence),
}

/// One box's membership state machine. See the module doc for the rules
/// and the call order.
#[derive(Debug)]
pub struct Membership {
    me: Member,
    phase: Phase,
    dataplane_up: bool,
    beaten: bool,
    view: Option<View>,
    /// Members judged silent and not yet removed: id → (epoch, silent ms).
    suspects: BTreeMap<u16, (u32, u16)>,
    in_flight: bool,
    events: VecDeque<Event>,
}

impl Membership {
    /// The machine of incarnation `me` of a box, just started.
    pub fn new(me: Member) -> Membership {
        Membership {
            me,
            phase: Phase::Starting,
            dataplane_up: false,
            beaten: false,
            view: None,
            suspects: BTreeMap::new(),
            in_flight: false,
            events: VecDeque::new(),
        }
    }

    // Getters.

    /// This box and its epoch.
    pub fn me(&self) -> Member {
        self.me
    }

    /// Where this incarnation stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The newest committed view this box has read.
    pub fn view(&self) -> Option<&View> {
        self.view.as_ref()
    }

    // Inputs.

    /// The box's dataplane serves (rings allocated, workers polling).
    pub fn handle_dataplane_up(&mut self) {
        self.dataplane_up = true;
        self.ready_to_join();
    }

    /// The box published a heartbeat.
    pub fn handle_beat(&mut self) {
        self.beaten = true;
        self.ready_to_join();
    }

    fn ready_to_join(&mut self) {
        if self.phase == Phase::Starting && self.dataplane_up && self.beaten {
            self.phase = Phase::Joining;
            if let Some(v) = self.view.clone() {
                self.check_admission(&v);
            }
        }
    }

    /// The failure detector judged a peer silent. Only a member judges, and
    /// only members are judged; a verdict about another epoch than the
    /// view's is about a past or future incarnation and is dropped.
    pub fn handle_verdict(&mut self, verdict: Verdict) {
        if self.phase != Phase::Member || verdict.peer.id == self.me.id {
            return;
        }
        let in_view = self.view.as_ref().is_some_and(|v| v.contains(verdict.peer));
        if in_view {
            let ms = verdict.silent_for.as_millis().min(u16::MAX as u128) as u16;
            self.suspects
                .insert(verdict.peer.id, (verdict.peer.epoch, ms));
        }
    }

    /// A committed view read from the store (or returned by it). Older or
    /// equal views than the last one are ignored.
    pub fn handle_view(&mut self, view: View) {
        if self.phase == Phase::Fenced {
            return;
        }
        let changes = match &self.view {
            Some(last) if view.number <= last.number => return,
            Some(last) => changes_between(last, &view),
            // The first view read is where this box starts: it reports no
            // change that happened before it.
            None => Vec::new(),
        };
        self.suspects
            .retain(|&id, &mut (epoch, _)| view.contains(Member { id, epoch }));
        if let Some(fence) = self.fence_for(&view, &changes) {
            // A fenced box acts on nothing more, not even changes queued
            // before: its survivors take over what it held.
            self.phase = Phase::Fenced;
            self.suspects.clear();
            self.events.clear();
            self.events.push_back(Event::Fence(fence));
            self.view = Some(view);
            return;
        }
        self.events
            .extend(changes.into_iter().map(Event::Committed));
        self.check_admission(&view);
        self.view = Some(view);
    }

    /// Whether `view` fences this box; `changes` are the ones that led to
    /// it, to name the one that removed the box.
    fn fence_for(&self, view: &View, changes: &[ViewChange]) -> Option<Fence> {
        match view.epoch_of(self.me.id) {
            Some(epoch) if epoch > self.me.epoch => Some(Fence::Superseded {
                view: view.number,
                epoch,
            }),
            _ if self.phase == Phase::Member && !view.contains(self.me) => {
                let removal = changes.iter().find(|c| c.left.contains(&self.me));
                Some(Fence::Removed {
                    view: removal.map_or(view.number, |c| c.number),
                    reason: removal.and_then(|c| c.reason),
                })
            }
            _ => None,
        }
    }

    fn check_admission(&mut self, view: &View) {
        if self.phase == Phase::Joining && view.contains(self.me) {
            self.phase = Phase::Member;
            self.events.push_back(Event::Admitted { view: view.number });
        }
    }

    /// What the store said to the last [`Proposal`]: committed (the new
    /// view), lost (the view that won), or failed (tried again at the next
    /// poll).
    pub fn handle_proposal_result(&mut self, result: Result<View, StoreError>) {
        self.in_flight = false;
        match result {
            Ok(view) | Err(StoreError::Conflict { current: view }) => self.handle_view(view),
            Err(StoreError::Unreadable(_) | StoreError::Invalid(_) | StoreError::Unavailable) => {}
        }
    }

    // Outputs.

    /// The next view change this box wants committed: its own join, or the
    /// removal of one silent member (the lowest id first). `None` while a
    /// proposal is out, before a view was read, or when nothing is needed.
    pub fn poll_proposal(&mut self) -> Option<Proposal> {
        if self.in_flight {
            return None;
        }
        let view = self.view.as_ref()?;
        let reason = match self.phase {
            Phase::Joining if !view.contains(self.me) => Reason::Joined(self.me),
            Phase::Member => {
                let (&id, &(epoch, silent_ms)) = self.suspects.iter().next()?;
                Reason::Silent {
                    member: Member { id, epoch },
                    silent_ms,
                }
            }
            _ => return None,
        };
        self.in_flight = true;
        Some(Proposal {
            expected: view.number,
            members: reason.apply(&view.members),
            reason,
        })
    }

    /// The next thing the box must act on.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
