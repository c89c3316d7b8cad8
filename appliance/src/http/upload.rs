//! Uploads (POST and PUT bodies) on their way to the origin: spooled to a
//! file so that a survivor can continue one its box did not finish.
//!
//! A request body is written to the spool as it arrives, and the
//! checkpoint says how many of its bytes are there ([`UploadState`]). With
//! `ack_after_commit` the client's bytes are acknowledged only once both
//! the spool write and that checkpoint are done (ARCHITECTURE.md), so a
//! survivor finds every acknowledged byte in the spool and the client
//! retransmits the rest to it. The spool directory must therefore be one
//! every box that may take the connection over can read — beside the
//! segment, on the same file system (`[checkpoint] upload_dir`).
//!
//! A spool file is named after its connection (both addresses and ports and
//! the client's initial sequence number), which the survivor's restored
//! connection has too. It is removed when its response is done, when the
//! connection closes, or by [`Spool::reap`] when its box died and nobody
//! took it over.

use std::path::PathBuf;

use super::request::Method;
pub use crate::spool::{Spool, SpoolFile};

/// An upload as a checkpoint records it (see [`baton_shmem::UploadBlock`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadState {
    /// TCP sequence number of the body's first byte.
    pub body_start_seq: u32,
    /// The body's length (`Content-Length`).
    pub content_length: u64,
    /// Body bytes in the spool.
    pub received: u64,
    /// The body went to the origin.
    pub forwarded: bool,
    /// The body's `Content-Type`.
    pub content_type: Option<String>,
}

impl UploadState {
    /// The client sequence number up to which this state covers the
    /// client's bytes: everything before it is in the spool.
    pub fn covered_seq(&self) -> u32 {
        self.body_start_seq.wrapping_add(self.received as u32)
    }
}

/// What a fetcher needs to send an upload to the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    /// POST or PUT.
    pub method: Method,
    /// The spool file with the whole body.
    pub body: PathBuf,
    /// Its length.
    pub length: u64,
    /// `Content-Type`, if the client sent one.
    pub content_type: Option<String>,
}
