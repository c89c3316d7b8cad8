//! Tests of the RTP flow on a synthetic transport stream and virtual
//! time: packetisation (RFC 2250), pacing by PCR, sender reports (RFC
//! 3550), and checkpoint/restore across a takeover.

use super::*;
use crate::rtp::{Header, HEADER};
use crate::ts::build_packet;

/// 2 Mbit/s.
const RATE: u64 = 250_000;

/// `secs` seconds of TS at [`RATE`], a PCR every 20 packets (15 ms) on PID
/// 0x100, payload bytes numbered so a byte-exact check means something.
fn stream(secs: u64) -> Vec<u8> {
    let n = secs * RATE / PACKET as u64;
    let mut v = Vec::new();
    for i in 0..n {
        let pid = if i % 3 == 0 { 0x101 } else { 0x100 };
        let pcr = (i % 20 == 0).then(|| (1_000_000 + i * PACKET as u64 * HZ / RATE) % ts::PCR_WRAP);
        let mut p = build_packet(if pcr.is_some() { 0x100 } else { pid }, i as u8, pcr, 0);
        p[PACKET - 4..].copy_from_slice(&(i as u32).to_be_bytes());
        v.extend_from_slice(&p);
    }
    v
}

/// Runs the flow on virtual time until `until_us`, as a worker would:
/// sleep to `poll_at`, send. Returns (send time, packet).
fn run(f: &mut RtpFlow, obj: &[u8], mut now: u64, until_us: u64) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(at) = f.poll_at(obj) {
        now = now.max(at);
        if now > until_us {
            break;
        }
        let mut b = Vec::new();
        assert!(f.poll_transmit(now, obj, &mut b));
        out.push((now, b));
    }
    out
}

fn hdr(p: &[u8]) -> Header {
    match Header::parse(p) {
        Ok((h, _)) => h,
        Err(e) => panic!("bad RTP packet: {e}"),
    }
}

#[test]
fn rfc_2250_s2_seven_ts_packets_per_rtp_packet_with_pt_33() {
    let obj = stream(2);
    let mut f = RtpFlow::new(FlowConfig::default(), 0x5555, 100, 7, 0);
    f.seek(&obj, 0, 0);
    let pkts = run(&mut f, &obj, 0, u64::MAX);
    let whole = obj.len() / PACKET;
    assert_eq!(pkts.len(), whole.div_ceil(7));
    for (i, (_, p)) in pkts.iter().enumerate() {
        let h = hdr(p);
        assert_eq!(h.pt, 33);
        assert_eq!(h.ssrc, 0x5555);
        assert_eq!(h.seq, 100u16.wrapping_add(i as u16));
        let payload = p.len() - HEADER;
        assert_eq!(payload % PACKET, 0);
        if i + 1 < pkts.len() {
            assert_eq!(payload, 7 * PACKET);
        }
    }
    let sent: Vec<u8> = pkts
        .iter()
        .flat_map(|(_, p)| p[HEADER..].to_vec())
        .collect();
    assert_eq!(sent, obj, "payloads are the object, byte for byte");
    assert!(f.finished(&obj));
    assert_eq!(f.poll_at(&obj), None);
}

#[test]
fn packets_are_paced_by_pcr_and_timestamps_run_at_90_khz() {
    let obj = stream(10);
    let cfg = FlowConfig {
        lead_us: 0,
        ..FlowConfig::default()
    };
    let mut f = RtpFlow::new(cfg, 1, 0, 0, 0);
    f.seek(&obj, 0, 1_000_000);
    let pkts = run(&mut f, &obj, 1_000_000, 6_000_000);
    // Five seconds of a 250 kB/s stream: 1.25 MB, give or take a packet.
    let bytes: usize = pkts.iter().map(|(_, p)| p.len() - HEADER).sum();
    assert!(bytes.abs_diff(1_250_000) <= 7 * PACKET, "{bytes}");
    // RFC 2250 §2: the timestamp is the target transmission time, 90 kHz.
    let (t0, p0) = &pkts[0];
    let (tn, pn) = &pkts[pkts.len() - 1];
    let dt_us = tn - t0;
    let dts = u64::from(hdr(pn).timestamp.wrapping_sub(hdr(p0).timestamp));
    assert!(dts.abs_diff(dt_us * 9 / 100) <= 90, "{dts} vs {dt_us} µs");
    // Spread out, not bursts: no two packets share a send time.
    assert!(pkts.windows(2).all(|w| w[1].0 > w[0].0));
}

#[test]
fn pause_stops_and_resume_goes_on_from_the_same_byte() {
    let obj = stream(4);
    let mut f = RtpFlow::new(FlowConfig::default(), 1, 0, 0, 0);
    f.seek(&obj, 0, 0);
    let a = run(&mut f, &obj, 0, 1_000_000);
    let npt = f.pause();
    assert!((900..=1200).contains(&npt), "{npt}");
    assert_eq!(f.poll_at(&obj), None);
    let (seq, _) = f.resume(50_000_000);
    assert_eq!(seq, a.len() as u16);
    let b = run(&mut f, &obj, 50_000_000, u64::MAX);
    assert!(b[0].0 <= 50_000_000);
    let sent: Vec<u8> = a
        .iter()
        .chain(&b)
        .flat_map(|(_, p)| p[HEADER..].to_vec())
        .collect();
    assert_eq!(sent, obj);
}

