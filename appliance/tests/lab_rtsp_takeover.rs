//! RTSP takeover (issue 18), end to end: box1 streams the origin's
//! `clip.ts` to a real player (ffmpeg, RTP over UDP) and is killed with
//! SIGKILL mid-stream; box2 restores the bundle (the RTSP control
//! connection with the session and its RTP flow in `app_state`) and goes
//! on streaming from the service address and server ports the player
//! knows, with the same SSRC and continuing sequence numbers. The player
//! notices nothing: exit 0, the whole clip recorded (ffprobe's duration),
//! no RST on the RTSP connection (a capture that saw the player's FIN),
//! and box2's counters show the session resumed rather than a new one.
//! A paused session taken over resumes where it paused on the next PLAY.
//! Needs root, ffmpeg, ffprobe, python3 and tcpdump; serialized with the
//! other lab tests (tests/common).
mod common;

use std::fs;
use std::process::Child;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;
#[path = "common/rtp_capture.rs"]
mod rtp_capture;
use rtp_capture::RtpCapture;

const BOX1: &str = "198.18.0.11";
const URL: &str = "rtsp://198.18.0.11/clip.ts";
/// The box's RTP server port (`rtsp.udp_port_min`, default).
const RTP_PORT: u16 = 6970;

fn metric(g: &LabGuard, n: usize, name: &str) -> u64 {
    metric_value(&box_metrics(g, n), name)
}

/// ffmpeg recording `URL` over `transport` (`udp` or `tcp`) into `out`
/// (MPEG-TS, streams copied), at most 120 s.
fn spawn_ffmpeg(g: &LabGuard, transport: &str, out: &str) -> Child {
    spawn_ffmpeg_at(g, URL, transport, out)
}

/// `spawn_ffmpeg` of `url`.
fn spawn_ffmpeg_at(g: &LabGuard, url: &str, transport: &str, out: &str) -> Child {
    spawn_client(
        g,
        &[
            "timeout",
            "120",
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-rtsp_transport",
            transport,
            "-i",
            url,
            "-c",
            "copy",
            "-f",
            "mpegts",
            out,
        ],
    )
}

/// Waits until box `n`'s `name` reaches `at_least`.
fn wait_metric(g: &LabGuard, n: usize, name: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = metric(g, n, name);
        if v >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "box{n} {name} = {v} after 30 s, waiting for {at_least}"
        );
        sleep(Duration::from_millis(50));
    }
}

/// Asserts box2 continued one session from its bundle: restored once,
/// no reset, no new session, and it sent RTP.
#[track_caller]
fn assert_resumed_on_box2(g: &LabGuard) {
    let m = box_metrics(g, 2);
    assert_eq!(
        metric_value(&m, "baton_rtsp_restored_total"),
        1,
        "box2 sessions restored"
    );
    assert_eq!(
        metric_value(&m, "baton_rtsp_not_restored_total"),
        0,
        "box2 resets"
    );
    assert_eq!(
        metric_value(&m, "baton_rtsp_sessions_total"),
        0,
        "the player set up a new session on box2"
    );
    assert!(
        metric_value(&m, "baton_rtp_packets_total{transport=\"udp\"}") > 0,
        "box2 sent no RTP"
    );
}

/// The RTP stream from the service address across the takeover: one
/// SSRC, every sequence number from the first to the last (a few sent
/// twice, from the last checkpoint, none missing), and the payloads in
/// sequence order are the clip byte for byte. Returns (packets, repeats,
/// the longest silence between two RTP packets in ms: the takeover's gap).
#[track_caller]
fn assert_one_whole_stream(g: &LabGuard, rtp: RtpCapture) -> (usize, usize, u64) {
    let datagrams = rtp.finish();
    let gap_us = datagrams
        .iter()
        .filter(|d| d.src_port == RTP_PORT)
        .map(|d| d.at_us)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0);
    let packets: Vec<&[u8]> = datagrams
        .iter()
        .filter(|d| d.src_port == RTP_PORT && d.payload.len() >= 12)
        .map(|d| d.payload.as_slice())
        .collect();
    assert!(
        !packets.is_empty(),
        "the capture saw no RTP from {BOX1}:{RTP_PORT}"
    );
    let ssrc = |p: &[u8]| u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
    let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
    let first = ssrc(packets[0]);
    let mut by_seq: std::collections::BTreeMap<i64, &[u8]> = Default::default();
    let (mut ext, mut last, mut repeats) = (0i64, seq(packets[0]), 0);
    for p in &packets {
        assert_eq!(ssrc(p), first, "a second SSRC in the stream");
        ext += i64::from(seq(p).wrapping_sub(last) as i16);
        last = seq(p);
        match by_seq.get(&ext) {
            Some(q) => {
                assert_eq!(q, p, "sequence number {ext} sent twice with other bytes");
                repeats += 1;
            }
            None => {
                by_seq.insert(ext, p);
            }
        }
    }
    let (lo, hi) = (
        *by_seq.keys().next().expect("packets"),
        *by_seq.keys().last().expect("packets"),
    );
    let missing: Vec<i64> = (lo..=hi).filter(|k| !by_seq.contains_key(k)).collect();
    assert!(
        missing.is_empty(),
        "{} sequence numbers missing (first {:?})",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let stream: Vec<u8> = by_seq.values().flat_map(|p| p[12..].to_vec()).collect();
    assert_eq!(
        sha256_hex(&stream),
        g.listed_sha("clip.ts"),
        "the RTP payloads are not the clip ({} bytes in {} packets)",
        stream.len(),
        by_seq.len()
    );
    (by_seq.len(), repeats, gap_us / 1000)
}

