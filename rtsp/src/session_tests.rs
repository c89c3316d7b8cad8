//! Tests of the session machine, request by request on virtual time,
//! grouped by RFC 2326 Appendix A state, with a host that records what it
//! was told to do.

use std::net::IpAddr;

use super::*;
use crate::request::{parse, Limits, Message};

const URL: &str = "rtsp://198.18.0.11/clip.ts";
const TRACK_URL: &str = "rtsp://198.18.0.11/clip.ts/trackID=0";
const SID: &str = "00000000CAFEF00D";

#[derive(Default)]
struct FakeHost {
    played: Vec<(String, u64, Transport)>,
    pauses: u32,
    stops: u32,
    position_ms: u64,
}

impl Host for FakeHost {
    fn lookup(&mut self, path: &str) -> Option<ObjectInfo> {
        (path == "/clip.ts").then_some(ObjectInfo {
            duration_ms: 30_000,
        })
    }
    fn play(&mut self, path: &str, from_ms: u64, transport: Transport) -> RtpInfo {
        self.played.push((path.to_string(), from_ms, transport));
        RtpInfo {
            seq: 1000,
            rtptime: 90_000,
        }
    }
    fn pause(&mut self) -> u64 {
        self.pauses += 1;
        self.position_ms
    }
    fn stop(&mut self) {
        self.stops += 1;
    }
}

fn session() -> (Session, FakeHost) {
    let cfg = Config {
        client: IpAddr::from([198, 18, 0, 2]),
        server: IpAddr::from([198, 18, 0, 11]),
        server_ports: (6970, 6971),
        timeout_ms: 60_000,
        session_id: 0xCAFE_F00D,
        ssrc: 0x1234_5678,
    };
    (Session::new(cfg), FakeHost::default())
}

/// Parses `text` (a request without its blank line) and hands it over.
fn send(s: &mut Session, h: &mut FakeHost, now: u64, text: &str) -> Response {
    let full = format!("{text}\r\n\r\n");
    match parse(full.as_bytes(), &Limits::default()) {
        Ok(Some(Message::Request(r, _))) => s.handle(now, &r, h),
        other => panic!("test request did not parse: {other:?}"),
    }
}

fn setup_udp(s: &mut Session, h: &mut FakeHost) -> Response {
    send(
        s,
        h,
        0,
        &format!("SETUP {TRACK_URL} RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001"),
    )
}

fn play(s: &mut Session, h: &mut FakeHost, now: u64, extra: &str) -> Response {
    send(
        s,
        h,
        now,
        &format!("PLAY {URL} RTSP/1.0\r\nCSeq: 4\r\nSession: {SID}{extra}"),
    )
}

// Tests for any state.

#[test]
fn options_lists_the_methods_and_echoes_cseq() {
    let (mut s, mut h) = session();
    let r = send(&mut s, &mut h, 0, "OPTIONS * RTSP/1.0\r\nCSeq: 1");
    assert_eq!(r.status, 200);
    assert_eq!(r.cseq, Some(1));
    assert_eq!(r.header("Public"), Some(PUBLIC));
}

#[test]
fn describe_answers_sdp_with_a_content_base() {
    let (mut s, mut h) = session();
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("DESCRIBE {URL} RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/sdp"));
    assert_eq!(
        r.header("Content-Base"),
        Some("rtsp://198.18.0.11/clip.ts/")
    );
    let sdp = String::from_utf8(r.body.clone()).unwrap_or_default();
    assert!(sdp.contains("a=rtpmap:33 MP2T/90000"), "{sdp}");
    assert!(sdp.contains("a=range:npt=0-30.000"), "{sdp}");
}

#[test]
fn describe_of_an_unknown_object_is_404() {
    let (mut s, mut h) = session();
    let r = send(
        &mut s,
        &mut h,
        0,
        "DESCRIBE rtsp://198.18.0.11/nope.ts RTSP/1.0\r\nCSeq: 2",
    );
    assert_eq!(r.status, 404);
}

