//! The RTP flow's checkpoint record: what a survivor needs to go on
//! sending a stream with the same SSRC and contiguous sequence numbers
//! (issue 18), as a fixed little-endian layout with its own version.
//!
//! Layout (version 1, [`RECORD_LEN`] bytes):
//!
//! | off | len | field |
//! |----:|----:|-------|
//! | 0 | 4 | magic `BRTP` |
//! | 4 | 2 | format version (1) |
//! | 6 | 2 | flags: 1 playing, 2 a PCR has been seen |
//! | 8 | 4 | SSRC |
//! | 12 | 2 | next sequence number |
//! | 14 | 2 | PID of the PCR (0 without one) |
//! | 16 | 4 | RTP timestamp of the next packet |
//! | 20 | 4 | packets sent (RTCP SR count) |
//! | 24 | 4 | payload octets sent (RTCP SR count) |
//! | 28 | 4 | reserved, zero |
//! | 32 | 8 | object offset of the next packet (a multiple of 188) |
//! | 40 | 8 | pacing: stream time of the next byte (27 MHz) |
//! | 48 | 8 | pacing: stream time at the last PCR |
//! | 56 | 8 | pacing: the last PCR's raw value (0 without one) |
//! | 64 | 8 | pacing: bytes since that PCR |
//! | 72 | 8 | pacing: byte rate (bytes/s, ≥ 1) |
//!
//! Times are stream times, never one box's clock: the survivor anchors
//! them to its own. Where the record is stored (the slot's application
//! block) is the appliance's business; this module only encodes.

use thiserror::Error;

use crate::pacing::PacingState;
use crate::ts::{PACKET, PCR_WRAP};

/// Length of an encoded record.
pub const RECORD_LEN: usize = 80;
const MAGIC: &[u8; 4] = b"BRTP";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
const FLAG_PLAYING: u16 = 1;
const FLAG_PCR: u16 = 2;

/// A flow's state at a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    /// The synchronisation source.
    pub ssrc: u32,
    /// Sequence number of the next packet.
    pub next_seq: u16,
    /// Its RTP timestamp.
    pub next_rtptime: u32,
    /// Its object offset.
    pub offset: u64,
    /// The pacing clock.
    pub pacing: PacingState,
    /// Packets sent so far.
    pub packets: u32,
    /// Payload octets sent so far.
    pub octets: u32,
    /// Whether the flow was playing (else paused).
    pub playing: bool,
}

/// Why bytes are not a record this build can restore.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than [`RECORD_LEN`] bytes.
    #[error("RTP flow record truncated: {0} bytes")]
    Truncated(usize),
    /// Not `BRTP`.
    #[error("not an RTP flow record")]
    BadMagic,
    /// Another format version.
    #[error("RTP flow record version {0}, this build reads {FORMAT_VERSION}")]
    UnsupportedVersion(u16),
    /// Flags or reserved bits this version does not define.
    #[error("unknown flags {0:#x}")]
    UnknownFlags(u16),
    /// An offset that is not on a TS packet boundary.
    #[error("offset {0} is not a multiple of 188")]
    Misaligned(u64),
    /// A PCR or PID out of its range, or a zero rate.
    #[error("pacing state out of range")]
    BadPacing,
}

