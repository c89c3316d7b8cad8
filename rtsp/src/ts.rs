//! MPEG-2 transport stream packets (ISO/IEC 13818-1 §2.4.3): the 188-byte
//! packet, its PID, and the program clock reference (PCR) carried in the
//! adaptation field, which paces a stream (RFC 2250 §2: RTP timestamps
//! follow "the sender's 90KHz clock reference ... synchronized to the
//! system stream Program Clock Reference").
//!
//! The PCR is 42 bits: a 33-bit base at 90 kHz and a 9-bit extension at
//! 27 MHz; it wraps every 2^33 / 90 kHz ≈ 26.5 hours. Everything here
//! counts in 27 MHz ticks. Pure functions over bytes; knows nothing of RTP
//! or time.

/// Bytes in a transport stream packet.
pub const PACKET: usize = 188;
/// The sync byte every packet starts with.
pub const SYNC: u8 = 0x47;
/// PCR ticks per second.
pub const HZ: u64 = 27_000_000;
/// The PCR's modulus in 27 MHz ticks (2^33 × 300).
pub const PCR_WRAP: u64 = (1 << 33) * 300;

/// The PID of a packet (13 bits), if it starts with the sync byte.
pub fn pid(packet: &[u8]) -> Option<u16> {
    if packet.len() < 4 || packet[0] != SYNC {
        return None;
    }
    Some(u16::from_be_bytes([packet[1] & 0x1f, packet[2]]))
}

/// The PID and PCR (27 MHz ticks) of a packet whose adaptation field
/// carries one.
pub fn pcr(packet: &[u8]) -> Option<(u16, u64)> {
    let pid = pid(packet)?;
    let afc = (packet[3] >> 4) & 0x3;
    if afc & 0x2 == 0 {
        return None;
    }
    let af_len = usize::from(*packet.get(4)?);
    // Flags byte plus 6 bytes of PCR must fit in the adaptation field.
    if af_len < 7 || packet.len() < 12 {
        return None;
    }
    if packet[5] & 0x10 == 0 {
        return None;
    }
    let b = &packet[6..12];
    let base = (u64::from(b[0]) << 25)
        | (u64::from(b[1]) << 17)
        | (u64::from(b[2]) << 9)
        | (u64::from(b[3]) << 1)
        | (u64::from(b[4]) >> 7);
    let ext = (u64::from(b[4] & 0x1) << 8) | u64::from(b[5]);
    Some((pid, base * 300 + ext))
}

/// Ticks from PCR `a` to PCR `b`, across one wrap.
pub fn pcr_delta(a: u64, b: u64) -> u64 {
    if b >= a {
        b - a
    } else {
        PCR_WRAP - a + b
    }
}

/// Where a PLAY from some normal play time starts in an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeekPoint {
    /// Byte offset of the packet carrying the PCR (a multiple of 188).
    pub offset: u64,
    /// Stream time of that packet since the object's first PCR, in 27 MHz.
    pub clock: u64,
    /// The raw PCR there and its PID, if the object has any.
    pub pcr: Option<(u16, u64)>,
}

/// The first PCR-carrying packet at or after `npt_ms` of the object (the
/// last one if the object ends first). Time 0, and objects without PCR,
/// start at byte 0: the tables a player needs first (PAT, PMT) come before
/// the first PCR.
pub fn seek(data: &[u8], npt_ms: u64) -> SeekPoint {
    let target = npt_ms.saturating_mul(HZ / 1000);
    let mut best = SeekPoint {
        offset: 0,
        clock: 0,
        pcr: None,
    };
    if target == 0 {
        return best;
    }
    let mut first: Option<(u16, u64)> = None;
    let mut clock = 0;
    let mut prev = 0;
    for (i, p) in data.chunks_exact(PACKET).enumerate() {
        let Some((pid, v)) = pcr(p) else { continue };
        match first {
            None => {
                first = Some((pid, v));
                prev = v;
            }
            Some((fpid, _)) if fpid != pid => continue,
            Some(_) => {
                clock += pcr_delta(prev, v);
                prev = v;
            }
        }
        best = SeekPoint {
            offset: (i * PACKET) as u64,
            clock,
            pcr: Some((pid, v)),
        };
        if clock >= target {
            break;
        }
    }
    best
}

