//! RTP packets (RFC 3550 §5.1) carrying MPEG-TS (RFC 2250 §2): the
//! 12-byte fixed header with payload type 33 and whole 188-byte packets,
//! seven to a packet so that one fits a 1500-byte MTU. Also the `$` frame
//! of RTSP interleaving (RFC 2326 §10.12). Knows nothing of pacing.

use thiserror::Error;

/// RTP payload type of MPEG-2 transport streams (RFC 3551 "MP2T").
pub const PT_MP2T: u8 = 33;
/// Bytes of the fixed header.
pub const HEADER: usize = 12;
/// TS packets per RTP packet: 7 × 188 + 12 + 8 + 20 = 1356 bytes on IPv4.
pub const TS_PER_PACKET: usize = 7;

/// The fixed header's fields Baton writes and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload type.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp (90 kHz for MP2T).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// Why bytes are not an RTP packet.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than the fixed header plus its CSRCs.
    #[error("truncated RTP header")]
    Truncated,
    /// Version is not 2.
    #[error("RTP version {0}")]
    BadVersion(u8),
}

impl Header {
    /// Appends the 12-byte header (V=2, no padding, extension or CSRC).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push((u8::from(self.marker) << 7) | (self.pt & 0x7f));
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
    }

    /// Parses a packet's header; returns it and the payload's offset.
    pub fn parse(b: &[u8]) -> Result<(Header, usize), RtpError> {
        if b.len() < HEADER {
            return Err(RtpError::Truncated);
        }
        let v = b[0] >> 6;
        if v != 2 {
            return Err(RtpError::BadVersion(v));
        }
        let cc = usize::from(b[0] & 0x0f);
        let mut off = HEADER + 4 * cc;
        if b[0] & 0x10 != 0 {
            let ext = b.get(off + 2..off + 4).ok_or(RtpError::Truncated)?;
            off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        }
        if b.len() < off {
            return Err(RtpError::Truncated);
        }
        Ok((
            Header {
                pt: b[1] & 0x7f,
                marker: b[1] & 0x80 != 0,
                seq: u16::from_be_bytes([b[2], b[3]]),
                timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            },
            off,
        ))
    }
}

/// Wraps `packet` in an interleaved frame on `channel`; `None` if it does
/// not fit the 16-bit length.
pub fn interleave(channel: u8, packet: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let len = u16::try_from(packet.len()).ok()?;
    out.push(b'$');
    out.push(channel);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = Header {
            pt: PT_MP2T,
            marker: false,
            seq: 65535,
            timestamp: 0xdead_beef,
            ssrc: 7,
        };
        let mut b = Vec::new();
        h.write(&mut b);
        assert_eq!(b.len(), HEADER);
        assert_eq!(b[0], 0x80);
        assert_eq!(b[1], 33);
        assert_eq!(Header::parse(&b), Ok((h, HEADER)));
    }

    #[test]
    fn short_or_wrong_version_packets_are_errors() {
        assert_eq!(Header::parse(&[0x80; 11]), Err(RtpError::Truncated));
        assert_eq!(Header::parse(&[0x40; 12]), Err(RtpError::BadVersion(1)));
        // Two CSRCs announced, none present.
        assert_eq!(Header::parse(&[0x82; 12]), Err(RtpError::Truncated));
        // An extension header announced, none present.
        assert_eq!(Header::parse(&[0x90; 12]), Err(RtpError::Truncated));
    }

    #[test]
    fn interleaved_frame_has_dollar_channel_and_length() {
        let mut out = Vec::new();
        interleave(1, &[9, 9, 9], &mut out);
        assert_eq!(out, [b'$', 1, 0, 3, 9, 9, 9]);
        assert_eq!(interleave(0, &vec![0; 70_000], &mut Vec::new()), None);
    }
}
