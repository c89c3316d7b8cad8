//! RTCP sender reports (RFC 3550 §6.4.1) with the SDES CNAME every
//! compound packet carries (§6.1), and the BYE sent at TEARDOWN (§6.6).
//! Times come in as arguments (NTP format); knows nothing of sockets.

/// RTCP packet type of a sender report.
pub const PT_SR: u8 = 200;
/// RTCP packet type of source description.
pub const PT_SDES: u8 = 202;
/// RTCP packet type of BYE.
pub const PT_BYE: u8 = 203;

/// What one sender report states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// Wallclock time, NTP format (seconds since 1900 << 32 | fraction).
    pub ntp: u64,
    /// The RTP timestamp of the same instant.
    pub rtp_time: u32,
    /// Packets sent since the stream began.
    pub packets: u32,
    /// Payload octets sent since the stream began.
    pub octets: u32,
}

impl SenderReport {
    /// Appends SR ‖ SDES(CNAME) as one compound packet. A CNAME longer
    /// than 255 bytes is cut (its length is one byte).
    pub fn write(&self, cname: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0x80, PT_SR, 0, 6]);
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&self.ntp.to_be_bytes());
        out.extend_from_slice(&self.rtp_time.to_be_bytes());
        out.extend_from_slice(&self.packets.to_be_bytes());
        out.extend_from_slice(&self.octets.to_be_bytes());
        let name = &cname.as_bytes()[..cname.len().min(255)];
        // SSRC, CNAME item (type, length, text), then a null item and
        // padding to a 32-bit boundary (§6.5).
        let items = 4 + 2 + name.len() + 1;
        let words = items.div_ceil(4);
        out.extend_from_slice(&[0x81, PT_SDES]);
        out.extend_from_slice(&(words as u16).to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.push(1);
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.resize(out.len() + words * 4 - (4 + 2 + name.len()), 0);
    }
}

/// Appends a BYE for `ssrc`.
pub fn bye(ssrc: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x81, PT_BYE, 0, 1]);
    out.extend_from_slice(&ssrc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_report_then_cname_in_whole_words() {
        let sr = SenderReport {
            ssrc: 0x0102_0304,
            ntp: 0xAABB_CCDD_0000_0001,
            rtp_time: 90_000,
            packets: 10,
            octets: 13_160,
        };
        let mut b = Vec::new();
        sr.write("baton", &mut b);
        assert_eq!(&b[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(&b[16..20], &90_000u32.to_be_bytes());
        assert_eq!(&b[24..28], &13_160u32.to_be_bytes());
        let sdes = &b[28..];
        assert_eq!(sdes[1], PT_SDES);
        let words = usize::from(u16::from_be_bytes([sdes[2], sdes[3]]));
        assert_eq!(sdes.len(), 4 + words * 4);
        assert_eq!(&sdes[8..15], b"\x01\x05baton");
        assert_eq!(sdes[15], 0);
    }

    #[test]
    fn bye_names_the_source() {
        let mut b = Vec::new();
        bye(9, &mut b);
        assert_eq!(b, [0x81, 203, 0, 1, 0, 0, 0, 9]);
    }
}