/// Builds a 188-byte packet of `pid`, with a PCR when given (tests, the
/// fuzz corpus and the lab use it to make synthetic streams).
pub fn build_packet(pid: u16, cc: u8, pcr: Option<u64>, fill: u8) -> [u8; PACKET] {
    let mut p = [fill; PACKET];
    p[0] = SYNC;
    p[1] = ((pid >> 8) as u8) & 0x1f;
    p[2] = pid as u8;
    match pcr {
        None => p[3] = 0x10 | (cc & 0xf),
        Some(v) => {
            p[3] = 0x30 | (cc & 0xf);
            p[4] = 7;
            p[5] = 0x10;
            let base = (v / 300) % (1 << 33);
            let ext = v % 300;
            p[6] = (base >> 25) as u8;
            p[7] = (base >> 17) as u8;
            p[8] = (base >> 9) as u8;
            p[9] = (base >> 1) as u8;
            p[10] = (((base & 1) as u8) << 7) | 0x7e | ((ext >> 8) as u8 & 1);
            p[11] = ext as u8;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_round_trips_base_and_extension() {
        for v in [0, 1, 299, 300, 27_000_000, PCR_WRAP - 1] {
            let p = build_packet(0x100, 3, Some(v), 0xff);
            assert_eq!(pcr(&p), Some((0x100, v)), "{v}");
        }
    }

    #[test]
    fn packets_without_adaptation_pcr_or_sync_have_none() {
        let p = build_packet(0x100, 0, None, 0);
        assert_eq!(pcr(&p), None);
        let mut q = build_packet(0x100, 0, Some(5), 0);
        q[5] = 0; // PCR flag off
        assert_eq!(pcr(&q), None);
        let mut r = build_packet(0x100, 0, Some(5), 0);
        r[0] = 0x48;
        assert_eq!(pcr(&r), None);
        let mut s = build_packet(0x100, 0, Some(5), 0);
        s[4] = 1; // adaptation field too short to hold a PCR
        assert_eq!(pcr(&s), None);
        assert_eq!(pcr(&[0x47, 0, 0, 0x30]), None);
    }

    #[test]
    fn delta_crosses_the_wrap() {
        assert_eq!(pcr_delta(10, 25), 15);
        assert_eq!(pcr_delta(PCR_WRAP - 5, 5), 10);
    }

    #[test]
    fn seek_finds_the_first_pcr_at_or_after_the_time() {
        // A PCR every 10 packets, 100 ms apart, starting near the wrap.
        let start = PCR_WRAP - HZ / 20;
        let mut data = Vec::new();
        for i in 0..100u64 {
            let pcr = (i % 10 == 0).then(|| (start + (i / 10) * HZ / 10) % PCR_WRAP);
            data.extend_from_slice(&build_packet(0x100, i as u8, pcr, 0));
        }
        let s = seek(&data, 250);
        assert_eq!(s.offset, 30 * 188);
        assert_eq!(s.clock, 3 * HZ / 10);
        assert_eq!(seek(&data, 0).offset, 0);
        assert_eq!(seek(&data, 99_000).offset, 90 * 188);
        assert_eq!(seek(&[0u8; 10], 5).offset, 0);
    }

    #[test]
    fn seek_to_zero_keeps_the_tables_before_the_first_pcr() {
        // PAT and PMT (PIDs 0 and 0x1000) come before the first PCR, as
        // ffmpeg writes them: a player needs them first.
        let mut data = Vec::new();
        data.extend_from_slice(&build_packet(0, 0, None, 0));
        data.extend_from_slice(&build_packet(0x1000, 0, None, 0));
        data.extend_from_slice(&build_packet(0x100, 0, Some(900_000), 0));
        assert_eq!(seek(&data, 0).offset, 0);
        assert_eq!(seek(&data, 0).pcr, None);
        assert_eq!(seek(&data, 1).offset, 2 * 188);
    }
}
