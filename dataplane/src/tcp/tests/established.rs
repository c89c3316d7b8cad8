//! Tests for the ESTABLISHED state, receive side: delayed ACKs, ordering,
//! duplicates, window edges, PAWS (RFC 9293 §3.10.7.4, RFC 5681 §4.2,
//! RFC 7323 §5).

use super::*;

#[test]
fn in_order_data_is_delivered_and_its_ack_delayed() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    send!(tcb, fx.at(10), seg(SeqNum(CISN + 1), iss + 1, b"hello"));
    assert_eq!(tcb.poll_event(), Some(Event::Readable));
    assert_eq!(tcb.recv_available(), 5);
    // RFC 9293 §3.8.6.3: "an ACK should not be excessively delayed; in
    // particular, the delay MUST be less than 0.5 seconds" (40 ms here).
    recv!(tcb, fx.at(10), nothing);
    assert_eq!(tcb.poll_timeout(), Some(fx.at(50)));
    tcb.on_timeout(fx.at(50));
    let ack = recv!(tcb, fx.at(50));
    assert_eq!(ack.ack, SeqNum(CISN + 6));
    assert!(ack.payload.is_empty());
    let mut buf = [0u8; 16];
    let n = tcb.recv(&mut buf);
    assert_eq!(&buf[..n], b"hello");
}

#[test]
fn every_second_full_segment_is_acked_at_once() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    let data = pattern(2 * 1460);
    send!(
        tcb,
        fx.at(10),
        seg(SeqNum(CISN + 1), iss + 1, &data[..1460])
    );
    recv!(tcb, fx.at(10), nothing);
    send!(
        tcb,
        fx.at(11),
        seg(SeqNum(CISN + 1461), iss + 1, &data[1460..])
    );
    // RFC 5681 §4.2: "an ACK SHOULD be generated for at least every second
    // full-sized segment".
    let ack = recv!(tcb, fx.at(11));
    assert_eq!(ack.ack, SeqNum(CISN + 1 + 2920));
}

#[test]
fn out_of_order_segment_gets_an_immediate_dupack_and_the_hole_fill_an_ack() {
    let fx = Fx::new();
    let (mut tcb, iss) = established_with(
        &fx,
        TcpConfig::default(),
        Options {
            sack_permitted: true,
            ..opts_mss(1460)
        },
    );
    let data = pattern(3000);
    let base = SeqNum(CISN + 1);
    send!(tcb, fx.at(10), seg(base + 1000, iss + 1, &data[1000..2000]));
    // RFC 5681 §4.2: "A TCP receiver SHOULD send an immediate duplicate ACK
    // when an out-of-order segment arrives."
    let dup = recv!(tcb, fx.at(10));
    assert_eq!(dup.ack, base);
    // RFC 2018 §4: the first SACK block reports the segment just received.
    assert_eq!(dup.options.sack_blocks[0], Some((base + 1000, base + 2000)));
    assert_eq!(tcb.recv_available(), 0);
    send!(tcb, fx.at(11), seg(base + 2000, iss + 1, &data[2000..3000]));
    let dup2 = recv!(tcb, fx.at(11));
    assert_eq!(
        dup2.options.sack_blocks[0],
        Some((base + 1000, base + 3000))
    );
    send!(tcb, fx.at(12), seg(base, iss + 1, &data[..1000]));
    // "… an immediate ACK when the incoming segment fills in all or part of
    // a gap in the sequence space."
    let ack = recv!(tcb, fx.at(12));
    assert_eq!(ack.ack, base + 3000);
    assert_eq!(ack.options.sack_blocks[0], None);
    let mut buf = vec![0u8; 4000];
    let n = tcb.recv(&mut buf);
    assert_eq!(&buf[..n], &data[..]);
}

#[test]
fn duplicate_segment_is_acked_and_not_delivered_twice() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    let s = seg(SeqNum(CISN + 1), iss + 1, b"abc");
    send!(tcb, fx.at(10), s);
    send!(tcb, fx.at(20), s);
    // RFC 9293 §3.10.7.4: "If an incoming segment is not acceptable, an
    // acknowledgment should be sent in reply".
    let ack = recv!(tcb, fx.at(20));
    assert_eq!(ack.ack, SeqNum(CISN + 4));
    assert_eq!(tcb.recv_available(), 3);
    assert_eq!(tcb.stats().bytes_received, 3);
}