#[test]
fn unsupported_and_unknown_methods() {
    let (mut s, mut h) = session();
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("RECORD {URL} RTSP/1.0\r\nCSeq: 5"),
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some(PUBLIC));
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("FROB {URL} RTSP/1.0\r\nCSeq: 6"),
    );
    assert_eq!(r.status, 501);
}

#[test]
fn rfc_2326_s12_32_require_is_refused_with_551_before_acting() {
    let (mut s, mut h) = session();
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("SETUP {TRACK_URL} RTSP/1.0\r\nCSeq: 3\r\nRequire: funky-feature\r\nTransport: RTP/AVP;unicast;client_port=5000-5001"),
    );
    assert_eq!(r.status, 551);
    assert_eq!(r.header("Unsupported"), Some("funky-feature"));
    assert_eq!(s.state(), State::Init);
}

#[test]
fn unparseable_bytes_get_their_status() {
    let r = Session::refuse(&ParseError::BadVersion("RTSP/2.0".into()));
    assert_eq!(r.status, 505);
    assert_eq!(r.cseq, None);
}

// Tests for the Init state.

#[test]
fn setup_udp_answers_transport_with_server_ports_ssrc_and_session() {
    let (mut s, mut h) = session();
    let r = setup_udp(&mut s, &mut h);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Transport"),
        Some("RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=12345678")
    );
    assert_eq!(r.header("Session"), Some("00000000CAFEF00D;timeout=60"));
    assert_eq!(s.state(), State::Ready);
}

#[test]
fn setup_tcp_interleaved() {
    let (mut s, mut h) = session();
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("SETUP {TRACK_URL} RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        s.transport(),
        Some(Transport::Interleaved { rtp: 0, rtcp: 1 })
    );
}

#[test]
fn setup_of_the_aggregate_url_is_459() {
    let (mut s, mut h) = session();
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!(
            "SETUP {URL} RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001"
        ),
    );
    assert_eq!(r.status, 459);
    assert_eq!(s.state(), State::Init);
}

#[test]
fn setup_with_multicast_or_no_transport_is_461() {
    let (mut s, mut h) = session();
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("SETUP {TRACK_URL} RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;multicast"),
    );
    assert_eq!(r.status, 461);
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("SETUP {TRACK_URL} RTSP/1.0\r\nCSeq: 4"),
    );
    assert_eq!(r.status, 461);
    assert_eq!(s.state(), State::Init);
}

#[test]
fn setup_to_a_third_party_destination_is_forbidden() {
    let (mut s, mut h) = session();
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("SETUP {TRACK_URL} RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;destination=192.0.2.50;client_port=5000-5001"),
    );
    assert_eq!(r.status, 403);
    assert_eq!(s.state(), State::Init);
    assert!(s.transport().is_none());
}

#[test]
fn play_pause_teardown_without_a_session_are_454() {
    let (mut s, mut h) = session();
    for m in ["PLAY", "PAUSE", "TEARDOWN"] {
        let r = send(&mut s, &mut h, 0, &format!("{m} {URL} RTSP/1.0\r\nCSeq: 4"));
        assert_eq!(r.status, 454, "{m}");
        let r = send(
            &mut s,
            &mut h,
            0,
            &format!("{m} {URL} RTSP/1.0\r\nCSeq: 4\r\nSession: {SID}"),
        );
        assert_eq!(r.status, 454, "{m} before SETUP");
    }
    assert!(h.played.is_empty());
    assert_eq!(h.stops, 0);
}

#[test]
fn get_parameter_without_session_is_a_server_ping() {
    let (mut s, mut h) = session();
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("GET_PARAMETER {URL} RTSP/1.0\r\nCSeq: 9"),
    );
    assert_eq!(r.status, 200);
}

// Tests for the Ready state.

