//! Target `rtsp`: the RTSP request parser and the session machine behind
//! it, as a connection feeds them, plus the other parsers of `baton-rtsp`
//! that take bytes from the network or the segment (RTP header, TS PCR,
//! the RTP flow's checkpoint record, and a flow restored from it).

use baton_rtsp::{
    checkpoint::FlowRecord, parse, rtp, ts, Config, FlowConfig, Host, Limits, Message, ObjectInfo,
    RtpFlow, RtpInfo, Session, Transport,
};
use std::net::IpAddr;

struct NullHost;

impl Host for NullHost {
    fn lookup(&mut self, path: &str) -> Option<ObjectInfo> {
        (path == "/clip.ts").then_some(ObjectInfo {
            duration_ms: 30_000,
        })
    }
    fn play(&mut self, _: &str, from_ms: u64, _: Transport) -> RtpInfo {
        RtpInfo {
            seq: from_ms as u16,
            rtptime: from_ms as u32,
        }
    }
    fn pause(&mut self) -> u64 {
        12_345
    }
    fn stop(&mut self) {}
}

/// The input is a connection's bytes: requests (and interleaved frames)
/// parsed one after another and answered, the clock advancing a second
/// per request so timeouts fire too.
pub fn run(data: &[u8]) {
    if let Ok(rec) = FlowRecord::decode(data) {
        // A record from the segment drives a restored flow: whatever its
        // magnitudes, sending and reporting must not panic.
        let object: Vec<u8> = (0..20u16)
            .flat_map(|i| {
                ts::build_packet(
                    0x100,
                    i as u8,
                    (i % 4 == 0).then_some(u64::from(i) * 27_000),
                    0,
                )
            })
            .collect();
        let mut f = RtpFlow::restore(FlowConfig::default(), &rec, u64::from(rec.next_seq));
        let mut out = Vec::new();
        for step in 0..8u64 {
            let now = step.saturating_mul(rec.pacing.rate);
            f.poll_transmit(now, &object, &mut out);
            f.poll_rtcp(now, now, "fuzz", &mut out);
            let _ = f.poll_at(&object);
            out.clear();
        }
        let _ = f.resume(9);
        let _ = f.pause();
        let _ = f.checkpoint().encode();
    }
    if let Ok(rec) = baton_rtsp::BundleRecord::decode(data) {
        // A bundle record from the segment: re-encoding what was taken
        // must succeed and read back the same.
        if let Ok(b) = rec.encode() {
            assert_eq!(baton_rtsp::BundleRecord::decode(&b), Ok(rec));
        }
    }
    let _ = rtp::Header::parse(data);
    for p in data.chunks(ts::PACKET) {
        let _ = ts::pcr(p);
    }
    let mut s = Session::new(Config {
        client: IpAddr::from([198, 18, 0, 2]),
        server: IpAddr::from([198, 18, 0, 11]),
        server_ports: (6970, 6971),
        timeout_ms: 5_000,
        session_id: 0xCAFE_F00D,
        ssrc: 1,
    });
    let mut host = NullHost;
    let limits = Limits::default();
    let mut rest = data;
    let mut now = 0;
    while !rest.is_empty() {
        now += 1_000;
        s.handle_timeout(now, &mut host);
        match parse(rest, &limits) {
            Ok(Some(Message::Request(r, len))) => {
                assert!(len > 0 && len <= rest.len());
                let resp = s.handle(now, &r, &mut host);
                assert_eq!(resp.cseq, Some(r.cseq));
                let _ = resp.to_bytes();
                rest = &rest[len..];
            }
            Ok(Some(Message::Interleaved { len, .. })) => {
                rest = rest.get(4 + usize::from(len)..).unwrap_or(&[]);
            }
            Ok(None) => break,
            Err(e) => {
                let _ = Session::refuse(&e).to_bytes();
                break;
            }
        }
    }
}
