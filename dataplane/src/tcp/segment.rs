//! A TCP segment as the state machine sees it: header fields already parsed
//! from the wire (see `wire::tcp`), payload borrowed from the frame.
//!
//! This is the contract between the wire layer and the state machine: the
//! wire layer fills a [`Segment`] from a received frame after checking the
//! checksum, and turns an [`OutSegment`] into a frame.

use super::seq::SeqNum;
use bytes::Bytes;

/// TCP header flags (RFC 9293 §3.1). Only the bits we act on; others are
/// ignored on receive and never sent.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Flags {
    /// No more data from the sender (RFC 9293 §3.1).
    pub fin: bool,
    /// Synchronize sequence numbers.
    pub syn: bool,
    /// Reset the connection.
    pub rst: bool,
    /// Push function.
    pub psh: bool,
    /// The acknowledgment field is significant.
    pub ack: bool,
    /// Urgent pointer significant (ignored: RFC 9293 §3.8.5 keeps it only for legacy).
    pub urg: bool,
    /// ECN-Echo (RFC 3168; not negotiated by Baton).
    pub ece: bool,
    /// Congestion Window Reduced (RFC 3168; not negotiated by Baton).
    pub cwr: bool,
}

/// Maximum SACK blocks carried in one segment (RFC 2018 §3: at most 4, 3 with timestamps).
pub const MAX_SACK_BLOCKS: usize = 4;

/// Options we parse and emit. Unknown options are skipped by the parser.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Options {
    /// MSS option (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift (SYN only, RFC 7323 §2).
    pub window_scale: Option<u8>,
    /// SACK-permitted (SYN only, RFC 2018).
    pub sack_permitted: bool,
    /// Timestamps option: (TSval, TSecr) (RFC 7323 §3).
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks, left edge inclusive, right edge exclusive.
    pub sack_blocks: [Option<(SeqNum, SeqNum)>; MAX_SACK_BLOCKS],
}

/// A received segment.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number of the first octet (of the SYN if set).
    pub seq: SeqNum,
    /// Acknowledgment number (meaningful when `flags.ack`).
    pub ack: SeqNum,
    /// Control bits.
    pub flags: Flags,
    /// Raw (unscaled) window field.
    pub window: u16,
    /// Parsed options.
    pub options: Options,
    /// Payload, borrowed from the received frame.
    pub payload: &'a [u8],
}

impl Segment<'_> {
    /// Sequence space this segment occupies: payload plus SYN and FIN.
    pub fn seq_len(&self) -> u32 {
        self.payload.len() as u32 + self.flags.syn as u32 + self.flags.fin as u32
    }
}

/// A segment the state machine wants sent. The payload is a reference-counted
/// slice of the send queue, so retransmissions and cached objects go to the
/// wire without a copy in the TCP layer.
#[derive(Clone, Debug, Default)]
pub struct OutSegment {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number of the first octet (of the SYN if set).
    pub seq: SeqNum,
    /// Acknowledgment number (meaningful when `flags.ack`).
    pub ack: SeqNum,
    /// Control bits.
    pub flags: Flags,
    /// Raw window field (already scaled down).
    pub window: u16,
    /// Options to emit.
    pub options: Options,
    /// Payload chunks in order; their total length is the payload length.
    pub payload: Vec<Bytes>,
}

impl OutSegment {
    /// Total payload length in bytes.
    pub fn payload_len(&self) -> usize {
        self.payload.iter().map(|b| b.len()).sum()
    }
}
