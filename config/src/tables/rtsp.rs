//! `[rtsp]`: RTSP streaming of cached MPEG-TS objects (issue 18,
//! docs/RTSP.md): the TCP port of the control connection, the UDP ports
//! the server sends RTP and RTCP from, the pacing, the session timeout and
//! the RTP flows' checkpoint cadence.
//!
//! The rules within the table: the UDP range starts even (RTP on the even
//! port, RTCP on the next, RFC 3550 §11) and holds at least one pair. The
//! rule with other tables (the TCP port is free) is the root's, in
//! `super`. Knows nothing of RTSP itself.

use crate::convert::*;
use crate::read::{Checker, Tbl};
use crate::schema::*;

/// Default `rtsp.port` (RFC 2326 §3.2).
pub const DEFAULT_RTSP_PORT: u16 = 554;

table! {
    /// `[rtsp]`: RTSP streaming.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct RtspConfig: Default {
        /// Serve RTSP at all (issue 18; streams are not checkpointed yet).
        enabled: bool = or(false, boolean),
        /// TCP port of RTSP on every service IP (not service.port, tls.port or the admin port).
        port: u16 = or(DEFAULT_RTSP_PORT, int_in(1, 65535)),
        /// First UDP port of the server's RTP/RTCP pairs (even).
        udp_port_min: u16 = or(6970, int_in(1024, 65534)),
        /// Last UDP port of the pairs (above udp_port_min).
        udp_port_max: u16 = or(6999, int_in(1025, 65535)),
        /// How far ahead of its PCR time an RTP packet may leave, milliseconds (0..=2000).
        pacing_lead_ms: u64 = or(100, int_in(0, 2000)),
        /// Bitrate assumed until a stream's PCRs show its own, bit/s.
        initial_bitrate: u64 = or(2_000_000, int_in(64_000, 10_000_000_000)),
        /// Session timeout announced in `Session: ...;timeout=`, milliseconds.
        session_timeout_ms: u64 = or(60_000, int_in(1_000, 3_600_000)),
        /// How often a playing RTP flow is checkpointed, milliseconds.
        checkpoint_interval_ms: u64 = or(200, int_in(10, 10_000)),
    }
    check = port_range;
}

impl RtspConfig {
    /// RTP/RTCP port pairs in the range.
    pub fn port_pairs(&self) -> u16 {
        self.udp_port_max
            .saturating_sub(self.udp_port_min)
            .div_ceil(2)
    }
}

/// `udp_port_min` even and below `udp_port_max`.
fn port_range(c: &mut Checker<'_>, t: &Tbl<'_>, p: &mut Parts) -> bool {
    let (Some(min), Some(max)) = (p.udp_port_min, p.udp_port_max) else {
        return true;
    };
    let mut ok = true;
    if min % 2 != 0 {
        ok = false;
        let line = c.key_line(t, "udp_port_min");
        c.problem(
            line,
            t.key_path("udp_port_min"),
            format!("expected an even port (RTP on the even port, RTCP on the next), found {min}"),
        );
    }
    if max <= min {
        ok = false;
        let line = c.key_line(t, "udp_port_max");
        c.problem(
            line,
            t.key_path("udp_port_max"),
            format!("expected more than rtsp.udp_port_min ({min}), found {max}: the range must hold an RTP/RTCP pair"),
        );
    }
    ok
}
