//! The Internet checksum (RFC 1071): ones' complement sum of 16-bit words.
//!
//! Used by IPv4 (header only), ICMP (whole message) and TCP (pseudo-header,
//! header and payload, RFC 9293 §3.1). Sums are accumulated in a `u64` so a
//! long payload is folded only once at the end.

use std::net::IpAddr;

/// A running ones' complement sum. Feed it slices with [`Checksum::add`],
/// then take [`Checksum::finish`]. Slices of odd length are only allowed as
/// the last piece (RFC 1071 §4.1 pads the final odd byte with zero); the
/// accumulator tracks the odd byte so chunked payloads still sum right.
#[derive(Clone, Copy, Default, Debug)]
pub struct Checksum {
    sum: u64,
    /// A dangling odd byte from the previous slice (high half of a word).
    odd: Option<u8>,
}

impl Checksum {
    /// An empty sum.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a byte slice to the sum, continuing an odd-length previous slice.
    pub fn add(&mut self, mut data: &[u8]) {
        if let Some(hi) = self.odd.take() {
            match data.split_first() {
                Some((lo, rest)) => {
                    self.sum += u64::from(u16::from_be_bytes([hi, *lo]));
                    data = rest;
                }
                None => {
                    self.odd = Some(hi);
                    return;
                }
            }
        }
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            // Four 16-bit words at once; the u64 accumulator cannot overflow
            // for any frame we handle (2^48 words).
            let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.sum += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
        }
        let mut words = chunks.remainder().chunks_exact(2);
        for w in &mut words {
            self.sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            self.odd = Some(*last);
        }
    }

    /// Adds one 16-bit word.
    pub fn add_u16(&mut self, v: u16) {
        self.add(&v.to_be_bytes());
    }

    /// Adds a 32-bit value as two words.
    pub fn add_u32(&mut self, v: u32) {
        self.add(&v.to_be_bytes());
    }

    /// Folds the sum and returns its ones' complement, ready for the header.
    pub fn finish(self) -> u16 {
        !self.fold()
    }

    /// The folded sum, not complemented: what a header carries when the
    /// device completes the checksum (`CHECKSUM_PARTIAL`: the pseudo-header
    /// sum goes in the field, the device adds the rest and complements).
    pub fn fold(mut self) -> u16 {
        if let Some(hi) = self.odd.take() {
            self.sum += u64::from(u16::from_be_bytes([hi, 0]));
        }
        let mut s = self.sum;
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }
}

/// Checksum of one buffer (e.g. an IPv4 header). A buffer that already holds
/// its correct checksum sums to zero (RFC 1071 §1).
pub fn checksum(data: &[u8]) -> u16 {
    let mut c = Checksum::new();
    c.add(data);
    c.finish()
}

/// Starts a TCP/UDP checksum with the pseudo-header: RFC 9293 §3.1 for IPv4,
/// RFC 8200 §8.1 for IPv6. Mixed families give a sum that will not verify.
pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, len: u32) -> Checksum {
    let mut c = Checksum::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            c.add(&s.octets());
            c.add(&d.octets());
            c.add_u16(u16::from(protocol));
            // The TCP length fits 16 bits for IPv4 (total length is 16-bit).
            c.add_u16(len as u16);
        }
        (s, d) => {
            c.add(&ip_octets16(s));
            c.add(&ip_octets16(d));
            c.add_u32(len);
            c.add_u32(u32::from(protocol));
        }
    }
    c
}

fn ip_octets16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sums_as_documented() {
        // RFC 1071 §3 example: words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn chunked_odd_slices_sum_like_one_slice() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = checksum(&data);
        for split in [1, 3, 8, 9, 500, 1000] {
            let mut c = Checksum::new();
            c.add(&data[..split]);
            c.add(&data[split..]);
            assert_eq!(c.finish(), whole, "split at {split}");
        }
        let mut c = Checksum::new();
        for b in data.chunks(3) {
            c.add(b);
        }
        assert_eq!(c.finish(), whole);
    }

    #[test]
    fn buffer_holding_its_checksum_sums_to_zero() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0x00,
            0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = checksum(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(c, 0xb861); // the well-known example header's checksum
        assert_eq!(checksum(&hdr), 0);
    }
}
