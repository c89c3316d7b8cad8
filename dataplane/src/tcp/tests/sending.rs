//! Tests for the ESTABLISHED state, send side: sequence numbers, the
//! initial window, retransmission (RFC 6298), fast retransmit and recovery
//! (RFC 5681, RFC 6582), SACK recovery (RFC 6675), flow control and the
//! persist timer (RFC 9293 §3.8.6).

use super::*;

/// Sequence number of the `i`-th full segment after the handshake.
fn nth(iss: SeqNum, i: u32) -> SeqNum {
    iss + 1 + i * 1460
}

fn queue(tcb: &mut Tcb, n: usize) {
    tcb.send(Bytes::from(pattern(n)))
        .expect("fits in the send buffer");
}

#[test]
fn send_returns_the_sequence_number_of_its_first_byte_across_the_wrap() {
    let fx = Fx::new();
    let iss = SeqNum(u32::MAX - 10);
    let mut c = Tcb::connect(fx.at(0), TcpConfig::default(), tuple(), iss);
    recv!(c, fx.at(0));
    let mut synack = seg(SeqNum(5000), iss + 1, &[]);
    synack.flags.syn = true;
    synack.options = opts_mss(1460);
    send!(c, fx.at(1), synack);
    drain(&mut c, fx.at(1));
    assert_eq!(c.next_seq(), SeqNum(u32::MAX - 9));
    let first = c.send(Bytes::from_static(&[1u8; 20])).expect("queued");
    assert_eq!(first, SeqNum(u32::MAX - 9));
    // 20 bytes later the sequence space has wrapped past 2^32.
    let second = c.send(Bytes::from_static(b"abc")).expect("queued");
    assert_eq!(second, SeqNum(10));
    assert_eq!(c.next_seq(), SeqNum(13));
    let out = recv!(c, fx.at(2));
    assert_eq!(out.seq, SeqNum(u32::MAX - 9));
    assert_eq!(out.payload_len(), 23);
    // The ACK of all 23 bytes (a number "smaller" than ISS) is accepted.
    send!(c, fx.at(3), seg(SeqNum(5001), SeqNum(13), &[]));
    assert_eq!(c.send_queued(), 0);
}

#[test]
fn initial_window_is_ten_segments_and_slow_start_grows_it() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    queue(&mut tcb, 30 * 1460);
    let burst = drain(&mut tcb, fx.at(10));
    // RFC 6928 §2: IW = min(10*MSS, max(2*MSS, 14600)) = 10 segments.
    assert_eq!(burst.len(), 10);
    for (i, s) in burst.iter().enumerate() {
        assert_eq!(s.seq, nth(iss, i as u32));
        assert_eq!(s.payload_len(), 1460);
    }
    // One ACK for two segments: slow start adds min(N, L) with RFC 3465's
    // L = 2*SMSS, so two segments replace the acknowledged ones and two
    // more go out: cwnd doubles per RTT even with delayed ACKs.
    send!(tcb, fx.at(20), seg(SeqNum(CISN + 1), nth(iss, 2), &[]));
    let more = drain(&mut tcb, fx.at(20));
    assert_eq!(more.len(), 4);
    assert_eq!(more[0].seq, nth(iss, 10));
    assert_eq!(tcb.poll_event(), Some(Event::Writable));
}

#[test]
fn rto_retransmits_the_first_unacked_segment_and_backs_off() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    queue(&mut tcb, 3000);
    let sent = drain(&mut tcb, fx.at(10));
    assert_eq!(sent.len(), 3);
    // The handshake gave R = 1 ms; RFC 6298 §2.4: "Whenever RTO is computed,
    // if it is less than 1 second, then the RTO SHOULD be rounded up" — our
    // floor is min_rto = 200 ms.
    assert_eq!(tcb.poll_timeout(), Some(fx.at(210)));
    tcb.on_timeout(fx.at(210));
    // §5.4: "Retransmit the earliest segment that has not been acknowledged"
    // and RFC 5681 §3.1: cwnd = 1 segment after a timeout.
    let re = drain(&mut tcb, fx.at(210));
    assert_eq!(re.len(), 1);
    assert_eq!((re[0].seq, re[0].payload_len()), (iss + 1, 1460));
    assert_eq!(payload(&re[0]), payload(&sent[0]));
    // §5.5: back off, RTO doubles.
    assert_eq!(tcb.poll_timeout(), Some(fx.at(610)));
    assert_eq!(tcb.stats().retransmits, 1);
    // The ACK of the retransmission lets the rest go out again (go-back-N,
    // growing from one segment).
    send!(tcb, fx.at(300), seg(SeqNum(CISN + 1), nth(iss, 1), &[]));
    let rest = drain(&mut tcb, fx.at(300));
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0].seq, nth(iss, 1));
}

