//! Replicated mode's view store: the agreed membership view in an
//! embedded Raft among the boxes, over authenticated UDP on the back LAN
//! (issue #21, `docs/MEMBERSHIP.md`, "Replicated mode").
//!
//! Boxes on different hosts share no segment, so the view cell's CAS is
//! replaced by consensus: [`RaftStore`] implements
//! `baton_membership::ViewStore` over an openraft 0.9 node whose state
//! machine is the [`View`](baton_membership::View) and whose only command
//! is a [`Propose`] applied with the cell's compare semantics. The voters
//! are the configured members (node id = box id); a dead box stays a
//! voter and comes back as itself.
//!
//! This crate owns the Raft: its types, state machine, byte format, state
//! file, transport and runtime. It does not know the appliance, the
//! dataplane or the membership state machine: the box gives it its id,
//! the voters' back-LAN addresses, the cluster key, a file path and
//! timings, and polls [`RaftStore::has_quorum_lease`].
//!
//! Where to start reading:
//!
//! - [`store`]: [`RaftStore`], its configuration and its threads.
//! - [`machine`]: the compare semantics, pure.
//! - [`storage`]: the one file per box, and openraft's storage traits.
//! - [`transport`]: datagram frame and authentication, messages, the
//!   endpoint, openraft's network; [`codec`]: the byte format.
//! - [`lease`]: the quorum proof a box needs to keep serving.
//! - [`server`]: answering peers' requests.
//!
//! A one-voter cluster (a real one lists every box and its back-LAN
//! address, and every box starts its own store):
//!
//! ```
//! use baton_membership::{Member, Reason, ViewStore};
//! use baton_raft::{boot_from_clock, RaftConfig, RaftStore, Timings};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("baton-raft-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let store = RaftStore::start(RaftConfig {
//!     me: 1,
//!     members: vec![(1, "127.0.0.1:0".parse()?)],
//!     key: b"sixteen byte key or longer".to_vec(),
//!     path: dir.join("box1.raft"),
//!     timings: Timings::default(),
//!     boot: boot_from_clock(),
//! })?;
//! let me = Member { id: 1, epoch: 1 };
//! let view = store.read()?; // view 0, once a leader answers
//! let view = store.propose(1, view.number, &[me], Reason::Joined(me))?;
//! assert_eq!(store.read()?, view);
//! assert!(store.has_quorum_lease(std::time::Instant::now()));
//! drop(store);
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod codec;
pub mod lease;
pub mod machine;
pub mod server;
pub mod storage;
pub mod store;
pub mod transport;
pub mod types;

pub use machine::ViewMachine;
pub use store::{boot_from_clock, RaftConfig, RaftStore, StartError, Timings};
pub use transport::TransportStats;
pub use types::{Outcome, Propose};