#[test]
fn play_from_ready_starts_the_stream_with_rtp_info() {
    let (mut s, mut h) = session();
    setup_udp(&mut s, &mut h);
    let r = play(&mut s, &mut h, 10, "\r\nRange: npt=5-");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Range"), Some("npt=5.000-30.000"));
    assert_eq!(
        r.header("RTP-Info"),
        Some("url=rtsp://198.18.0.11/clip.ts/trackID=0;seq=1000;rtptime=90000")
    );
    assert_eq!(s.state(), State::Playing);
    assert_eq!(
        h.played,
        vec![(
            "/clip.ts".to_string(),
            5_000,
            Transport::Udp {
                client_rtp: 5000,
                client_rtcp: 5001
            }
        )]
    );
}

#[test]
fn a_wrong_session_id_is_454() {
    let (mut s, mut h) = session();
    setup_udp(&mut s, &mut h);
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("PLAY {URL} RTSP/1.0\r\nCSeq: 4\r\nSession: 0000000000000BAD"),
    );
    assert_eq!(r.status, 454);
    assert_eq!(s.state(), State::Ready);
}

#[test]
fn pause_in_ready_is_455_with_allow() {
    let (mut s, mut h) = session();
    setup_udp(&mut s, &mut h);
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("PAUSE {URL} RTSP/1.0\r\nCSeq: 5\r\nSession: {SID}"),
    );
    assert_eq!(r.status, 455);
    assert!(r.header("Allow").is_some_and(|a| a.contains("PLAY")));
    assert_eq!(h.pauses, 0);
}

#[test]
fn play_beyond_the_end_is_457_and_garbage_range_too() {
    let (mut s, mut h) = session();
    setup_udp(&mut s, &mut h);
    assert_eq!(play(&mut s, &mut h, 0, "\r\nRange: npt=31-").status, 457);
    assert_eq!(
        play(&mut s, &mut h, 0, "\r\nRange: smpte=0:0:1-").status,
        457
    );
    assert_eq!(s.state(), State::Ready);
    assert!(h.played.is_empty());
}

#[test]
fn a_second_setup_without_the_session_header_is_refused() {
    let (mut s, mut h) = session();
    setup_udp(&mut s, &mut h);
    assert_eq!(setup_udp(&mut s, &mut h).status, 455);
}

// Tests for the Playing state.

#[test]
fn pause_then_play_resumes_at_the_paused_position() {
    let (mut s, mut h) = session();
    setup_udp(&mut s, &mut h);
    play(&mut s, &mut h, 0, "");
    h.position_ms = 12_340;
    let r = send(
        &mut s,
        &mut h,
        1000,
        &format!("PAUSE {URL} RTSP/1.0\r\nCSeq: 5\r\nSession: {SID}"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Range"), Some("npt=12.340-"));
    assert_eq!(s.state(), State::Ready);
    let r = play(&mut s, &mut h, 2000, "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Range"), Some("npt=12.340-30.000"));
    assert_eq!(
        h.played.iter().map(|p| p.1).collect::<Vec<_>>(),
        [0, 12_340]
    );
}

#[test]
fn setup_while_playing_is_455() {
    let (mut s, mut h) = session();
    setup_udp(&mut s, &mut h);
    play(&mut s, &mut h, 0, "");
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("SETUP {TRACK_URL} RTSP/1.0\r\nCSeq: 6\r\nSession: {SID}\r\nTransport: RTP/AVP;unicast;client_port=6000-6001"),
    );
    assert_eq!(r.status, 455);
    assert_eq!(s.state(), State::Playing);
}

#[test]
fn play_while_playing_without_range_does_not_restart() {
    let (mut s, mut h) = session();
    setup_udp(&mut s, &mut h);
    play(&mut s, &mut h, 0, "");
    assert_eq!(play(&mut s, &mut h, 5, "").status, 200);
    assert_eq!(h.played.len(), 1);
    assert_eq!(play(&mut s, &mut h, 5, "\r\nRange: npt=20-").status, 200);
    assert_eq!(h.played.len(), 2);
}

