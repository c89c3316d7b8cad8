//! `baton-rtsp`: RTSP 1.0 (RFC 2326) streaming of cached MPEG-TS objects
//! as RTP (RFC 3550, payload type 33 per RFC 2250), in the sans-IO manner
//! of the dataplane's TCP: bytes and `now` in, responses, packets and send
//! times out.
//!
//! Where to start reading: [`request`] parses what a client sends,
//! [`session`] is the per-connection state machine (RFC 2326 Appendix A)
//! that answers it and tells a [`session::Host`] what to stream; [`flow`]
//! sends an object as RTP at the pace of its PCRs ([`ts`], [`pacing`]) and
//! is checkpointed and restored through [`checkpoint`].
//!
//! This crate owns no socket, reads no clock and knows nothing of the
//! dataplane, the cache, the segment or takeover; it depends on no Baton
//! crate, so every layer above can build on it.

#![deny(missing_docs)]

pub mod bundle;
pub mod checkpoint;
pub mod conn;
pub mod flow;
pub mod npt;
pub mod pacing;
pub mod request;
pub mod response;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod transport;
pub mod ts;

pub use bundle::{BundleError, BundleRecord};
pub use checkpoint::{DecodeError, FlowRecord};
pub use conn::{Conn, Counts, Dest, Lookup};
pub use flow::{FlowConfig, RtpFlow};
pub use request::{parse, Limits, Message, Method, ParseError, Request};
pub use response::Response;
pub use session::{Config, Host, ObjectInfo, RtpInfo, Session, Snapshot, State};
pub use transport::{Transport, TransportError};