#[test]
fn retransmissions_give_up_after_max_retries_with_a_reset() {
    let fx = Fx::new();
    let config = TcpConfig {
        max_retries: 3,
        ..TcpConfig::default()
    };
    let (mut tcb, _) = established_with(&fx, config, opts_mss(1460));
    queue(&mut tcb, 100);
    drain(&mut tcb, fx.at(10));
    let mut last = Vec::new();
    while let Some(t) = tcb.poll_timeout() {
        tcb.on_timeout(t);
        last = drain(&mut tcb, t);
    }
    assert_eq!(tcb.stats().retransmits, 3);
    assert!(last.last().is_some_and(|s| s.flags.rst));
    assert_eq!(events(&mut tcb), vec![Event::TimedOut, Event::Closed]);
}

#[test]
fn three_duplicate_acks_trigger_fast_retransmit_and_newreno_recovery() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    queue(&mut tcb, 10 * 1460);
    assert_eq!(drain(&mut tcb, fx.at(10)).len(), 10);
    // Segment 0 and 2 are lost; the client ACKs 1, 3, 4 … with ACK = seg 0.
    let dup = seg(SeqNum(CISN + 1), iss + 1, &[]);
    send!(tcb, fx.at(20), dup);
    send!(tcb, fx.at(21), dup);
    recv!(tcb, fx.at(21), nothing);
    send!(tcb, fx.at(22), dup);
    // RFC 5681 §3.2: "The lost segment starting at SND.UNA MUST be
    // retransmitted" on the third duplicate ACK.
    let re = recv!(tcb, fx.at(22));
    assert_eq!((re.seq, re.payload_len()), (iss + 1, 1460));
    assert_eq!(tcb.stats().fast_retransmits, 1);
    // ssthresh = FlightSize / 2 = 7300; cwnd = ssthresh + 3*SMSS.
    assert_eq!(tcb.stats().ssthresh, 7300);
    assert_eq!(tcb.stats().cwnd, 7300 + 3 * 1460);
    // RFC 6582 §3.2 step 3, partial ACK: "retransmit the first
    // unacknowledged segment".
    send!(tcb, fx.at(30), seg(SeqNum(CISN + 1), nth(iss, 2), &[]));
    let re2 = recv!(tcb, fx.at(30));
    assert_eq!(re2.seq, nth(iss, 2));
    // Full ACK: recovery ends, cwnd deflates to at most ssthresh.
    send!(tcb, fx.at(40), seg(SeqNum(CISN + 1), nth(iss, 10), &[]));
    assert!(tcb.stats().cwnd <= 7300);
    assert_eq!(tcb.stats().retransmits, 2);
    assert_eq!(tcb.send_queued(), 0);
}

