//! Ethernet II framing (IEEE 802.3 with an EtherType, RFC 894).

use super::WireError;

/// Length of an Ethernet II header: destination, source, EtherType.
pub const HEADER_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// The broadcast address.
pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Group (multicast or broadcast) addresses have the low bit of the first octet set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
    /// The all-ones broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == BROADCAST
    }
}

impl std::fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::str::FromStr for MacAddr {
    type Err = WireError;
    /// Parses `aa:bb:cc:dd:ee:ff`.
    fn from_str(s: &str) -> Result<Self, WireError> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for o in out.iter_mut() {
            let p = parts.next().ok_or(WireError::Unsupported)?;
            *o = u8::from_str_radix(p, 16).map_err(|_| WireError::Unsupported)?;
        }
        if parts.next().is_some() {
            return Err(WireError::Unsupported);
        }
        Ok(MacAddr(out))
    }
}

/// A parsed Ethernet II header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetHeader {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// EtherType of the payload.
    pub ethertype: u16,
}

/// Splits a frame into its header and payload.
pub fn parse(frame: &[u8]) -> Result<(EthernetHeader, &[u8]), WireError> {
    if frame.len() < HEADER_LEN {
        return Err(WireError::EthernetTruncated);
    }
    let (h, payload) = frame.split_at(HEADER_LEN);
    let mut dst = [0u8; 6];
    let mut src = [0u8; 6];
    dst.copy_from_slice(&h[0..6]);
    src.copy_from_slice(&h[6..12]);
    let ethertype = u16::from_be_bytes([h[12], h[13]]);
    Ok((
        EthernetHeader {
            dst: MacAddr(dst),
            src: MacAddr(src),
            ethertype,
        },
        payload,
    ))
}

/// Writes an Ethernet header at the start of `buf`; returns its length.
pub fn emit(buf: &mut [u8], h: &EthernetHeader) -> Result<usize, WireError> {
    let out = buf.get_mut(..HEADER_LEN).ok_or(WireError::BufferTooSmall)?;
    out[0..6].copy_from_slice(&h.dst.0);
    out[6..12].copy_from_slice(&h.src.0);
    out[12..14].copy_from_slice(&h.ethertype.to_be_bytes());
    Ok(HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = EthernetHeader {
            dst: BROADCAST,
            src: MacAddr([2, 0, 0, 0, 0, 1]),
            ethertype: ETHERTYPE_ARP,
        };
        let mut buf = [0u8; 20];
        assert_eq!(emit(&mut buf, &h), Ok(14));
        let (p, rest) = parse(&buf).unwrap();
        assert_eq!(p, h);
        assert_eq!(rest.len(), 6);
    }

    #[test]
    fn short_frame_is_truncated() {
        assert_eq!(parse(&[0u8; 13]), Err(WireError::EthernetTruncated));
    }

    #[test]
    fn mac_parses_from_text() {
        let m: MacAddr = "02:00:0a:ff:00:01".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0x0a, 0xff, 0, 1]);
        assert!("02:00".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:00:00:00".parse::<MacAddr>().is_err());
    }
}