#[test]
fn overlapping_retransmission_delivers_only_the_new_bytes() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    send!(tcb, fx.at(10), seg(SeqNum(CISN + 1), iss + 1, b"abc"));
    send!(tcb, fx.at(11), seg(SeqNum(CISN + 2), iss + 1, b"bcdef"));
    let mut buf = [0u8; 16];
    let n = tcb.recv(&mut buf);
    assert_eq!(&buf[..n], b"abcdef");
}

#[test]
fn segment_partly_beyond_the_window_is_trimmed() {
    let fx = Fx::new();
    let config = TcpConfig {
        recv_buffer: 1000,
        ..TcpConfig::default()
    };
    let (mut tcb, iss) = established_with(&fx, config, opts_mss(1460));
    let data = pattern(1500);
    // A FIN beyond the window goes with the trimmed bytes.
    let mut s = seg(SeqNum(CISN + 1), iss + 1, &data);
    s.flags.fin = true;
    send!(tcb, fx.at(10), s);
    // RFC 9293 §3.10.7.4: "Segments with higher beginning sequence numbers
    // … should be held"; the part beyond the window is dropped.
    assert_eq!(tcb.recv_available(), 1000);
    assert_eq!(tcb.state(), State::Established);
    // The dropped bytes are worth an immediate ACK: the peer learns the
    // window is closed.
    let ack = recv!(tcb, fx.at(10));
    assert_eq!(ack.ack, SeqNum(CISN + 1001));
    assert_eq!(ack.window, 0);
}

#[test]
fn zero_window_still_processes_the_ack_field() {
    let fx = Fx::new();
    let config = TcpConfig {
        recv_buffer: 100,
        ..TcpConfig::default()
    };
    let (mut tcb, iss) = established_with(&fx, config, opts_mss(1460));
    send!(
        tcb,
        fx.at(10),
        seg(SeqNum(CISN + 1), iss + 1, &pattern(100))
    );
    tcb.send(Bytes::from_static(b"response")).expect("queued");
    let out = recv!(tcb, fx.at(10));
    assert_eq!(out.window, 0);
    // The client's next segment carries data we have no room for, and the
    // ACK of our response. RFC 9293 §3.10.7.4: "If the RCV.WND is zero, no
    // segments will be acceptable, but special allowance should be made to
    // accept valid ACKs".
    send!(tcb, fx.at(20), seg(SeqNum(CISN + 101), iss + 9, b"more"));
    assert_eq!(tcb.recv_available(), 100);
    assert_eq!(tcb.send_queued(), 0, "our 8 bytes were acknowledged");
    let ack = recv!(tcb, fx.at(20));
    assert_eq!(ack.ack, SeqNum(CISN + 101));
}

#[test]
fn reading_reopens_the_window_with_an_update() {
    let fx = Fx::new();
    let config = TcpConfig {
        recv_buffer: 4000,
        ..TcpConfig::default()
    };
    let (mut tcb, iss) = established_with(&fx, config, opts_mss(1000));
    send!(
        tcb,
        fx.at(10),
        seg(SeqNum(CISN + 1), iss + 1, &pattern(1000))
    );
    send!(
        tcb,
        fx.at(10),
        seg(SeqNum(CISN + 1001), iss + 1, &pattern(1000))
    );
    send!(
        tcb,
        fx.at(10),
        seg(SeqNum(CISN + 2001), iss + 1, &pattern(1000))
    );
    send!(
        tcb,
        fx.at(10),
        seg(SeqNum(CISN + 3001), iss + 1, &pattern(1000))
    );
    let acks = drain(&mut tcb, fx.at(10));
    assert_eq!(acks.last().map(|a| a.window), Some(0));
    let mut buf = vec![0u8; 4000];
    assert_eq!(tcb.recv(&mut buf), 4000);
    // RFC 9293 §3.8.6.2.2: the window update goes out once the opening is
    // worth it.
    let upd = recv!(tcb, fx.at(11));
    assert_eq!(upd.ack, SeqNum(CISN + 4001));
    assert_eq!(upd.window, 4000);
}