#[test]
fn teardown_stops_the_stream_and_forgets_the_session() {
    let (mut s, mut h) = session();
    setup_udp(&mut s, &mut h);
    play(&mut s, &mut h, 0, "");
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("TEARDOWN {URL} RTSP/1.0\r\nCSeq: 7\r\nSession: {SID}"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(h.stops, 1);
    assert_eq!(s.state(), State::Init);
    assert_eq!(play(&mut s, &mut h, 0, "").status, 454);
}

#[test]
fn play_of_another_object_is_404() {
    let (mut s, mut h) = session();
    setup_udp(&mut s, &mut h);
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("PLAY rtsp://198.18.0.11/other.ts RTSP/1.0\r\nCSeq: 4\r\nSession: {SID}"),
    );
    assert_eq!(r.status, 404);
}

// Session timeouts (§12.37), on virtual time.

#[test]
fn rfc_2326_s12_37_a_silent_session_expires_after_its_timeout() {
    let (mut s, mut h) = session();
    setup_udp(&mut s, &mut h);
    play(&mut s, &mut h, 1_000, "");
    assert_eq!(s.timeout_at(), Some(61_000));
    assert!(!s.handle_timeout(60_999, &mut h));
    assert!(s.handle_timeout(61_000, &mut h));
    assert_eq!(h.stops, 1);
    assert_eq!(s.state(), State::Init);
    assert_eq!(s.timeout_at(), None);
    assert_eq!(play(&mut s, &mut h, 61_001, "").status, 454);
}

#[test]
fn get_parameter_keep_alive_and_rtcp_refresh_the_timeout() {
    let (mut s, mut h) = session();
    setup_udp(&mut s, &mut h);
    play(&mut s, &mut h, 0, "");
    let r = send(
        &mut s,
        &mut h,
        50_000,
        &format!("GET_PARAMETER {URL} RTSP/1.0\r\nCSeq: 8\r\nSession: {SID}"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Session"), Some("00000000CAFEF00D;timeout=60"));
    assert!(!s.handle_timeout(100_000, &mut h));
    s.on_activity(105_000);
    assert!(!s.handle_timeout(160_000, &mut h));
    assert!(s.handle_timeout(165_000, &mut h));
}

#[test]
fn get_parameter_with_a_wrong_session_or_parameters() {
    let (mut s, mut h) = session();
    setup_udp(&mut s, &mut h);
    let r = send(
        &mut s,
        &mut h,
        0,
        &format!("GET_PARAMETER {URL} RTSP/1.0\r\nCSeq: 8\r\nSession: 0000000000000BAD"),
    );
    assert_eq!(r.status, 454);
    let req = format!(
        "GET_PARAMETER {URL} RTSP/1.0\r\nCSeq: 9\r\nSession: {SID}\r\nContent-Length: 8\r\n\r\nposition"
    );
    let Ok(Some(Message::Request(r, _))) = parse(req.as_bytes(), &Limits::default()) else {
        panic!("did not parse")
    };
    assert_eq!(s.handle(0, &r, &mut h).status, 451);
}

#[test]
fn urls_split_into_object_path_and_stream() {
    assert_eq!(split_url(URL), Some(("/clip.ts", false)));
    assert_eq!(split_url(TRACK_URL), Some(("/clip.ts", true)));
    assert_eq!(
        split_url("rtsp://198.18.0.11:554/a/clip.ts/"),
        Some(("/a/clip.ts", false))
    );
    assert_eq!(split_url("rtsp://198.18.0.11"), None);
    assert_eq!(split_url("rtsp://h/trackID=0"), None);
    assert_eq!(split_url("http://198.18.0.11/clip.ts"), None);
    assert_eq!(split_url("*"), None);
}
