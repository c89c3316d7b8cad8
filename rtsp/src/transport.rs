//! The `Transport` header of SETUP (RFC 2326 §12.39): which of the
//! client's proposals Baton can serve, and the echo it answers with.
//!
//! Only unicast RTP/AVP is served: over UDP to `client_port`, or
//! interleaved on the RTSP connection (§10.12). `destination` may only name
//! the client's own address; a server that sent media wherever a request
//! asked would be a traffic amplifier (§17 "Security Considerations").
//! Knows nothing of sessions or sockets.

use std::net::IpAddr;

/// A transport Baton agreed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RTP and RTCP over UDP to the client's ports.
    Udp {
        /// The client's RTP port (RTCP is `rtp + 1` or the range's end).
        client_rtp: u16,
        /// The client's RTCP port.
        client_rtcp: u16,
    },
    /// RTP and RTCP in `$` frames on the RTSP connection.
    Interleaved {
        /// The RTP channel.
        rtp: u8,
        /// The RTCP channel.
        rtcp: u8,
    },
}

/// Why no proposal was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// No proposal is unicast RTP/AVP over UDP or TCP with ports or
    /// channels (461).
    Unsupported,
    /// A proposal's `destination` is not the client (403).
    ForeignDestination,
}

impl TransportError {
    /// The status to answer with.
    pub fn status(self) -> u16 {
        match self {
            TransportError::Unsupported => 461,
            TransportError::ForeignDestination => 403,
        }
    }
}

/// Picks the first proposal of `header` Baton serves (§12.39: "the
/// server ... selects the first transport specification it supports"),
/// skipping UDP ones unless `udp`.
pub fn choose(header: &str, client: IpAddr, udp: bool) -> Result<Transport, TransportError> {
    let mut foreign = false;
    for spec in header.split(',') {
        match one(spec.trim(), client) {
            // UDP not offered to this client: the next proposal.
            Ok(Transport::Udp { .. }) if !udp => {}
            Ok(t) => return Ok(t),
            Err(TransportError::ForeignDestination) => foreign = true,
            Err(TransportError::Unsupported) => {}
        }
    }
    Err(if foreign {
        TransportError::ForeignDestination
    } else {
        TransportError::Unsupported
    })
}

fn one(spec: &str, client: IpAddr) -> Result<Transport, TransportError> {
    let mut parts = spec.split(';').map(str::trim);
    let proto = parts.next().unwrap_or("");
    let tcp = match proto {
        "RTP/AVP" | "RTP/AVP/UDP" => false,
        "RTP/AVP/TCP" => true,
        _ => return Err(TransportError::Unsupported),
    };
    let mut ports = None;
    let mut channels = None;
    for p in parts {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        match k.to_ascii_lowercase().as_str() {
            "unicast" => {}
            "multicast" => return Err(TransportError::Unsupported),
            "client_port" => ports = Some(pair(v).ok_or(TransportError::Unsupported)?),
            "interleaved" => channels = Some(pair(v).ok_or(TransportError::Unsupported)?),
            "destination" => {
                let d: IpAddr = v.parse().map_err(|_| TransportError::ForeignDestination)?;
                if d != client {
                    return Err(TransportError::ForeignDestination);
                }
            }
            "mode" if !v.trim_matches('"').eq_ignore_ascii_case("play") => {
                return Err(TransportError::Unsupported)
            }
            _ => {}
        }
    }
    if tcp {
        let (a, b) = channels.ok_or(TransportError::Unsupported)?;
        let (Ok(rtp), Ok(rtcp)) = (u8::try_from(a), u8::try_from(b)) else {
            return Err(TransportError::Unsupported);
        };
        Ok(Transport::Interleaved { rtp, rtcp })
    } else {
        let (a, b) = ports.ok_or(TransportError::Unsupported)?;
        let (Ok(rtp), Ok(rtcp)) = (u16::try_from(a), u16::try_from(b)) else {
            return Err(TransportError::Unsupported);
        };
        if rtp == 0 || rtcp == 0 {
            return Err(TransportError::Unsupported);
        }
        Ok(Transport::Udp {
            client_rtp: rtp,
            client_rtcp: rtcp,
        })
    }
}

