//! FTP for Baton (issue 17): the server side of the control connection of
//! a read-only anonymous FTP service over the cache, as a sans-IO state
//! machine, and the checkpoint records a survivor restores it from.
//!
//! Bytes and virtual time in, [`Action`]s out: the host opens the passive
//! listener, connects the active data connection, streams the object and
//! sends the reply bytes. This crate must not know the dataplane, the
//! appliance, the segment, the cache or HTTP: they use it.
//!
//! Where to start reading: [`session::Session`] takes command lines;
//! `command` parses one line (RFC 959, 2428, 3659); `reply` formats
//! replies; `addr` handles PORT/EPRT/PASV/EPSV addresses; `listing` formats
//! LIST/NLST/MLSD from the caller's objects; `checkpoint` is the control
//! and data records of a bundle.

#![deny(missing_docs)]

pub mod addr;
pub mod checkpoint;
pub mod command;
pub mod listing;
pub mod reply;
pub mod session;

pub use checkpoint::{ControlRecord, DataRecord, DecodeError};
pub use command::{Command, ParseError};
pub use listing::{Catalog, Entry};
pub use reply::Reply;
pub use session::{Action, Config, DataKind, Session, TransferKind};

#[cfg(test)]
mod tests;
