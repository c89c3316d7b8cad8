//! The Raft's storage: one small file per box (`file`), openraft's log
//! storage over it (`log`) and its state machine store (`state`).
//!
//! The log store and the state machine store share the file; each change
//! rewrites and syncs it before it is reported. This module only
//! re-exports its rooms; it knows nothing of the network.

pub mod file;
pub mod log;
pub mod state;

pub use file::{FileError, RaftState, StateFile, StoredSnapshot};
pub use log::LogStore;
pub use state::{Applied, BadSnapshot, StateMachineStore};