#[test]
fn sack_recovery_retransmits_only_the_holes() {
    let fx = Fx::new();
    let (mut tcb, iss) = established_with(
        &fx,
        TcpConfig::default(),
        Options {
            sack_permitted: true,
            ..opts_mss(1460)
        },
    );
    queue(&mut tcb, 10 * 1460);
    assert_eq!(drain(&mut tcb, fx.at(10)).len(), 10);
    let s = |i| nth(iss, i);
    let dupack = |blocks: &[(SeqNum, SeqNum)]| {
        let mut d = seg(SeqNum(CISN + 1), iss + 1, &[]);
        for (k, b) in blocks.iter().enumerate() {
            d.options.sack_blocks[k] = Some(*b);
        }
        d
    };
    // Segments 0 and 3 are lost.
    send!(tcb, fx.at(20), dupack(&[(s(1), s(2))]));
    send!(tcb, fx.at(20), dupack(&[(s(1), s(3))]));
    recv!(tcb, fx.at(20), nothing);
    send!(tcb, fx.at(21), dupack(&[(s(4), s(5)), (s(1), s(3))]));
    // RFC 6675 §5: on the third duplicate ACK, retransmit the first hole.
    let r0 = recv!(tcb, fx.at(21));
    assert_eq!((r0.seq, r0.payload_len()), (s(0), 1460));
    recv!(tcb, fx.at(21), nothing);
    // The next ACK (NextSeg, rule 1) sends the next hole: segment 3, never
    // the SACKed 1 and 2.
    send!(tcb, fx.at(22), dupack(&[(s(4), s(6)), (s(1), s(3))]));
    let r3 = recv!(tcb, fx.at(22));
    assert_eq!((r3.seq, r3.payload_len()), (s(3), 1460));
    // The client got segment 0 again: partial ACK up to the second hole,
    // which was already retransmitted, so nothing is sent twice.
    send!(tcb, fx.at(30), {
        let mut a = seg(SeqNum(CISN + 1), s(3), &[]);
        a.options.sack_blocks[0] = Some((s(4), s(10)));
        a
    });
    recv!(tcb, fx.at(30), nothing);
    send!(tcb, fx.at(31), seg(SeqNum(CISN + 1), s(10), &[]));
    assert_eq!(tcb.stats().retransmits, 2);
    assert_eq!(tcb.send_queued(), 0);
}

#[test]
fn lost_acks_are_covered_by_a_later_cumulative_ack() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    queue(&mut tcb, 5 * 1460);
    assert_eq!(drain(&mut tcb, fx.at(10)).len(), 5);
    // Only the last ACK arrives.
    send!(tcb, fx.at(20), seg(SeqNum(CISN + 1), nth(iss, 5), &[]));
    assert_eq!(tcb.send_queued(), 0);
    assert_eq!(tcb.stats().retransmits, 0);
    // RFC 6298 §5.2: "When all outstanding data has been acknowledged, turn
    // off the retransmission timer" — only the idle deadline remains.
    assert_eq!(
        tcb.poll_timeout(),
        Some(fx.at(20) + Duration::from_secs(60))
    );
}

#[test]
fn zero_window_is_probed_by_the_persist_timer() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    let mut closed = seg(SeqNum(CISN + 1), iss + 1, &[]);
    closed.window = 0;
    send!(tcb, fx.at(5), closed);
    assert_eq!(tcb.peer_window(), 0);
    queue(&mut tcb, 100);
    recv!(tcb, fx.at(10), nothing);
    // RFC 9293 §3.8.6.1: "The sending TCP must regularly transmit at least
    // one octet of new data (if available) … even if the send window is
    // zero".
    assert_eq!(tcb.poll_timeout(), Some(fx.at(210)));
    tcb.on_timeout(fx.at(210));
    let probe = recv!(tcb, fx.at(210));
    assert_eq!((probe.seq, probe.payload_len()), (iss + 1, 1));
    recv!(tcb, fx.at(210), nothing);
    // Still closed: the probe is refused and probing goes on, backed off.
    send!(tcb, fx.at(211), closed);
    let next = tcb.poll_timeout().expect("persist armed");
    assert!(next > fx.at(410), "backed off: {:?}", next - fx.at(0));
    tcb.on_timeout(next);
    assert_eq!(recv!(tcb, next).seq, iss + 1);
    // The window opens: the data flows.
    let t = next + Duration::from_millis(1);
    send!(tcb, t, seg(SeqNum(CISN + 1), iss + 1, &[]));
    let data = recv!(tcb, t);
    assert_eq!((data.seq, data.payload_len()), (iss + 1, 100));
}

