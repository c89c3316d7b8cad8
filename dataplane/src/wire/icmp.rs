//! ICMP echo (RFC 792): we answer pings to the service addresses we own,
//! nothing else (other ICMP types are counted and dropped).

use super::checksum::checksum;
use super::WireError;

/// Echo reply type.
pub const TYPE_ECHO_REPLY: u8 = 0;
/// Echo request type.
pub const TYPE_ECHO_REQUEST: u8 = 8;
/// Length of the ICMP header (type, code, checksum, identifier, sequence).
pub const HEADER_LEN: usize = 8;

/// A parsed ICMP message: type, code, and the rest after the checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpMessage<'a> {
    /// ICMP type.
    pub ty: u8,
    /// ICMP code.
    pub code: u8,
    /// Identifier (echo only).
    pub ident: u16,
    /// Sequence number (echo only).
    pub seq: u16,
    /// Data after the 8-byte header.
    pub data: &'a [u8],
}

/// Parses and verifies an ICMP message (checksum over the whole message).
pub fn parse(b: &[u8]) -> Result<IcmpMessage<'_>, WireError> {
    if b.len() < HEADER_LEN {
        return Err(WireError::IcmpTruncated);
    }
    if checksum(b) != 0 {
        return Err(WireError::IcmpBadChecksum);
    }
    Ok(IcmpMessage {
        ty: b[0],
        code: b[1],
        ident: u16::from_be_bytes([b[4], b[5]]),
        seq: u16::from_be_bytes([b[6], b[7]]),
        data: &b[HEADER_LEN..],
    })
}

/// Writes the echo reply to `req` into `buf` (same identifier, sequence
/// and data, RFC 792 "Echo or Echo Reply Message"); returns its length.
pub fn emit_echo_reply(buf: &mut [u8], req: &IcmpMessage<'_>) -> Result<usize, WireError> {
    let len = HEADER_LEN + req.data.len();
    let b = buf.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
    b[0] = TYPE_ECHO_REPLY;
    b[1] = 0;
    b[2] = 0;
    b[3] = 0;
    b[4..6].copy_from_slice(&req.ident.to_be_bytes());
    b[6..8].copy_from_slice(&req.seq.to_be_bytes());
    b[HEADER_LEN..].copy_from_slice(req.data);
    let c = checksum(b);
    b[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(data: &[u8]) -> Vec<u8> {
        let mut b = vec![TYPE_ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 1];
        b.extend_from_slice(data);
        let c = checksum(&b);
        b[2..4].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn echo_reply_mirrors_request_and_verifies() {
        let req = request(b"abcdefgh!");
        let m = parse(&req).unwrap();
        assert_eq!(m.ty, TYPE_ECHO_REQUEST);
        let mut out = [0u8; 64];
        let n = emit_echo_reply(&mut out, &m).unwrap();
        let r = parse(&out[..n]).unwrap();
        assert_eq!(r.ty, TYPE_ECHO_REPLY);
        assert_eq!((r.ident, r.seq, r.data), (0x1234, 1, &b"abcdefgh!"[..]));
    }

    #[test]
    fn corrupt_or_short_icmp_is_rejected() {
        let mut req = request(b"x");
        req[8] ^= 0xff;
        assert_eq!(parse(&req), Err(WireError::IcmpBadChecksum));
        assert_eq!(parse(&req[..7]), Err(WireError::IcmpTruncated));
    }
}
