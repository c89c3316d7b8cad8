//! The SDP (RFC 4566) that DESCRIBE answers for an MPEG-TS object: one
//! media line of RTP payload type 33 (RFC 3551 "MP2T", 90 kHz), controlled
//! at `trackID=0` under the object's URL. Knows nothing of sessions.

use std::net::IpAddr;

/// The control suffix of the object's one stream.
pub const TRACK: &str = "trackID=0";

/// The SDP body for an object of `duration_ms` served from `server`.
pub fn describe(server: IpAddr, session_version: u64, name: &str, duration_ms: u64) -> String {
    let family = if server.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\n\
         o=- {session_version} 1 IN {family} {server}\r\n\
         s={name}\r\n\
         c=IN {family} {any}\r\n\
         t=0 0\r\n\
         a=control:*\r\n\
         a=range:npt=0-{}.{:03}\r\n\
         m=video 0 RTP/AVP 33\r\n\
         a=rtpmap:33 MP2T/90000\r\n\
         a=control:{TRACK}\r\n",
        duration_ms / 1000,
        duration_ms % 1000,
        any = if server.is_ipv4() { "0.0.0.0" } else { "::" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mp2t_stream_with_its_control_and_range() {
        let s = describe(IpAddr::from([198, 18, 0, 11]), 42, "clip.ts", 30_040);
        assert!(
            s.starts_with("v=0\r\no=- 42 1 IN IP4 198.18.0.11\r\n"),
            "{s}"
        );
        assert!(s.contains("m=video 0 RTP/AVP 33\r\na=rtpmap:33 MP2T/90000\r\n"));
        assert!(s.contains("a=range:npt=0-30.040\r\n"));
        assert!(s.ends_with("a=control:trackID=0\r\n"));
    }
}