#[test]
fn paws_rejects_a_segment_with_an_old_timestamp() {
    let fx = Fx::new();
    let (mut tcb, iss) = established_with(&fx, TcpConfig::default(), opts_all());
    let mut s = seg(SeqNum(CISN + 1), iss + 1, b"new");
    s.options.timestamps = Some((2_000, 0));
    send!(tcb, fx.at(10), s);
    assert_eq!(tcb.recv_available(), 3);
    drain(&mut tcb, fx.at(60));
    // An old duplicate from before a sequence wrap: right sequence number,
    // older TSval. RFC 7323 §5.3 R1: "If … SEG.TSval < TS.Recent … then
    // treat the arriving segment as not acceptable: Send an acknowledgment
    // in reply … and drop the segment."
    let mut old = seg(SeqNum(CISN + 4), iss + 1, b"old");
    old.options.timestamps = Some((1_500, 0));
    send!(tcb, fx.at(70), old);
    assert_eq!(tcb.recv_available(), 3, "not delivered");
    let ack = recv!(tcb, fx.at(70));
    assert_eq!(ack.ack, SeqNum(CISN + 4));
    // Our ACK echoes TS.Recent of the newest valid segment.
    assert_eq!(ack.options.timestamps.map(|t| t.1), Some(2_000));
    assert_eq!(tcb.stats().dropped, 1);
    // A segment with a current TSval is accepted.
    let mut ok = seg(SeqNum(CISN + 4), iss + 1, b"new");
    ok.options.timestamps = Some((2_001, 0));
    send!(tcb, fx.at(80), ok);
    assert_eq!(tcb.recv_available(), 6);
}

#[test]
fn paws_does_not_apply_to_rst() {
    let fx = Fx::new();
    let (mut tcb, iss) = established_with(&fx, TcpConfig::default(), opts_all());
    let mut rst = seg(SeqNum(CISN + 1), iss + 1, &[]);
    rst.flags.rst = true;
    rst.options.timestamps = Some((1, 0));
    send!(tcb, fx.at(10), rst);
    // RFC 7323 §5.3 R1 applies "if the RST bit is not set".
    assert_eq!(tcb.state(), State::Closed);
}

#[test]
fn timestamps_give_an_rtt_sample_and_set_the_rto() {
    let fx = Fx::new();
    let (mut tcb, iss) = established_with(&fx, TcpConfig::default(), opts_all());
    tcb.send(Bytes::from(pattern(100))).expect("queued");
    let out = recv!(tcb, fx.at(100));
    let tsval = out.options.timestamps.map(|t| t.0).expect("timestamps");
    let mut ack = seg(SeqNum(CISN + 1), iss + 101, &[]);
    ack.options.timestamps = Some((1_100, tsval));
    send!(tcb, fx.at(130), ack);
    // The handshake ACK gave the first sample, R = 1 ms (RFC 6298 §2.2:
    // SRTT <- R, RTTVAR <- R/2). This one, R' = 30 ms, §2.3:
    // RTTVAR <- 3/4 * 500 + 1/4 * |1000 - 30000| = 7625 us,
    // SRTT <- 7/8 * 1000 + 1/8 * 30000 = 4625 us; RTO = SRTT + 4*RTTVAR =
    // 35 ms, raised to the 200 ms floor (min_rto, §2.4).
    let st = tcb.stats();
    assert_eq!(st.srtt_us, 4_625);
    assert_eq!(st.rto_us, 200_000);
}

#[test]
fn ack_after_commit_holds_the_ack_until_the_checkpoint_is_committed() {
    let fx = Fx::new();
    let config = TcpConfig {
        ack_after_commit: true,
        ..TcpConfig::default()
    };
    let (mut tcb, iss) = established_with(&fx, config, opts_mss(1460));
    send!(
        tcb,
        fx.at(10),
        seg(SeqNum(CISN + 1), iss + 1, &pattern(3000))
    );
    // The data is delivered to the application at once…
    assert_eq!(tcb.recv_available(), 3000);
    // …but not acknowledged: a survivor restoring the last committed
    // checkpoint would not have it (ARCHITECTURE.md "Checkpoints"). Nor is
    // a duplicate ACK sent at the held point (the client would count it
    // towards a fast retransmit): neither for every second segment nor
    // when the delayed-ACK timer fires.
    recv!(tcb, fx.at(10), nothing);
    assert!(tcb.poll_timeout().is_none_or(|t| t > fx.at(1_000)));
    tcb.on_timeout(fx.at(50));
    recv!(tcb, fx.at(50), nothing);
    tcb.commit_ack(SeqNum(CISN + 1001));
    let held = recv!(tcb, fx.at(11));
    assert_eq!(held.ack, SeqNum(CISN + 1001));
    // The window still counts from the ACK number and covers what we hold.
    assert!(u32::from(held.window) >= 2000);
    // Never beyond what arrived.
    tcb.commit_ack(SeqNum(CISN + 9999));
    assert_eq!(recv!(tcb, fx.at(12)).ack, SeqNum(CISN + 3001));
}

