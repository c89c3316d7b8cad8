//! Tests of one control connection on virtual time: a player's
//! DESCRIBE/SETUP/PLAY/PAUSE/TEARDOWN over bytes, the RTP packets that
//! follow, bad input refused, and the flow record carried to a second
//! connection as a survivor would.

use std::net::IpAddr;

use super::*;
use crate::rtp::{Header, HEADER};
use crate::ts::build_packet;

const URL: &str = "rtsp://198.18.0.11/clip.ts";
const SID: &str = "00000000CAFEF00D";
const RATE: u64 = 250_000;

/// `secs` seconds of TS at 2 Mbit/s with a PCR every 20 packets.
fn stream(secs: u64) -> Arc<[u8]> {
    let n = secs * RATE / PACKET as u64;
    let mut v = Vec::new();
    for i in 0..n {
        let pcr = (i % 20 == 0).then(|| i * PACKET as u64 * HZ / RATE);
        v.extend_from_slice(&build_packet(0x100, i as u8, pcr, 0));
    }
    v.into()
}

fn conn(object: Arc<[u8]>) -> Conn {
    let cfg = Config {
        client: IpAddr::from([198, 18, 0, 2]),
        server: IpAddr::from([198, 18, 0, 11]),
        server_ports: (6970, 6971),
        timeout_ms: 60_000,
        session_id: 0xCAFE_F00D,
        ssrc: 0x1234_5678,
    };
    let lookup: Lookup = Box::new(move |p| (p == "/clip.ts").then(|| Arc::clone(&object)));
    Conn::new(cfg, FlowConfig::default(), Limits::default(), lookup)
}