/// ffmpeg records the clip over UDP from box1; box1 is killed about 5 s
/// into the 30 s clip; box2 streams the rest and the recording is whole.
#[test]
fn lab_rtsp_a_box_killed_mid_stream_the_player_records_the_whole_clip() {
    killed_mid_stream(LabGuard::up("btrtk1", &["--boxes", "2"]), URL, BOX1);
}

#[test]
fn lab_rtsp_an_ipv6_player_s_box_killed_mid_stream_records_the_whole_clip() {
    killed_mid_stream(
        LabGuard::up("btrtk6", &["--boxes", "2"]),
        "rtsp://[2001:2:0:18::11]/clip.ts",
        "2001:2:0:18::11",
    );
}

/// A player of `url` (RTP over UDP from `box1`, box 1's address in that
/// family) records the whole clip while box 1 is killed mid-stream.
fn killed_mid_stream(g: LabGuard, url: &str, box1: &str) {
    let clip_ms = media_duration_ms(&g, &g.file("objects/clip.ts").display().to_string());
    assert!(clip_ms > 25_000, "the lab's clip lasts {clip_ms} ms");
    let rst = RstCapture::start(&g);
    let rtp = RtpCapture::start(&g, "rtp.pcap", &format!("udp and src host {box1}"));
    let out = g.file("takeover.ts").display().to_string();
    let _ = fs::remove_file(&out);
    let ffmpeg = spawn_ffmpeg_at(&g, url, "udp", &out);
    // About 5 s of playing at the default 200 ms cadence.
    wait_metric(&g, 1, "baton_rtsp_bundle_checkpoints_total", 25);
    let sent = metric(&g, 1, "baton_rtp_packets_total{transport=\"udp\"}");
    assert!(sent > 0, "box1 sent no RTP before the kill");
    ok(g.lab(&["kill", "box1"]));
    let done = ffmpeg.wait_with_output().expect("ffmpeg wait");
    assert!(
        done.status.success(),
        "ffmpeg across the takeover: {} {}",
        done.status,
        String::from_utf8_lossy(&done.stderr).trim()
    );
    let got = media_duration_ms(&g, &out);
    assert!(
        got.abs_diff(clip_ms) * 50 <= clip_ms,
        "recorded {got} ms of a {clip_ms} ms clip across the takeover"
    );
    assert_resumed_on_box2(&g);
    let (packets, repeats, gap_ms) = assert_one_whole_stream(&g, rtp);
    // A measure, not a pass mark (wall-clock).
    eprintln!(
        "RTP across the takeover: {packets} packets, {repeats} sent twice, longest gap {gap_ms} ms"
    );
    // ffmpeg sends TEARDOWN and closes without reading box2's answer: its
    // close is a FIN, or a RST of its own when the answer came first
    // (Linux resets a socket closed with unread data; seen in a capture of
    // port 554). Neither is a RST reaching the client; the capture's proof
    // of life is a connection the client surely closes with a FIN.
    let (status, _, _) = curl_box(&g, 2, "/1K.bin", &[]);
    assert_eq!(status, 200, "box2 serves HTTP after the takeover");
    rst.assert_none_with_fins(1);
}

/// The player of `common/rtsp_pause.py`, written into the lab's run folder.
const PAUSE_PLAYER: &str = include_str!("common/rtsp_pause.py");

