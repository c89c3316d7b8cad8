//! The RTP flow on a real MPEG-TS clip made by ffmpeg (test pattern video
//! and a sine tone, as the lab's `clip.ts` will be): PCRs found, the clip
//! sent byte for byte as RTP PT 33, paced over its own duration as
//! ffprobe reports it, and continued across a checkpoint/restore.
//!
//! Needs ffmpeg and ffprobe (`scripts/test` installs them); without them
//! the test fails, it does not skip.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use baton_rtsp::checkpoint::FlowRecord;
use baton_rtsp::rtp::{Header, HEADER, PT_MP2T};
use baton_rtsp::{ts, FlowConfig, RtpFlow};

/// A clip of `secs` seconds, deleted on drop.
struct Clip {
    path: PathBuf,
}

impl Drop for Clip {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn make_clip(secs: u32) -> Clip {
    // Tests run as threads of one process under `cargo test`: a name per call.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("baton-rtsp-clip-{}-{n}.ts", std::process::id()));
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args(["-c:v", "mpeg2video", "-b:v", "1M", "-c:a", "mp2"])
        .args(["-f", "mpegts"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg is needed (scripts/test installs it): {e}"));
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Clip { path }
}

/// ffprobe's duration of the clip, in microseconds.
fn probe_duration_us(clip: &Clip) -> u64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&clip.path)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe is needed (scripts/test installs it): {e}"));
    assert!(out.status.success(), "ffprobe failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe said {text:?}"));
    (secs * 1e6) as u64
}

/// Runs `flow` on virtual time as a worker would, from `now` until the
/// object is sent or `until` passes.
fn run(flow: &mut RtpFlow, obj: &[u8], mut now: u64, until: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(at) = flow.poll_at(obj) {
        now = now.max(at);
        if now > until {
            break;
        }
        let mut b = Vec::new();
        assert!(flow.poll_transmit(now, obj, &mut b));
        out.push((now, b));
    }
    out
}

fn header(p: &[u8]) -> Header {
    Header::parse(p)
        .unwrap_or_else(|e| panic!("bad RTP packet: {e}"))
        .0
}

#[test]
fn an_ffmpeg_clip_is_sent_whole_paced_over_its_duration() {
    let clip = make_clip(4);
    let obj = std::fs::read(&clip.path).expect("clip written");
    assert_eq!(obj.len() % ts::PACKET, 0, "whole TS packets");
    assert!(obj.chunks(ts::PACKET).all(|p| p[0] == ts::SYNC));
    let pcrs = obj
        .chunks(ts::PACKET)
        .filter(|p| ts::pcr(p).is_some())
        .count();
    assert!(
        pcrs >= 40,
        "ffmpeg writes a PCR at least every 100 ms: {pcrs}"
    );

    let cfg = FlowConfig {
        lead_us: 0,
        ..FlowConfig::default()
    };
    let mut f = RtpFlow::new(cfg, 0x600D_CAFE, 1, 0, 0);
    f.seek(&obj, 0, 0);
    let pkts = run(&mut f, &obj, 0, u64::MAX);
    for (i, (_, p)) in pkts.iter().enumerate() {
        let h = header(p);
        assert_eq!((h.pt, h.ssrc, h.seq), (PT_MP2T, 0x600D_CAFE, 1 + i as u16));
    }
    let sent: Vec<u8> = pkts
        .iter()
        .flat_map(|(_, p)| p[HEADER..].to_vec())
        .collect();
    assert!(sent == obj, "the clip, byte for byte");

    // Paced by the clip's own clock: the sending spans what ffprobe calls
    // its duration (give or take the muxer's start-up delay).
    let span = pkts[pkts.len() - 1].0 - pkts[0].0;
    let duration = probe_duration_us(&clip);
    eprintln!(
        "{} bytes, {pcrs} PCRs, {} RTP packets sent over {span} µs; ffprobe: {duration} µs",
        obj.len(),
        pkts.len()
    );
    assert!(
        span.abs_diff(duration) < duration / 10,
        "sent over {span} µs, clip lasts {duration} µs"
    );
    // And its 90 kHz timestamps moved with the send times.
    let ts_span = header(&pkts[pkts.len() - 1].1)
        .timestamp
        .wrapping_sub(header(&pkts[0].1).timestamp);
    assert!(
        (u64::from(ts_span) * 100 / 9).abs_diff(span) < 20_000,
        "timestamps {ts_span} vs {span} µs"
    );
}

#[test]
fn an_ffmpeg_clip_goes_on_after_a_restore_with_one_ssrc_and_no_gap_in_sequence() {
    let clip = make_clip(3);
    let obj = std::fs::read(&clip.path).expect("clip written");
    let cfg = FlowConfig::default();
    let mut dead = RtpFlow::new(cfg, 77, 65_530, 123, 0);
    dead.seek(&obj, 0, 0);
    let before = run(&mut dead, &obj, 0, 1_500_000);
    let record = dead.checkpoint().encode();
    let lost = run(&mut dead, &obj, 1_500_000, 1_700_000);

    let rec = FlowRecord::decode(&record).unwrap_or_else(|e| panic!("{e}"));
    let mut survivor = RtpFlow::restore(cfg, &rec, 5_000_000_000);
    let after = run(&mut survivor, &obj, 5_000_000_000, u64::MAX);
    let last = header(&before[before.len() - 1].1);
    let first = header(&after[0].1);
    assert_eq!(first.ssrc, 77);
    assert_eq!(first.seq, last.seq.wrapping_add(1));
    assert_eq!(
        &after[0].1, &lost[0].1,
        "the survivor repeats, it never skips"
    );

    let mut by_seq = BTreeMap::new();
    for (_, p) in before.iter().chain(&lost).chain(&after) {
        by_seq
            .entry(header(p).seq.wrapping_sub(65_530))
            .or_insert_with(|| p[HEADER..].to_vec());
    }
    let received: Vec<u8> = by_seq.into_values().flatten().collect();
    assert!(received == obj, "the player gets the clip whole");
}