#[test]
fn a_window_that_never_opens_times_out() {
    let fx = Fx::new();
    let config = TcpConfig {
        zero_window_probe_max: 3,
        ..TcpConfig::default()
    };
    let (mut tcb, iss) = established_with(&fx, config, opts_mss(1460));
    let mut closed = seg(SeqNum(CISN + 1), iss + 1, &[]);
    closed.window = 0;
    send!(tcb, fx.at(5), closed);
    queue(&mut tcb, 100);
    drain(&mut tcb, fx.at(5));
    let mut probes = 0;
    while let Some(t) = tcb.poll_timeout() {
        tcb.on_timeout(t);
        for s in drain(&mut tcb, t) {
            if s.payload_len() == 1 {
                probes += 1;
                send!(tcb, t, closed);
            }
        }
    }
    assert_eq!(probes, 3);
    assert_eq!(events(&mut tcb), vec![Event::TimedOut, Event::Closed]);
}

#[test]
fn window_scaling_applies_to_both_directions() {
    let fx = Fx::new();
    let config = TcpConfig {
        recv_buffer: 100_000,
        ..TcpConfig::default()
    };
    let (mut tcb, iss) = established_with(
        &fx,
        config,
        Options {
            window_scale: Some(3),
            ..opts_mss(1460)
        },
    );
    // RFC 7323 §2.3: the peer's window field is shifted by its scale.
    let mut w = seg(SeqNum(CISN + 1), iss + 1, &[]);
    w.window = 1000;
    send!(tcb, fx.at(5), w);
    assert_eq!(tcb.peer_window(), 8000);
    queue(&mut tcb, 20_000);
    let out = drain(&mut tcb, fx.at(10));
    // 5 full segments fit in 8000 bytes; the last 700 bytes of window are
    // not filled with a runt while data is in flight (RFC 9293 §3.8.6.2.1).
    assert_eq!(out.len(), 5);
    // Our window field is ours shifted right by our scale (7): 100000 >> 7.
    assert_eq!(out[0].window, 781);
}

#[test]
fn send_refuses_what_does_not_fit_and_after_close() {
    let fx = Fx::new();
    let config = TcpConfig {
        send_buffer: 1000,
        ..TcpConfig::default()
    };
    let (mut tcb, _) = established_with(&fx, config, opts_mss(1460));
    assert_eq!(tcb.send_capacity(), 1000);
    tcb.send(Bytes::from(pattern(600))).expect("fits");
    assert_eq!(
        tcb.send(Bytes::from(pattern(600))),
        Err(SendError::Full {
            len: 600,
            capacity: 400
        })
    );
    tcb.close();
    assert_eq!(tcb.send(Bytes::from_static(b"x")), Err(SendError::Closed));
    assert_eq!(tcb.send_capacity(), 0);
}

#[test]
fn acks_after_a_timeout_carry_the_highest_sequence_sent() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    queue(&mut tcb, 3 * 1460);
    assert_eq!(drain(&mut tcb, fx.at(10)).len(), 3);
    tcb.on_timeout(fx.at(210));
    drain(&mut tcb, fx.at(210));
    // Client data arrives; our ACK must not carry a sequence number below
    // what the client already received from us (it would be unacceptable
    // there, RFC 9293 §3.10.7.4, and both sides would ACK each other
    // forever). RFC 9293's SND.NXT does not move back on retransmission.
    send!(tcb, fx.at(220), seg(SeqNum(CISN + 1), iss + 1, b"x"));
    tcb.on_timeout(fx.at(260));
    let ack = recv!(tcb, fx.at(260));
    assert!(ack.payload.is_empty());
    assert_eq!(ack.seq, nth(iss, 3));
}

#[test]
fn first_duplicate_acks_release_new_segments_by_limited_transmit() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    queue(&mut tcb, 20 * 1460);
    assert_eq!(drain(&mut tcb, fx.at(10)).len(), 10);
    let dup = seg(SeqNum(CISN + 1), iss + 1, &[]);
    // RFC 3042 §2: "a TCP sender SHOULD send a segment of previously unsent
    // data in response to each of the first two duplicate acknowledgments".
    send!(tcb, fx.at(20), dup);
    let one = drain(&mut tcb, fx.at(20));
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].seq, nth(iss, 10));
    send!(tcb, fx.at(21), dup);
    let two = drain(&mut tcb, fx.at(21));
    assert_eq!(two.len(), 1);
    assert_eq!(two[0].seq, nth(iss, 11));
    // The third one is a fast retransmit, not new data.
    send!(tcb, fx.at(22), dup);
    assert_eq!(recv!(tcb, fx.at(22)).seq, iss + 1);
}
