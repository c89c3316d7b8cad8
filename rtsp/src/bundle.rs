//! The RTSP bundle's application state: one session and its RTP flow in
//! one record, stored opaque in the control connection's checkpoint
//! (`ConnRecord.app_state`, at most 1 KiB) so that the TCP connection and
//! the UDP flow move together in one write.
//!
//! Layout (version 1, little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `BRSS` |
//! | 4 | 2 | version (1) |
//! | 6 | 1 | state: 0 Init, 1 Ready, 2 Playing |
//! | 7 | 1 | transport: 0 none, 1 UDP, 2 interleaved |
//! | 8 | 2 | client RTP port / RTP channel |
//! | 10 | 2 | client RTCP port / RTCP channel |
//! | 12 | 8 | session id |
//! | 20 | 4 | SSRC |
//! | 24 | 8 | duration, ms |
//! | 32 | 8 | paused position, ms |
//! | 40 | 2 | path length n (≤ [`MAX_PATH`]; 0: none) |
//! | 42 | n | path (UTF-8) |
//! | 42+n | 1 | 1 when a flow record follows, else 0 |
//! | 43+n | 80 | the flow record ([`crate::checkpoint`]) |
//!
//! It knows nothing of where the bytes are stored or of TCP.

use thiserror::Error;

use crate::checkpoint::{DecodeError as FlowError, FlowRecord, RECORD_LEN};
use crate::session::{Snapshot, State};
use crate::transport::Transport;

const MAGIC: &[u8; 4] = b"BRSS";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
/// Longest object path kept (longer ones are not checkpointed).
pub const MAX_PATH: usize = 512;
const FIXED: usize = 42;
/// Longest encoded record.
pub const MAX_LEN: usize = FIXED + MAX_PATH + 1 + RECORD_LEN;

/// A session and its flow at a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleRecord {
    /// The session's identifier.
    pub session_id: u64,
    /// The stream's SSRC.
    pub ssrc: u32,
    /// The session machine's state.
    pub session: Snapshot,
    /// The RTP flow, once played.
    pub flow: Option<FlowRecord>,
}

/// Why a record was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BundleError {
    /// Shorter than its fields say.
    #[error("RTSP bundle record truncated")]
    Truncated,
    /// Not a bundle record.
    #[error("RTSP bundle record has a bad magic")]
    Magic,
    /// Written by another format version.
    #[error("RTSP bundle record version {0} is not {VERSION}")]
    Version(u16),
    /// A field out of its range.
    #[error("RTSP bundle record field {0} is invalid")]
    Field(&'static str),
    /// The path is longer than [`MAX_PATH`] (encode) or not UTF-8.
    #[error("RTSP bundle record path is too long or not UTF-8")]
    Path,
    /// The embedded flow record.
    #[error("RTSP bundle flow record: {0}")]
    Flow(#[from] FlowError),
}

impl BundleRecord {
    /// The encoded record, at most [`MAX_LEN`] bytes.
    pub fn encode(&self) -> Result<Vec<u8>, BundleError> {
        let path = self.session.path.as_deref().unwrap_or("");
        if path.len() > MAX_PATH {
            return Err(BundleError::Path);
        }
        let mut b = Vec::with_capacity(MAX_LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.push(match self.session.state {
            State::Init => 0,
            State::Ready => 1,
            State::Playing => 2,
        });
        let (kind, a, c) = match self.session.transport {
            None => (0, 0, 0),
            Some(Transport::Udp {
                client_rtp,
                client_rtcp,
            }) => (1, client_rtp, client_rtcp),
            Some(Transport::Interleaved { rtp, rtcp }) => (2, u16::from(rtp), u16::from(rtcp)),
        };
        b.push(kind);
        b.extend_from_slice(&a.to_le_bytes());
        b.extend_from_slice(&c.to_le_bytes());
        b.extend_from_slice(&self.session_id.to_le_bytes());
        b.extend_from_slice(&self.ssrc.to_le_bytes());
        b.extend_from_slice(&self.session.duration_ms.to_le_bytes());
        b.extend_from_slice(&self.session.paused_at_ms.to_le_bytes());
        b.extend_from_slice(&(path.len() as u16).to_le_bytes());
        b.extend_from_slice(path.as_bytes());
        match &self.flow {
            Some(f) => {
                b.push(1);
                b.extend_from_slice(&f.encode());
            }
            None => b.push(0),
        }
        Ok(b)
    }

    /// Decodes a record, checking every field a restore relies on.
    pub fn decode(b: &[u8]) -> Result<BundleRecord, BundleError> {
        let fixed = b.get(..FIXED).ok_or(BundleError::Truncated)?;
        if &fixed[..4] != MAGIC {
            return Err(BundleError::Magic);
        }
        let u16_at = |i: usize| u16::from_le_bytes([fixed[i], fixed[i + 1]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&fixed[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let version = u16_at(4);
        if version != VERSION {
            return Err(BundleError::Version(version));
        }
        let state = match fixed[6] {
            0 => State::Init,
            1 => State::Ready,
            2 => State::Playing,
            _ => return Err(BundleError::Field("state")),
        };
        let (a, c) = (u16_at(8), u16_at(10));
        let transport = match fixed[7] {
            0 => None,
            1 => Some(Transport::Udp {
                client_rtp: a,
                client_rtcp: c,
            }),
            2 => Some(Transport::Interleaved {
                rtp: u8::try_from(a).map_err(|_| BundleError::Field("rtp channel"))?,
                rtcp: u8::try_from(c).map_err(|_| BundleError::Field("rtcp channel"))?,
            }),
            _ => return Err(BundleError::Field("transport")),
        };
        if state != State::Init && transport.is_none() {
            return Err(BundleError::Field("transport"));
        }
        let session_id = u64_at(12);
        let ssrc = u32::from_le_bytes([fixed[20], fixed[21], fixed[22], fixed[23]]);
        let duration_ms = u64_at(24);
        let paused_at_ms = u64_at(32);
        let n = usize::from(u16_at(40));
        if n > MAX_PATH {
            return Err(BundleError::Path);
        }
        let rest = &b[FIXED..];
        let path = rest.get(..n).ok_or(BundleError::Truncated)?;
        let path = std::str::from_utf8(path).map_err(|_| BundleError::Path)?;
        let flow = match rest.get(n) {
            Some(0) => None,
            Some(1) => {
                let f = rest
                    .get(n + 1..n + 1 + RECORD_LEN)
                    .ok_or(BundleError::Truncated)?;
                Some(FlowRecord::decode(f)?)
            }
            Some(_) => return Err(BundleError::Field("flow flag")),
            None => return Err(BundleError::Truncated),
        };
        if flow.is_some_and(|f| f.ssrc != ssrc) {
            return Err(BundleError::Field("flow ssrc"));
        }
        Ok(BundleRecord {
            session_id,
            ssrc,
            session: Snapshot {
                state,
                path: (n > 0).then(|| path.to_string()),
                duration_ms,
                transport,
                paused_at_ms,
            },
            flow,
        })
    }
}
