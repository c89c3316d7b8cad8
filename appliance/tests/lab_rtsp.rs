//! End-to-end RTSP (issue 18): ffmpeg in the lab's client namespace
//! records the origin's `clip.ts` from a box over RTP on UDP and
//! interleaved on the RTSP connection; the capture of the RTP stream shows
//! one SSRC, contiguous sequence numbers and payloads that are the clip
//! byte for byte; bad requests are refused and the box keeps serving.
//! Needs root, ffmpeg, ffprobe and tcpdump; serialized with the other lab
//! tests (tests/common).
mod common;

use std::fs;

use common::*;

const BOX1: &str = "198.18.0.11";
const URL: &str = "rtsp://198.18.0.11/clip.ts";
/// The box's RTP and RTCP server ports (`rtsp.udp_port_min`, default).
const RTP_PORT: u16 = 6970;
const RTCP_PORT: u16 = 6971;

fn metric(g: &LabGuard, name: &str) -> u64 {
    metric_value(&box_metrics(g, 1), name)
}

/// `ffmpeg -rtsp_transport T -i URL -c copy OUT`: records until the box's
/// RTCP BYE ends the stream; returns OUT's path.
fn record(g: &LabGuard, transport: &str, name: &str, extra: &[&str]) -> String {
    record_url(g, URL, &["-rtsp_transport", transport], name, extra)
}

/// `ffmpeg OPTS -i URL EXTRA -c copy OUT`; returns OUT's path.
fn record_url(g: &LabGuard, url: &str, opts: &[&str], name: &str, extra: &[&str]) -> String {
    let out = g.file(name).display().to_string();
    let _ = fs::remove_file(&out);
    let mut args = vec![
        "timeout",
        "120",
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
    ];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["-i", url]);
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-c", "copy", "-f", "mpegts", &out]);
    ok(run_client(g, &args));
    out
}

#[path = "common/rtp_capture.rs"]
mod rtp_capture;
use rtp_capture::{Datagram, RtpCapture};

#[test]
fn lab_rtsp_ffmpeg_records_the_whole_clip_over_udp_and_tcp() {
    let g = LabGuard::up("btrtsp1", &["--boxes", "1"]);
    let clip_ms = media_duration_ms(&g, &g.file("objects/clip.ts").display().to_string());
    assert!(clip_ms > 25_000, "the lab's clip lasts {clip_ms} ms");
    let rst = RstCapture::start(&g);
    let rtp = RtpCapture::start(&g, "rtp.pcap", &format!("udp and src host {BOX1}"));

    // Over UDP: RTP from 6970, RTCP from 6971.
    let out = record(&g, "udp", "udp.ts", &[]);
    let got = media_duration_ms(&g, &out);
    assert!(
        got.abs_diff(clip_ms) * 50 <= clip_ms,
        "recorded over UDP: {got} ms of a {clip_ms} ms clip"
    );
    let datagrams = rtp.finish();
    let packets: Vec<&Datagram> = datagrams
        .iter()
        .filter(|d| d.src_port == RTP_PORT)
        .collect();
    assert!(
        !packets.is_empty(),
        "the capture saw no RTP from {BOX1}:{RTP_PORT}"
    );
    let ssrc = |d: &Datagram| {
        u32::from_be_bytes([d.payload[8], d.payload[9], d.payload[10], d.payload[11]])
    };
    let seq = |d: &Datagram| u16::from_be_bytes([d.payload[2], d.payload[3]]);
    let mut stream = Vec::new();
    for w in packets.windows(2) {
        assert_eq!(ssrc(w[1]), ssrc(w[0]), "a second SSRC in the stream");
        assert_eq!(
            seq(w[1]),
            seq(w[0]).wrapping_add(1),
            "sequence numbers not contiguous"
        );
    }
    for d in &packets {
        // Version 2, payload type 33 (MP2T, RFC 2250), no CSRC.
        assert_eq!(d.payload[0], 0x80);
        assert_eq!(d.payload[1] & 0x7f, 33);
        stream.extend_from_slice(&d.payload[12..]);
    }
    assert_eq!(
        sha256_hex(&stream),
        g.listed_sha("clip.ts"),
        "the RTP payloads are not the clip ({} bytes in {} packets)",
        stream.len(),
        packets.len()
    );
    // Sender reports, and the BYE that ended the recording.
    let rtcp: Vec<&Datagram> = datagrams
        .iter()
        .filter(|d| d.src_port == RTCP_PORT)
        .collect();
    assert!(
        rtcp.iter()
            .any(|d| d.payload.windows(2).any(|w| w == [0x81, 203])),
        "no RTCP BYE among {} RTCP datagrams",
        rtcp.len()
    );
    let udp_sent = metric(&g, "baton_rtp_packets_total{transport=\"udp\"}");
    assert_eq!(
        udp_sent,
        packets.len() as u64,
        "RTP packets the box counted"
    );

    // Interleaved on the RTSP connection.
    let out = record(&g, "tcp", "tcp.ts", &[]);
    let got = media_duration_ms(&g, &out);
    assert!(
        got.abs_diff(clip_ms) * 50 <= clip_ms,
        "recorded over TCP: {got} ms of a {clip_ms} ms clip"
    );
    let tcp_sent = metric(&g, "baton_rtp_packets_total{transport=\"tcp\"}");
    assert_eq!(
        tcp_sent,
        packets.len() as u64,
        "the same packets, interleaved"
    );
    assert_eq!(metric(&g, "baton_rtsp_sessions_total"), 2);
    assert!(metric(&g, "baton_rtcp_packets_total{direction=\"received\"}") >= 1);
    assert_eq!(metric(&g, "baton_rtsp_refused_total"), 0);
    // ffmpeg ends each session with TEARDOWN and closes without reading
    // the answer: a FIN, or its own RST when the answer came first (Linux
    // resets a socket closed with unread data). No RST may reach it; the
    // capture's proof of life is a connection the client closes with a FIN.
    let (status, _, _) = curl_box(&g, 1, "/1K.bin", &[]);
    assert_eq!(status, 200);
    rst.assert_none_with_fins(1);
}