impl FlowRecord {
    /// The record's bytes.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[0..4].copy_from_slice(MAGIC);
        b[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let mut flags = 0;
        if self.playing {
            flags |= FLAG_PLAYING;
        }
        let (pid, pcr) = match self.pacing.last_pcr {
            Some(p) => {
                flags |= FLAG_PCR;
                p
            }
            None => (0, 0),
        };
        b[6..8].copy_from_slice(&flags.to_le_bytes());
        b[8..12].copy_from_slice(&self.ssrc.to_le_bytes());
        b[12..14].copy_from_slice(&self.next_seq.to_le_bytes());
        b[14..16].copy_from_slice(&pid.to_le_bytes());
        b[16..20].copy_from_slice(&self.next_rtptime.to_le_bytes());
        b[20..24].copy_from_slice(&self.packets.to_le_bytes());
        b[24..28].copy_from_slice(&self.octets.to_le_bytes());
        for (i, v) in [
            self.offset,
            self.pacing.clock,
            self.pacing.clock_at_pcr,
            pcr,
            self.pacing.bytes_since_pcr,
            self.pacing.rate,
        ]
        .into_iter()
        .enumerate()
        {
            b[32 + 8 * i..40 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// Reads a record, checking every field a restore relies on.
    pub fn decode(b: &[u8]) -> Result<FlowRecord, DecodeError> {
        if b.len() < RECORD_LEN {
            return Err(DecodeError::Truncated(b.len()));
        }
        if &b[0..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = u16_at(b, 4);
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let flags = u16_at(b, 6);
        if flags & !(FLAG_PLAYING | FLAG_PCR) != 0 || u32_at(b, 28) != 0 {
            return Err(DecodeError::UnknownFlags(flags));
        }
        let u64s: [u64; 6] = std::array::from_fn(|i| u64_at(b, 32 + 8 * i));
        let [offset, clock, clock_at_pcr, pcr, bytes_since_pcr, rate] = u64s;
        if offset % PACKET as u64 != 0 {
            return Err(DecodeError::Misaligned(offset));
        }
        let pid = u16_at(b, 14);
        let last_pcr = if flags & FLAG_PCR != 0 {
            if pid > 0x1fff || pcr >= PCR_WRAP {
                return Err(DecodeError::BadPacing);
            }
            Some((pid, pcr))
        } else {
            None
        };
        if rate == 0 || clock_at_pcr > clock {
            return Err(DecodeError::BadPacing);
        }
        Ok(FlowRecord {
            ssrc: u32_at(b, 8),
            next_seq: u16_at(b, 12),
            next_rtptime: u32_at(b, 16),
            offset,
            pacing: PacingState {
                clock,
                clock_at_pcr,
                last_pcr,
                bytes_since_pcr,
                rate,
            },
            packets: u32_at(b, 20),
            octets: u32_at(b, 24),
            playing: flags & FLAG_PLAYING != 0,
        })
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record() -> FlowRecord {
        FlowRecord {
            ssrc: 0xdead_beef,
            next_seq: 65_535,
            next_rtptime: 4_000_000_000,
            offset: 188 * 7 * 1000,
            pacing: PacingState {
                clock: 27_000_000 * 12,
                clock_at_pcr: 27_000_000 * 11,
                last_pcr: Some((0x100, PCR_WRAP - 1)),
                bytes_since_pcr: 188 * 3,
                rate: 250_000,
            },
            packets: 1000,
            octets: 1_316_000,
            playing: true,
        }
    }

    #[test]
    fn round_trips() {
        let r = record();
        assert_eq!(FlowRecord::decode(&r.encode()), Ok(r));
        let mut q = r;
        q.pacing.last_pcr = None;
        q.playing = false;
        assert_eq!(FlowRecord::decode(&q.encode()), Ok(q));
    }

    #[test]
    fn every_bad_field_is_a_typed_error() {
        let good = record().encode();
        assert_eq!(
            FlowRecord::decode(&good[..79]),
            Err(DecodeError::Truncated(79))
        );
        let mut b = good;
        b[0] = b'X';
        assert_eq!(FlowRecord::decode(&b), Err(DecodeError::BadMagic));
        let mut b = good;
        b[4] = 2;
        assert_eq!(
            FlowRecord::decode(&b),
            Err(DecodeError::UnsupportedVersion(2))
        );
        let mut b = good;
        b[6] = 0x7;
        assert_eq!(FlowRecord::decode(&b), Err(DecodeError::UnknownFlags(7)));
        let mut b = good;
        b[32] = b[32].wrapping_add(1);
        assert!(matches!(
            FlowRecord::decode(&b),
            Err(DecodeError::Misaligned(_))
        ));
        let mut b = good;
        b[72..80].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(FlowRecord::decode(&b), Err(DecodeError::BadPacing));
        let mut b = good;
        b[14..16].copy_from_slice(&0x2000u16.to_le_bytes());
        assert_eq!(FlowRecord::decode(&b), Err(DecodeError::BadPacing));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_without_panic(b in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = FlowRecord::decode(&b);
        }

        #[test]
        fn valid_records_round_trip(ssrc: u32, seq: u16, ts: u32, k in 0u64..1 << 40,
                                    clock in 0u64..1 << 50, back in 0u64..1 << 20,
                                    pcr in 0..PCR_WRAP, pid in 0u16..0x2000, rate in 1u64..1 << 40,
                                    playing: bool, has_pcr: bool) {
            let r = FlowRecord {
                ssrc, next_seq: seq, next_rtptime: ts, offset: k * 188,
                pacing: PacingState {
                    clock, clock_at_pcr: clock.saturating_sub(back),
                    last_pcr: has_pcr.then_some((pid, pcr)), bytes_since_pcr: back, rate,
                },
                packets: seq.into(), octets: ts, playing,
            };
            prop_assert_eq!(FlowRecord::decode(&r.encode()), Ok(r));
        }
    }
}