#[test]
fn held_bytes_sent_again_are_acknowledged_so_the_client_never_stalls() {
    // `hold_acks`: a request waits for the checkpoint of its response; if
    // the client's RTO fires first (a slow origin), or it cannot send the
    // rest without our ACK, its retransmission releases the hold.
    let fx = Fx::new();
    let config = TcpConfig {
        hold_acks: true,
        ..TcpConfig::default()
    };
    let (mut tcb, iss) = established_with(&fx, config, opts_mss(1460));
    let req = pattern(1_000);
    send!(tcb, fx.at(10), seg(SeqNum(CISN + 1), iss + 1, &req));
    tcb.on_timeout(fx.at(60));
    recv!(tcb, fx.at(60), nothing);
    // The client's first RTO: still held (a box dying now leaves the
    // bytes to the client); the reply to the duplicate stays at the
    // committed point.
    send!(tcb, fx.at(250), seg(SeqNum(CISN + 1), iss + 1, &req));
    assert_eq!(recv!(tcb, fx.at(250)).ack, SeqNum(CISN + 1));
    // Held for a second and sent again: ACK them.
    send!(tcb, fx.at(1_010), seg(SeqNum(CISN + 1), iss + 1, &req));
    assert_eq!(recv!(tcb, fx.at(1_010)).ack, SeqNum(CISN + 1_001));
    // The hold stays for what comes next.
    send!(tcb, fx.at(1_100), seg(SeqNum(CISN + 1_001), iss + 1, &req));
    tcb.on_timeout(fx.at(1_150));
    recv!(tcb, fx.at(1_150), nothing);
    // The application lifts it (an upload body): ACKs flow as usual.
    tcb.set_ack_hold(false);
    assert_eq!(recv!(tcb, fx.at(1_151)).ack, SeqNum(CISN + 2_001));
    // Put back: from what was acknowledged.
    tcb.set_ack_hold(true);
    send!(tcb, fx.at(1_200), seg(SeqNum(CISN + 2_001), iss + 1, &req));
    tcb.on_timeout(fx.at(1_250));
    recv!(tcb, fx.at(1_250), nothing);
    tcb.commit_ack(SeqNum(CISN + 3_001));
    assert_eq!(recv!(tcb, fx.at(1_251)).ack, SeqNum(CISN + 3_001));
}

/// A connection that lives for months: the TCB's 4-byte clock moves its
/// epoch on (past 24.8 days), its TSvals go on exactly as the milliseconds
/// pass, and its timers still fire when they should (issue 19).
#[test]
fn a_connection_months_old_keeps_its_timestamps_and_timers() {
    let fx = Fx::new();
    let (mut tcb, iss) = established_with(&fx, TcpConfig::default(), opts_all());
    tcb.send(Bytes::from(pattern(10))).expect("queued");
    let first = recv!(tcb, fx.at(10));
    let ts0 = first.options.timestamps.map(|t| t.0).expect("timestamps");
    let mut una = iss + 11;
    let mut ack = seg(SeqNum(CISN + 1), una, &[]);
    ack.options.timestamps = Some((1_100, ts0));
    send!(tcb, fx.at(20), ack);
    let day = 86_400_000u64;
    for (i, at) in [30 * day, 60 * day + 7, 95 * day + 123]
        .into_iter()
        .enumerate()
    {
        tcb.send(Bytes::from(pattern(10))).expect("queued");
        let out = recv!(tcb, fx.at(at));
        let ts = out.options.timestamps.map(|t| t.0).expect("timestamps");
        assert_eq!(ts, ts0.wrapping_add((at - 10) as u32), "TSval {at} ms in");
        // Unacknowledged, it goes again once the RTO (200 ms at least,
        // backed off from the last sample) has passed, not before.
        let due = tcb.poll_timeout().expect("an RTO is set");
        assert!(
            due > fx.at(at + 199) && due <= fx.at(at + 2_000),
            "RTO {at} ms in"
        );
        tcb.on_timeout(due - Duration::from_millis(1));
        recv!(tcb, due - Duration::from_millis(1), nothing);
        tcb.on_timeout(due);
        let again = recv!(tcb, due);
        assert_eq!(again.seq, una, "retransmitted {at} ms in");
        una += 10;
        let mut ack = seg(SeqNum(CISN + 1), una, &[]);
        ack.options.timestamps = Some((2_000 + i as u32, ts));
        send!(tcb, due + Duration::from_millis(1), ack);
        assert_eq!(tcb.state(), State::Established);
    }
}
