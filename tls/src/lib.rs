//! TLS for Baton: the handshake by rustls, the record layer Baton's own so
//! that a connection's TLS state can be checkpointed and taken over by
//! another box mid-record (issue 14, docs/TLS.md).
//!
//! Sans-IO like `dataplane::tcp`: bytes in, bytes and events out, no
//! sockets, no clocks. This crate must not know the dataplane, the
//! appliance, the segment or HTTP: they use it.
//!
//! Where to start reading: [`handshake::Handshake`] turns a ClientHello
//! into an established [`session::Session`]; `session` is the record layer
//! with alerts and KeyUpdate; `record` seals and opens one record; `body`
//! says where deterministic body records are; `checkpoint` is the block a
//! survivor restores from.

#![deny(missing_docs)]

pub mod body;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod handshake;
pub mod keys;
pub mod pem;
pub mod record;
pub mod seal;
pub mod session;
pub mod tickets;

pub use body::{BodyAnchor, ResumePoint, BODY_RECORD_SIZE};
pub use checkpoint::{Checkpoint, PendingInput, MAX_PENDING_INPUT, SEALED_LEN};
pub use config::{CertifiedKeys, TlsConfig};
pub use error::TlsError;
pub use handshake::{Established, Handshake, Progress};
pub use keys::{Aead, Version};
pub use pem::{certified_key_from_pem, PemError};
/// The rustls this crate drives, for callers naming its types (versions,
/// `CertifiedKey`) without a second copy.
pub use rustls;
pub use seal::CheckpointSealer;
pub use session::{Event, Session};
pub use tickets::ClusterTicketer;

#[cfg(test)]
mod tests;
