//! Membership: the one agreed view of which boxes are alive, and the rules
//! derived from it (issue #21).
//!
//! Every box used to derive the survivor set from its own reading of
//! heartbeats, and two survivors could disagree: both restored the same
//! connections and both announced the dead box's address. Here a death or
//! a join is a *view change*, committed once in a [`ViewStore`] and seen by
//! every box alike; a takeover acts only on a committed [`ViewChange`], and
//! the orphan split ([`orphan_owner`]) and the address inheritance
//! ([`address_heir`]) are functions of it. A box that finds itself outside
//! the committed view fences itself ([`Fence`]).
//!
//! This crate owns the view and the rules. It does not know packets, HTTP,
//! slots, or how heartbeats are read: the failure detector hands it
//! [`Verdict`]s, and the box wires its [`Event`]s to the takeover and the
//! dataplane. No I/O and no clock inside the machine (as in quinn-proto);
//! the store is the only shared state.
//!
//! Where to start reading:
//!
//! - [`machine`]: [`Membership`], one box's state machine, its inputs,
//!   outputs and call order.
//! - [`store`]: [`ViewStore`], with [`SegmentStore`] (the shared segment's
//!   CAS cell, `baton_shmem::ViewCell`) and [`MemoryStore`].
//! - [`change`] and [`reason`]: what a committed view changed, and why.
//! - [`rules`]: what every survivor computes alike from a change.
//! - `docs/MEMBERSHIP.md`: the design, what is built and what is next.
//!
//! ```
//! use baton_membership::{propose, refresh, sync, Event, Member, Membership, MemoryStore, Verdict};
//! use std::time::Duration;
//!
//! let store = MemoryStore::new();
//! let mut boxes: Vec<Membership> =
//!     (1..=3).map(|id| Membership::new(Member { id, epoch: 1 })).collect();
//! for b in &mut boxes {
//!     b.handle_dataplane_up();
//!     b.handle_beat();
//!     sync(b, &store).unwrap(); // each joins: views 1, 2, 3
//! }
//! // Box 3 goes silent; at box 1's next tick its detector says so.
//! let dead = Member { id: 3, epoch: 1 };
//! refresh(&mut boxes[0], &store).unwrap(); // the view first: 1, 2, 3 are members
//! boxes[0].handle_verdict(Verdict { peer: dead, silent_for: Duration::from_millis(300) });
//! propose(&mut boxes[0], &store); // view 4: 1, 2
//! sync(&mut boxes[1], &store).unwrap();
//! let change = std::iter::from_fn(|| boxes[1].poll_event())
//!     .find_map(|e| match e { Event::Committed(c) if c.left == [dead] => Some(c), _ => None })
//!     .unwrap();
//! assert_eq!(baton_membership::address_heir(&change, 3), Some(1));
//! assert_eq!(baton_membership::orphan_owner(&change, 1), Some(2));
//! ```

#![deny(missing_docs)]

pub mod balance;
pub mod change;
pub mod driver;
pub mod machine;
pub mod placement;
pub mod reason;
pub mod rules;
pub mod store;

pub use balance::{plan as balance_plan, sends_of, Move, RateLimit};
pub use baton_shmem::{
    ChangeLoads, CommittedLoads, Member, MemberLoad, View, ViewNumber, MAX_MEMBERS, REASON_HISTORY,
};
pub use change::{changes_between, ViewChange};
pub use driver::{propose, propose_with, refresh, sync};
pub use machine::{Event, Fence, Membership, Phase, Proposal, Verdict};
pub use placement::{least_loaded_owner, least_loaded_shares, SurvivorLoad};
pub use reason::Reason;
pub use rules::{address_heir, orphan_owner, split_of, survivors, Split};
pub use store::{MemoryStore, SegmentStore, StoreError, ViewStore};