#[test]
fn lab_rtsp_bad_input_is_refused_and_the_box_keeps_serving() {
    let g = LabGuard::up("btrtsp2", &["--boxes", "1"]);
    // One connection: an unknown method, PLAY naming no live session, a
    // SETUP sending media to a third party, then bytes that are no
    // request. bash's /dev/tcp is the raw client.
    let script = format!(
        "exec 3<>/dev/tcp/{BOX1}/554; \
         printf 'FROB {URL} RTSP/1.0\\r\\nCSeq: 1\\r\\n\\r\\n\
PLAY {URL} RTSP/1.0\\r\\nCSeq: 2\\r\\nSession: 12345678\\r\\n\\r\\n\
SETUP {URL}/trackID=0 RTSP/1.0\\r\\nCSeq: 3\\r\\nTransport: RTP/AVP;unicast;destination=198.18.0.99;client_port=5000-5001\\r\\n\\r\\n\
GARBAGE\\r\\n\\r\\n' >&3; \
         timeout 10 cat <&3"
    );
    let replies = ok(run_client(&g, &["timeout", "20", "bash", "-c", &script]));
    let codes: Vec<&str> = replies
        .lines()
        .filter_map(|l| l.strip_prefix("RTSP/1.0 "))
        .filter_map(|l| l.get(..3))
        .collect();
    assert_eq!(codes, ["501", "454", "403", "400"], "replies: {replies:?}");
    assert_eq!(metric(&g, "baton_rtsp_refused_total"), 4);
    assert_eq!(metric(&g, "baton_rtsp_sessions_total"), 0);
    assert_eq!(metric(&g, "baton_rtp_packets_total{transport=\"udp\"}"), 0);
    // Still serving: a player records five seconds.
    let out = record(&g, "udp", "after.ts", &["-t", "5"]);
    let got = media_duration_ms(&g, &out);
    assert!(
        (4_000..=6_000).contains(&got),
        "recorded {got} ms after bad input"
    );
}

/// The player of `common/rtsp_pause.py`, written into the lab's run folder.
const PAUSE_PLAYER: &str = include_str!("common/rtsp_pause.py");