fn send(c: &mut Conn, now_us: u64, text: &str) -> String {
    let mut out = Vec::new();
    c.on_bytes(now_us, format!("{text}\r\n\r\n").as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn setup_and_play(c: &mut Conn) {
    let r = send(c, 0, &format!("DESCRIBE {URL} RTSP/1.0\r\nCSeq: 2"));
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    assert!(r.contains("m=video 0 RTP/AVP 33"), "{r}");
    let r = send(
        c,
        0,
        &format!("SETUP {URL}/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001"),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    let r = send(
        c,
        0,
        &format!("PLAY {URL} RTSP/1.0\r\nCSeq: 4\r\nSession: {SID}"),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    assert_eq!(c.state(), State::Playing);
}

/// Sends what is due until `until_us`; returns the RTP headers sent.
fn run(c: &mut Conn, until_us: u64) -> Vec<Header> {
    let mut sent = Vec::new();
    while let Some(at) = c.poll_at() {
        if at > until_us {
            break;
        }
        let mut b = Vec::new();
        match c.poll_media(at, &mut b) {
            Some(Dest::Udp(5000)) => {}
            other => panic!("unexpected destination {other:?}"),
        }
        let (h, _) = Header::parse(&b).unwrap_or_else(|e| panic!("bad RTP: {e}"));
        assert_eq!(b.len(), HEADER + 7 * PACKET);
        sent.push(h);
    }
    sent
}

#[test]
fn a_player_session_streams_rtp_to_its_client_port_in_sequence() {
    let obj = stream(3);
    let mut c = conn(obj);
    setup_and_play(&mut c);
    let sent = run(&mut c, 1_000_000);
    // About one second of 2 Mbit/s in 7-packet datagrams (plus the lead).
    assert!(sent.len() > 150 && sent.len() < 220, "{}", sent.len());
    for w in sent.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
        assert_eq!(w[1].ssrc, 0x1234_5678);
    }
    let r = send(
        &mut c,
        1_000_000,
        &format!("PAUSE {URL} RTSP/1.0\r\nCSeq: 5\r\nSession: {SID}"),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    assert_eq!(c.poll_media(2_000_000, &mut Vec::new()), None);
    let r = send(
        &mut c,
        2_000_000,
        &format!("TEARDOWN {URL} RTSP/1.0\r\nCSeq: 6\r\nSession: {SID}"),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    assert_eq!(c.flow_record(), None);
}

#[test]
fn the_flow_record_continues_on_a_survivor_without_a_sequence_gap() {
    let obj = stream(3);
    let mut c = conn(Arc::clone(&obj));
    setup_and_play(&mut c);
    let before = run(&mut c, 500_000);
    let rec = c.flow_record().unwrap_or_else(|| panic!("no flow record"));
    let bytes = rec.encode();
    let back = FlowRecord::decode(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let mut flow = RtpFlow::restore(FlowConfig::default(), &back, 10_000_000);
    let mut b = Vec::new();
    let at = flow
        .poll_at(&obj)
        .unwrap_or_else(|| panic!("restored flow idle"));
    assert!(flow.poll_transmit(at, &obj, &mut b));
    let (h, _) = Header::parse(&b).unwrap_or_else(|e| panic!("{e}"));
    let last = before.last().unwrap_or_else(|| panic!("nothing sent"));
    assert_eq!(h.seq, last.seq.wrapping_add(1));
    assert_eq!(h.ssrc, last.ssrc);
}

#[test]
fn an_unknown_method_is_answered_and_the_connection_goes_on() {
    let mut c = conn(stream(1));
    let r = send(&mut c, 0, &format!("FROB {URL} RTSP/1.0\r\nCSeq: 1"));
    assert!(r.starts_with("RTSP/1.0 501"), "{r}");
    assert!(!c.closing());
    let r = send(&mut c, 0, &format!("OPTIONS {URL} RTSP/1.0\r\nCSeq: 2"));
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
}

#[test]
fn an_overlong_request_is_refused_and_the_connection_closes() {
    let mut c = conn(stream(1));
    let long = "a".repeat(64 * 1024);
    let mut out = Vec::new();
    c.on_bytes(
        0,
        format!("OPTIONS {URL}/{long} RTSP/1.0\r\n").as_bytes(),
        &mut out,
    );
    let r = String::from_utf8_lossy(&out);
    assert!(r.starts_with("RTSP/1.0 4"), "{r}");
    assert!(c.closing());
}

#[test]
fn setup_to_a_third_party_destination_is_refused_and_nothing_flows() {
    let mut c = conn(stream(1));
    let r = send(
        &mut c,
        0,
        &format!("SETUP {URL}/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;destination=203.0.113.9;client_port=5000-5001"),
    );
    assert!(r.starts_with("RTSP/1.0 4"), "{r}");
    assert_eq!(c.state(), State::Init);
    assert_eq!(c.poll_media(1_000_000, &mut Vec::new()), None);
}

#[test]
fn a_bundle_record_restores_the_session_and_the_flow_on_a_survivor() {
    let obj = stream(3);
    let mut c = conn(Arc::clone(&obj));
    setup_and_play(&mut c);
    let before = run(&mut c, 500_000);
    let bytes = c
        .checkpoint()
        .encode()
        .unwrap_or_else(|e| panic!("encode: {e}"));
    assert!(bytes.len() <= 1024, "{}", bytes.len());
    let rec = BundleRecord::decode(&bytes).unwrap_or_else(|e| panic!("decode: {e}"));
    assert_eq!(rec, c.checkpoint());
    // The survivor's clock is unrelated to the dead box's.
    let mut s = restored(&obj, &rec, 50_000_000);
    assert_eq!(s.state(), State::Playing);
    let after = run(&mut s, 50_500_000);
    let last = before.last().unwrap_or_else(|| panic!("nothing sent"));
    assert_eq!(after[0].seq, last.seq.wrapping_add(1));
    assert_eq!(after[0].ssrc, 0x1234_5678);
    // The control connection goes on: the session is known by its id.
    let r = send(
        &mut s,
        50_500_000,
        &format!("GET_PARAMETER {URL} RTSP/1.0\r\nCSeq: 9\r\nSession: {SID}"),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    let r = send(
        &mut s,
        50_600_000,
        &format!("TEARDOWN {URL} RTSP/1.0\r\nCSeq: 10\r\nSession: {SID}"),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    assert_eq!(s.poll_media(60_000_000, &mut Vec::new()), None);
}

#[test]
fn a_paused_bundle_resumes_from_the_paused_byte_after_takeover() {
    let obj = stream(3);
    let mut c = conn(Arc::clone(&obj));
    setup_and_play(&mut c);
    let before = run(&mut c, 500_000);
    let r = send(
        &mut c,
        500_000,
        &format!("PAUSE {URL} RTSP/1.0\r\nCSeq: 5\r\nSession: {SID}"),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    let rec = c.checkpoint();
    let mut s = restored(&obj, &rec, 9_000_000);
    assert_eq!(s.state(), State::Ready);
    assert_eq!(s.poll_media(9_500_000, &mut Vec::new()), None);
    let r = send(
        &mut s,
        9_500_000,
        &format!("PLAY {URL} RTSP/1.0\r\nCSeq: 6\r\nSession: {SID}"),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    let after = run(&mut s, 10_000_000);
    let last = before.last().unwrap_or_else(|| panic!("nothing sent"));
    assert_eq!(after[0].seq, last.seq.wrapping_add(1));
}

#[test]
fn bundle_records_that_do_not_hold_together_are_typed_errors() {
    let obj = stream(1);
    let mut c = conn(obj);
    setup_and_play(&mut c);
    let good = c.checkpoint().encode().unwrap_or_else(|e| panic!("{e}"));
    for n in 0..good.len() {
        assert!(
            BundleRecord::decode(&good[..n]).is_err(),
            "prefix {n} taken"
        );
    }
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(
        BundleRecord::decode(&bad),
        Err(crate::bundle::BundleError::Magic)
    );
    let mut bad = good.clone();
    bad[6] = 9;
    assert_eq!(
        BundleRecord::decode(&bad),
        Err(crate::bundle::BundleError::Field("state"))
    );
    let mut bad = good;
    bad[20] ^= 1; // the SSRC no longer matches the flow's
    assert_eq!(
        BundleRecord::decode(&bad),
        Err(crate::bundle::BundleError::Field("flow ssrc"))
    );
}

fn restored(obj: &Arc<[u8]>, rec: &BundleRecord, now_us: u64) -> Conn {
    let object = Arc::clone(obj);
    let lookup: Lookup = Box::new(move |p| (p == "/clip.ts").then(|| Arc::clone(&object)));
    let cfg = Config {
        client: IpAddr::from([198, 18, 0, 2]),
        server: IpAddr::from([198, 18, 0, 11]),
        server_ports: (6970, 6971),
        timeout_ms: 60_000,
        session_id: 0,
        ssrc: 0,
    };
    Conn::restore(
        cfg,
        FlowConfig::default(),
        Limits::default(),
        lookup,
        rec,
        now_us,
    )
    .unwrap_or_else(|| panic!("object not found on the survivor"))
}

proptest::proptest! {
    /// Whatever a segment holds, decoding answers Ok or a typed error.
    #[test]
    fn bundle_decode_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..700)) {
        let _ = BundleRecord::decode(&b);
        let mut framed = b"BRSS\x01\x00".to_vec();
        framed.extend_from_slice(&b);
        let _ = BundleRecord::decode(&framed);
    }
}

#[test]
fn the_last_packet_is_followed_by_one_report_and_bye_on_the_rtcp_port() {
    let obj = stream(1);
    let mut c = conn(Arc::clone(&obj));
    setup_and_play(&mut c);
    // Sender reports go to the client's RTCP port while playing.
    let mut b = Vec::new();
    assert_eq!(c.rtcp_at(), Some(0));
    assert_eq!(
        c.poll_rtcp(0, 1 << 32, "baton", &mut b),
        Some(Dest::Udp(5001))
    );
    assert_eq!(b[1], rtcp::PT_SR);
    assert_eq!(c.rtcp_at(), Some(5_000_000));
    // The whole object, then the BYE once.
    let mut packets = 0;
    let mut now = 0;
    while c.poll_media(now, &mut Vec::new()).is_some() || now < 2_000_000 {
        packets += 1;
        now += 1000;
    }
    assert!(packets > 0);
    assert_eq!(c.rtcp_at(), Some(0), "no BYE due after the last packet");
    let mut b = Vec::new();
    assert_eq!(
        c.poll_rtcp(now, 2 << 32, "baton", &mut b),
        Some(Dest::Udp(5001))
    );
    assert_eq!(b[1], rtcp::PT_SR);
    let sr_len = 4 * (usize::from(u16::from_be_bytes([b[2], b[3]])) + 1);
    let sdes_len = 4 * (usize::from(u16::from_be_bytes([b[sr_len + 2], b[sr_len + 3]])) + 1);
    let bye = &b[sr_len + sdes_len..];
    assert_eq!(bye[1], rtcp::PT_BYE);
    assert_eq!(&bye[4..8], &0x1234_5678u32.to_be_bytes());
    assert_eq!(c.rtcp_at(), None);
    assert_eq!(c.poll_rtcp(now, 2 << 32, "baton", &mut Vec::new()), None);
    // DESCRIBE, SETUP and PLAY were answered, none refused.
    assert_eq!(
        c.counts(),
        Counts {
            requests: 3,
            refused: 0
        }
    );
}

#[test]
fn refused_requests_are_counted_and_rtcp_activity_keeps_the_session() {
    let mut c = conn(stream(1));
    setup_and_play(&mut c);
    let r = send(
        &mut c,
        0,
        &format!("PLAY {URL} RTSP/1.0\r\nCSeq: 7\r\nSession: 99"),
    );
    assert!(r.starts_with("RTSP/1.0 454"), "{r}");
    assert_eq!(
        c.counts(),
        Counts {
            requests: 4,
            refused: 1
        }
    );
    // Reports over UDP count as activity: the session outlives the
    // timeout counted from the last request.
    c.on_activity(50_000_000);
    assert!(!c.handle_timeout(70_000_000));
    assert!(c.handle_timeout(111_000_000));
}

#[test]
fn interleaved_media_and_reports_go_on_the_connection_in_frames() {
    let obj = stream(1);
    let mut c = conn(obj);
    let r = send(&mut c, 0, &format!("DESCRIBE {URL} RTSP/1.0\r\nCSeq: 2"));
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    let r = send(
        &mut c,
        0,
        &format!("SETUP {URL}/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1"),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    let r = send(
        &mut c,
        0,
        &format!("PLAY {URL} RTSP/1.0\r\nCSeq: 4\r\nSession: {SID}"),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    let mut b = Vec::new();
    assert_eq!(c.poll_media(0, &mut b), Some(Dest::Tcp));
    assert_eq!(&b[..2], &[b'$', 0]);
    assert_eq!(
        usize::from(u16::from_be_bytes([b[2], b[3]])),
        HEADER + 7 * PACKET
    );
    let mut b = Vec::new();
    assert_eq!(c.poll_rtcp(0, 1 << 32, "baton", &mut b), Some(Dest::Tcp));
    assert_eq!(&b[..2], &[b'$', 1]);
    assert_eq!(b[5], rtcp::PT_SR);
}

#[test]
fn without_udp_a_udp_only_setup_is_461_and_interleaved_is_served() {
    let mut c = conn(stream(1));
    c.set_udp(false);
    let r = send(&mut c, 0, &format!("DESCRIBE {URL} RTSP/1.0\r\nCSeq: 2"));
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    let r = send(
        &mut c,
        0,
        &format!("SETUP {URL}/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001"),
    );
    assert!(r.starts_with("RTSP/1.0 461"), "{r}");
    assert_eq!(c.state(), State::Init);
    let r = send(
        &mut c,
        0,
        &format!("SETUP {URL}/trackID=0 RTSP/1.0\r\nCSeq: 4\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1"),
    );
    assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    assert_eq!(
        c.transport(),
        Some(Transport::Interleaved { rtp: 0, rtcp: 1 })
    );
}