/// `a-b` or `a` (then `b = a + 1`, §12.39 "port").
fn pair(v: &str) -> Option<(u32, u32)> {
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: u32 = v.trim().parse().ok()?;
            Some((a, a.checked_add(1)?))
        }
    }
}

impl Transport {
    /// The `Transport` header of the SETUP response.
    pub fn echo(&self, server_ports: (u16, u16), ssrc: u32) -> String {
        match self {
            Transport::Udp {
                client_rtp,
                client_rtcp,
            } => format!(
                "RTP/AVP;unicast;client_port={client_rtp}-{client_rtcp};server_port={}-{};ssrc={ssrc:08X}",
                server_ports.0, server_ports.1
            ),
            Transport::Interleaved { rtp, rtcp } => {
                format!("RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp};ssrc={ssrc:08X}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> IpAddr {
        IpAddr::from([198, 18, 0, 2])
    }

    #[test]
    fn udp_unicast_with_client_ports() {
        assert_eq!(
            choose("RTP/AVP;unicast;client_port=5000-5001", client(), true),
            Ok(Transport::Udp {
                client_rtp: 5000,
                client_rtcp: 5001
            })
        );
    }

    #[test]
    fn tcp_interleaved_channels() {
        assert_eq!(
            choose("RTP/AVP/TCP;unicast;interleaved=0-1", client(), true),
            Ok(Transport::Interleaved { rtp: 0, rtcp: 1 })
        );
    }

    #[test]
    fn the_first_supported_proposal_wins() {
        assert_eq!(
            choose(
                "RTP/SAVP;unicast;client_port=1-2, RTP/AVP/TCP;interleaved=2-3",
                client(),
                true
            ),
            Ok(Transport::Interleaved { rtp: 2, rtcp: 3 })
        );
    }

    #[test]
    fn multicast_raw_and_portless_proposals_are_461() {
        for t in [
            "RTP/AVP;multicast;client_port=5000-5001",
            "RAW/RAW/UDP;unicast;client_port=5000-5001",
            "RTP/AVP;unicast",
            "RTP/AVP;unicast;client_port=70000-70001",
            "RTP/AVP/TCP;interleaved=0-300",
            "RTP/AVP;unicast;client_port=5000-5001;mode=record",
            "RTP/AVP;unicast;client_port=4294967295",
        ] {
            assert_eq!(
                choose(t, client(), true),
                Err(TransportError::Unsupported),
                "{t}"
            );
            assert_eq!(TransportError::Unsupported.status(), 461);
        }
    }

    #[test]
    fn a_destination_other_than_the_client_is_refused() {
        assert_eq!(
            choose(
                "RTP/AVP;unicast;destination=203.0.113.9;client_port=5000-5001",
                client(),
                true
            ),
            Err(TransportError::ForeignDestination)
        );
        assert_eq!(
            choose(
                "RTP/AVP;unicast;destination=198.18.0.2;client_port=5000-5001",
                client(),
                true
            ),
            Ok(Transport::Udp {
                client_rtp: 5000,
                client_rtcp: 5001
            })
        );
    }

    #[test]
    fn without_udp_the_next_proposal_is_taken_or_461() {
        let both = "RTP/AVP;unicast;client_port=5000-5001, RTP/AVP/TCP;interleaved=0-1";
        assert_eq!(
            choose(both, client(), false),
            Ok(Transport::Interleaved { rtp: 0, rtcp: 1 })
        );
        assert_eq!(
            choose("RTP/AVP;unicast;client_port=5000-5001", client(), false),
            Err(TransportError::Unsupported)
        );
    }

    #[test]
    fn echo_names_server_ports_and_ssrc() {
        let t = Transport::Udp {
            client_rtp: 5000,
            client_rtcp: 5001,
        };
        assert_eq!(
            t.echo((6970, 6971), 0xdeadbeef),
            "RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=DEADBEEF"
        );
    }
}