/// One answer the player got: method, status, headers (lowercase names).
struct Answer {
    method: String,
    status: u16,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

#[test]
fn lab_rtsp_pause_then_play_resumes_at_the_paused_packet() {
    let g = LabGuard::up("btrtsp3", &["--boxes", "1"]);
    let script = g.file("rtsp_pause.py");
    fs::write(&script, PAUSE_PLAYER).expect("write rtsp_pause.py");
    let payload = g.file("pause.payload");
    let out = ok(run_client(
        &g,
        &[
            "timeout",
            "60",
            "python3",
            &script.display().to_string(),
            BOX1,
            &payload.display().to_string(),
        ],
    ));
    let mut answers: Vec<Answer> = Vec::new();
    // (phase, seq, ssrc, payload length), in arrival order.
    let mut rtp: Vec<(String, u16, u32, usize)> = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["answer", m, s] => answers.push(Answer {
                method: m.to_string(),
                status: s.parse().unwrap_or(0),
                headers: Vec::new(),
            }),
            ["header", _, ..] => {
                // `header METHOD NAME: VALUE`, VALUE with spaces.
                let rest = line.splitn(3, ' ').nth(2).unwrap_or("");
                let (n, v) = rest.split_once(": ").unwrap_or((rest, ""));
                if let Some(a) = answers.last_mut() {
                    a.headers.push((n.to_string(), v.to_string()));
                }
            }
            ["rtp", p, seq, ssrc, len] => rtp.push((
                p.to_string(),
                seq.parse().expect("seq"),
                ssrc.parse().expect("ssrc"),
                len.parse().expect("length"),
            )),
            _ => {}
        }
    }
    let methods: Vec<(&str, u16)> = answers
        .iter()
        .map(|a| (a.method.as_str(), a.status))
        .collect();
    assert_eq!(
        methods,
        [
            ("DESCRIBE", 200),
            ("SETUP", 200),
            ("PLAY", 200),
            ("PAUSE", 200),
            ("PLAY", 200),
            ("GET_PARAMETER", 200),
            ("TEARDOWN", 200)
        ],
        "player output:\n{out}"
    );
    let in_phase = |p: &str| rtp.iter().filter(|r| r.0 == p).count();
    assert!(
        in_phase("play") > 50,
        "RTP while playing: {}",
        in_phase("play")
    );
    assert_eq!(in_phase("paused"), 0, "RTP while paused");
    assert!(
        in_phase("resumed") > 20,
        "RTP after PLAY: {}",
        in_phase("resumed")
    );
    assert_eq!(in_phase("torn_down"), 0, "RTP after TEARDOWN");
    // One stream: one SSRC, every sequence number once and in order,
    // across the pause.
    for w in rtp.windows(2) {
        assert_eq!(w[1].2, w[0].2, "a second SSRC");
        assert_eq!(w[1].1, w[0].1.wrapping_add(1), "sequence gap or repeat");
    }
    // The second PLAY names the packet after the last one before PAUSE.
    let last_before = rtp
        .iter()
        .rfind(|r| r.0 == "play" || r.0 == "pausing")
        .expect("RTP before PAUSE");
    let info = answers[4].header("rtp-info");
    assert!(
        info.contains(&format!("seq={}", last_before.1.wrapping_add(1))),
        "RTP-Info {info:?} after seq {}",
        last_before.1
    );
    // PAUSE said where it stopped; the resumed PLAY starts there.
    let paused_at = answers[3].header("range");
    assert!(paused_at.starts_with("npt="), "PAUSE Range {paused_at:?}");
    let resumed_from = answers[4].header("range");
    assert_eq!(
        paused_at.trim_end_matches('-').split('-').next(),
        resumed_from.split('-').next(),
        "PAUSE {paused_at:?}, PLAY {resumed_from:?}"
    );
    // The payloads received are the clip's first bytes, byte for byte.
    let got = fs::read(&payload).expect("payload file");
    let clip = fs::read(g.file("objects/clip.ts")).expect("the lab's clip");
    assert!(got.len() > 100_000, "{} payload bytes", got.len());
    assert!(
        got == clip[..got.len()],
        "the payloads are not the clip's first {} bytes",
        got.len()
    );
}

#[test]
fn lab_rtsp_an_ipv6_player_gets_rtp_over_udp() {
    let g = LabGuard::up("btrtsp4", &["--boxes", "1"]);
    // RTP and RTCP over UDP to an IPv6 player, as to an IPv4 one.
    let out = record_url(
        &g,
        "rtsp://[2001:2:0:18::11]/clip.ts",
        &["-rtsp_transport", "udp"],
        "v6.ts",
        &["-t", "5"],
    );
    let got = media_duration_ms(&g, &out);
    assert!(
        (4_000..=6_000).contains(&got),
        "recorded {got} ms over IPv6"
    );
    assert!(metric(&g, "baton_rtp_packets_total{transport=\"udp\"}") > 100);
    assert_eq!(metric(&g, "baton_rtp_packets_total{transport=\"tcp\"}"), 0);
    assert_eq!(metric(&g, "baton_rtsp_refused_total"), 0);
    assert_eq!(metric(&g, "baton_rtsp_sessions_total"), 1);
}