#[test]
fn seek_starts_at_a_pcr_packet_and_keeps_sequence_numbers() {
    let obj = stream(4);
    let mut f = RtpFlow::new(FlowConfig::default(), 1, 500, 0, 0);
    f.seek(&obj, 0, 0);
    run(&mut f, &obj, 0, 200_000);
    let seq_before = f.next().0;
    let (seq, _) = f.seek(&obj, 2_000, 300_000);
    assert_eq!(seq, seq_before);
    assert_eq!(f.offset() % PACKET as u64, 0);
    let at = f.offset() as usize;
    assert_eq!(ts::pcr(&obj[at..at + PACKET]).map(|p| p.0), Some(0x100));
    assert!((2_000..2_020).contains(&f.npt_ms()), "{}", f.npt_ms());
}

#[test]
fn rfc_3550_s6_4_1_sender_reports_count_packets_and_octets() {
    let obj = stream(12);
    let mut f = RtpFlow::new(FlowConfig::default(), 9, 0, 1000, 0);
    let mut sr = Vec::new();
    assert!(
        !f.poll_rtcp(0, 0, "baton", &mut sr),
        "no report before PLAY"
    );
    f.seek(&obj, 0, 0);
    let pkts = run(&mut f, &obj, 0, 5_000_000);
    assert!(f.poll_rtcp(5_000_000, 1 << 32, "baton", &mut sr));
    assert_eq!(&sr[0..2], &[0x80, 200]);
    let count = u32::from_be_bytes([sr[20], sr[21], sr[22], sr[23]]);
    let octets = u32::from_be_bytes([sr[24], sr[25], sr[26], sr[27]]);
    assert_eq!(count as usize, pkts.len());
    assert_eq!(
        octets as usize,
        pkts.iter().map(|(_, p)| p.len() - HEADER).sum::<usize>()
    );
    // The SR's RTP time is the stream's at that instant: 5 s after the
    // first packet's timestamp, within the pacing lead.
    let rtp = u32::from_be_bytes([sr[16], sr[17], sr[18], sr[19]]);
    let first = hdr(&pkts[0].1).timestamp;
    assert!(u64::from(rtp.wrapping_sub(first)).abs_diff(450_000) <= 9_000);
    let mut again = Vec::new();
    assert!(!f.poll_rtcp(6_000_000, 0, "baton", &mut again));
    assert!(f.poll_rtcp(10_000_000, 0, "baton", &mut again));
}

#[test]
fn restore_continues_the_ssrc_sequence_and_timestamps_on_another_clock() {
    let obj = stream(6);
    let cfg = FlowConfig::default();
    let mut dead = RtpFlow::new(cfg, 0xABCD, 65_500, 4_294_000_000, 0);
    dead.seek(&obj, 0, 0);
    let before = run(&mut dead, &obj, 0, 2_000_000);
    let record = dead.checkpoint().encode();
    // The dead box goes on a little past its checkpoint before it dies.
    let lost = run(&mut dead, &obj, 2_000_000, 2_150_000);
    assert!(!lost.is_empty());

    let rec = match crate::checkpoint::FlowRecord::decode(&record) {
        Ok(r) => r,
        Err(e) => panic!("record did not decode: {e}"),
    };
    // The survivor's clock has nothing to do with the dead box's.
    let mut survivor = RtpFlow::restore(cfg, &rec, 777_000_000_000);
    let after = run(&mut survivor, &obj, 777_000_000_000, u64::MAX);

    let last = hdr(&before[before.len() - 1].1);
    let first = hdr(&after[0].1);
    assert_eq!(first.ssrc, 0xABCD);
    assert_eq!(
        first.seq,
        last.seq.wrapping_add(1),
        "no missing sequence number"
    );
    assert!(
        first.timestamp.wrapping_sub(last.timestamp) < 90 * 20,
        "timestamps go on"
    );
    // The packets the dead box sent after its checkpoint come again with
    // the same numbers and bytes: duplicates, never a skip.
    for (i, (_, p)) in lost.iter().enumerate() {
        assert_eq!(p, &after[i].1);
    }
    let mut by_seq = std::collections::BTreeMap::new();
    for (_, p) in before.iter().chain(&lost).chain(&after) {
        by_seq
            .entry(hdr(p).seq.wrapping_sub(65_500))
            .or_insert(p[HEADER..].to_vec());
    }
    let received: Vec<u8> = by_seq.into_values().flatten().collect();
    assert_eq!(received, obj, "the player gets every byte once");
    assert_eq!(
        survivor.checkpoint().packets as usize,
        before.len() + after.len()
    );
}

#[test]
fn a_paused_flow_restores_paused() {
    let obj = stream(2);
    let mut f = RtpFlow::new(FlowConfig::default(), 1, 0, 0, 0);
    f.seek(&obj, 0, 0);
    run(&mut f, &obj, 0, 500_000);
    f.pause();
    let rec = f.checkpoint();
    let mut g = RtpFlow::restore(FlowConfig::default(), &rec, 9);
    assert!(!g.playing());
    assert_eq!(g.poll_at(&obj), None);
    assert_eq!(g.resume(10), f.next());
}