/// A player pauses; box1 is killed while it is paused; its next PLAY is
/// answered by box2 from the paused packet: one SSRC, contiguous
/// sequence numbers across the pause and the takeover, the payloads the
/// clip's first bytes.
#[test]
fn lab_rtsp_a_paused_session_taken_over_resumes_at_the_paused_packet() {
    let g = LabGuard::up("btrtk2", &["--boxes", "2"]);
    require_tool("python3");
    let script = g.file("rtsp_pause.py");
    fs::write(&script, PAUSE_PLAYER).expect("write rtsp_pause.py");
    let payload = g.file("pause.payload");
    let gate = g.file("pause.gate");
    let paused = g.file("pause.gate.paused");
    let _ = fs::remove_file(&gate);
    let _ = fs::remove_file(&paused);
    let rst = RstCapture::start(&g);
    let player = spawn_client(
        &g,
        &[
            "timeout",
            "90",
            "python3",
            &script.display().to_string(),
            BOX1,
            &payload.display().to_string(),
            &gate.display().to_string(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !paused.exists() {
        assert!(
            Instant::now() < deadline,
            "the player did not pause in 30 s"
        );
        sleep(Duration::from_millis(50));
    }
    ok(g.lab(&["kill", "box1"]));
    fs::write(&gate, b"go").expect("open the gate");
    let done = player.wait_with_output().expect("player wait");
    let out = String::from_utf8_lossy(&done.stdout).to_string();
    assert!(
        done.status.success(),
        "player: {} {}\n{out}",
        done.status,
        String::from_utf8_lossy(&done.stderr).trim()
    );
    let mut answers: Vec<(String, u16, String)> = Vec::new();
    let mut rtp: Vec<(String, u16, u32)> = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["answer", m, s] => {
                answers.push((m.to_string(), s.parse().unwrap_or(0), String::new()))
            }
            ["header", _, name, ..] if *name == "range:" => {
                let v = line.splitn(4, ' ').nth(3).unwrap_or("");
                if let Some(a) = answers.last_mut() {
                    a.2 = v.to_string();
                }
            }
            ["rtp", p, seq, ssrc, _] => rtp.push((
                p.to_string(),
                seq.parse().expect("seq"),
                ssrc.parse().expect("ssrc"),
            )),
            _ => {}
        }
    }
    let methods: Vec<(&str, u16)> = answers.iter().map(|a| (a.0.as_str(), a.1)).collect();
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
    assert_eq!(
        in_phase("paused") + in_phase("gated"),
        0,
        "RTP while paused"
    );
    assert!(
        in_phase("resumed") > 20,
        "RTP from box2 after PLAY: {}",
        in_phase("resumed")
    );
    for w in rtp.windows(2) {
        assert_eq!(w[1].2, w[0].2, "a second SSRC after the takeover");
        assert_eq!(
            w[1].1,
            w[0].1.wrapping_add(1),
            "sequence gap or repeat across the takeover"
        );
    }
    // PAUSE (box1) said where it stopped; PLAY (box2) starts there.
    let paused_at = &answers[3].2;
    assert!(paused_at.starts_with("npt="), "PAUSE Range {paused_at:?}");
    assert_eq!(
        paused_at.trim_end_matches('-').split('-').next(),
        answers[4].2.split('-').next(),
        "PAUSE {paused_at:?}, PLAY on box2 {:?}",
        answers[4].2
    );
    let got = fs::read(&payload).expect("payload file");
    let clip = fs::read(g.file("objects/clip.ts")).expect("the lab's clip");
    assert!(got.len() > 100_000, "{} payload bytes", got.len());
    assert!(
        got == clip[..got.len()],
        "the payloads are not the clip's first {} bytes",
        got.len()
    );
    assert_resumed_on_box2(&g);
    rst.assert_none_with_fins(1);
}

/// The documented gap (docs/RTSP.md, "What is left"): a stream
/// interleaved on the RTSP connection that has played is reset by the
/// survivor, counted, rather than resumed misframed. ffmpeg sees the
/// connection end before the clip does.
#[test]
fn lab_rtsp_an_interleaved_stream_taken_over_is_reset_not_misframed() {
    let g = LabGuard::up("btrtk3", &["--boxes", "2"]);
    let clip_ms = media_duration_ms(&g, &g.file("objects/clip.ts").display().to_string());
    let out = g.file("interleaved.ts").display().to_string();
    let _ = fs::remove_file(&out);
    let ffmpeg = spawn_ffmpeg(&g, "tcp", &out);
    wait_metric(&g, 1, "baton_rtsp_bundle_checkpoints_total", 25);
    assert!(metric(&g, 1, "baton_rtp_packets_total{transport=\"tcp\"}") > 0);
    ok(g.lab(&["kill", "box1"]));
    let done = ffmpeg.wait_with_output().expect("ffmpeg wait");
    eprintln!(
        "ffmpeg after the reset: {} {}",
        done.status,
        String::from_utf8_lossy(&done.stderr).trim()
    );
    let m = box_metrics(&g, 2);
    assert_eq!(
        metric_value(&m, "baton_rtsp_not_restored_total"),
        1,
        "box2 resets"
    );
    assert_eq!(
        metric_value(&m, "baton_rtsp_restored_total"),
        0,
        "box2 restores"
    );
    let got = media_duration_ms(&g, &out);
    eprintln!("recorded {got} ms of {clip_ms} ms");
    assert!(
        got < clip_ms,
        "recorded {got} ms of {clip_ms} ms: the reset ended nothing"
    );
}