#[test]
fn lab_rtsp_players_at_once_each_get_their_own_stream() {
    let g = LabGuard::up("btrtsp5", &["--boxes", "1"]);
    let rtp = RtpCapture::start(
        &g,
        "many.pcap",
        &format!("udp and src host {BOX1} and src port {RTP_PORT}"),
    );
    // Four players at once, each for 8 s, from the same server ports.
    let players: Vec<std::process::Child> = (0..4)
        .map(|i| {
            let out = g.file(&format!("many{i}.ts")).display().to_string();
            let _ = fs::remove_file(&out);
            std::process::Command::new("ip")
                .args(["netns", "exec", &format!("{}-client", g.prefix)])
                .args([
                    "timeout",
                    "60",
                    "ffmpeg",
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-nostdin",
                    "-y",
                ])
                .args([
                    "-rtsp_transport",
                    "udp",
                    "-i",
                    URL,
                    "-t",
                    "8",
                    "-c",
                    "copy",
                    "-f",
                    "mpegts",
                    &out,
                ])
                .spawn()
                .expect("ffmpeg is not installed (scripts/test installs it)")
        })
        .collect();
    for mut p in players {
        let status = p.wait().expect("wait for ffmpeg");
        assert!(status.success(), "a player failed: {status}");
    }
    for i in 0..4 {
        let got = media_duration_ms(&g, &g.file(&format!("many{i}.ts")).display().to_string());
        assert!(
            (7_000..=9_000).contains(&got),
            "player {i} recorded {got} ms"
        );
    }
    let datagrams = rtp.finish();
    // By the player's port: one SSRC each, contiguous, and no two alike.
    let mut streams: std::collections::BTreeMap<u16, Vec<&Datagram>> = Default::default();
    for d in &datagrams {
        streams.entry(d.dst_port).or_default().push(d);
    }
    assert_eq!(
        streams.len(),
        4,
        "streams by client port: {:?}",
        streams.keys()
    );
    let mut ssrcs = Vec::new();
    for (port, packets) in &streams {
        assert!(
            packets.len() > 100,
            "{} packets to port {port}",
            packets.len()
        );
        let ssrc = |d: &Datagram| {
            u32::from_be_bytes([d.payload[8], d.payload[9], d.payload[10], d.payload[11]])
        };
        let seq = |d: &Datagram| u16::from_be_bytes([d.payload[2], d.payload[3]]);
        for w in packets.windows(2) {
            assert_eq!(ssrc(w[1]), ssrc(w[0]), "two SSRCs to port {port}");
            assert_eq!(seq(w[1]), seq(w[0]).wrapping_add(1), "a gap to port {port}");
        }
        ssrcs.push(ssrc(packets[0]));
    }
    ssrcs.sort_unstable();
    ssrcs.dedup();
    assert_eq!(ssrcs.len(), 4, "players shared an SSRC");
    assert_eq!(metric(&g, "baton_rtsp_sessions_total"), 4);
    assert_eq!(
        metric(&g, "baton_rtp_packets_total{transport=\"udp\"}"),
        datagrams.len() as u64,
        "RTP packets the box counted"
    );
}

#[test]
fn lab_rtsp_gstreamer_records_the_whole_clip_over_udp() {
    // A second real player: GStreamer's rtspsrc (RTP over UDP), its MPEG-TS
    // depayloaded into a file.
    let g = LabGuard::up("btrtsp7", &["--boxes", "1"]);
    let clip_ms = media_duration_ms(&g, &g.file("objects/clip.ts").display().to_string());
    let out = g.file("gst.ts").display().to_string();
    let location = format!("location={URL}");
    let sink = format!("location={out}");
    let done = run_client(
        &g,
        &[
            "timeout",
            "120",
            "gst-launch-1.0",
            "-q",
            "rtspsrc",
            &location,
            "protocols=udp",
            "!",
            "rtpmp2tdepay",
            "!",
            "filesink",
            &sink,
        ],
    );
    assert!(
        done.status.success(),
        "gst-launch-1.0: {} {}",
        done.status,
        String::from_utf8_lossy(&done.stderr).trim()
    );
    let got = media_duration_ms(&g, &out);
    assert!(
        got.abs_diff(clip_ms) * 50 <= clip_ms,
        "GStreamer recorded {got} ms of a {clip_ms} ms clip"
    );
    assert_eq!(metric(&g, "baton_rtsp_sessions_total"), 1);
    assert!(metric(&g, "baton_rtp_packets_total{transport=\"udp\"}") > 1000);
}
