//! Tests for the SYN-RECEIVED state (passive open, RFC 9293 §3.10.7.2 and
//! §3.10.7.4) and SYN-SENT (active open, §3.10.7.3).

use super::*;

#[test]
fn handshake_negotiates_every_option_combination() {
    // (name, client options, expect wscale, expect sack, expect ts, send MSS)
    let cases: [(&str, Options, bool, bool, bool, u16); 6] = [
        ("none", Options::default(), false, false, false, 536),
        ("mss only", opts_mss(1400), false, false, false, 1400),
        (
            "wscale",
            Options {
                window_scale: Some(9),
                ..opts_mss(1460)
            },
            true,
            false,
            false,
            1460,
        ),
        (
            "timestamps",
            Options {
                timestamps: Some((5, 0)),
                ..opts_mss(1460)
            },
            false,
            false,
            true,
            1448,
        ),
        (
            "sack",
            Options {
                sack_permitted: true,
                ..opts_mss(1460)
            },
            false,
            true,
            false,
            1460,
        ),
        ("all", opts_all(), true, true, true, 1448),
    ];
    for (name, opts, ws, sack, ts, mss) in cases {
        let fx = Fx::new();
        let (mut tcb, synack) = syn_received(&fx, TcpConfig::default(), &syn(opts));
        assert_eq!(tcb.state(), State::SynReceived, "{name}");
        // RFC 9293 §3.10.7.2: "<SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>".
        assert!(synack.flags.syn && synack.flags.ack, "{name}");
        assert_eq!(synack.ack, SeqNum(CISN + 1), "{name}");
        assert_eq!(
            synack.options.mss,
            Some(1460),
            "{name}: our MSS is always sent"
        );
        // RFC 7323 §2.2: "a TCP MAY send a Window Scale option in the
        // <SYN,ACK> segment only if it received one in the initial <SYN>".
        assert_eq!(synack.options.window_scale.is_some(), ws, "{name}");
        // RFC 2018 §2: SACK-permitted only in reply to one.
        assert_eq!(synack.options.sack_permitted, sack, "{name}");
        // RFC 7323 §3.2: timestamps in the <SYN,ACK> only if in the <SYN>,
        // and TSecr echoes the SYN's TSval.
        assert_eq!(synack.options.timestamps.is_some(), ts, "{name}");
        if let (Some((_, ecr)), Some((val, _))) = (synack.options.timestamps, opts.timestamps) {
            assert_eq!(ecr, val, "{name}");
        }
        // RFC 7323 §2.2: the window of a SYN is never scaled.
        assert_eq!(synack.window, u16::MAX, "{name}");

        let mut ack = seg(SeqNum(CISN + 1), synack.seq + 1, &[]);
        if let (true, Some((val, _))) = (ts, opts.timestamps) {
            ack.options.timestamps = Some((val + 1, synack.options.timestamps.map_or(0, |t| t.0)));
        }
        send!(tcb, fx.at(1), ack);
        assert_eq!(tcb.state(), State::Established, "{name}");
        assert_eq!(tcb.poll_event(), Some(Event::Established), "{name}");
        // MSS minus 12 bytes of timestamps option (RFC 7323 App. A).
        assert_eq!(tcb.stats().mss, mss, "{name}");
        let e = tcb.export(fx.at(1));
        assert_eq!(e.sack_permitted, sack, "{name}");
        assert_eq!(e.timestamps, ts, "{name}");
        if ws {
            assert_eq!(e.snd_wscale, opts.window_scale.unwrap_or(0), "{name}");
            assert_eq!(e.rcv_wscale, 7, "{name}");
            // RFC 7323 §2.3: after the handshake the window field is scaled:
            // 65535 << the client's shift.
            assert_eq!(
                tcb.peer_window(),
                65_535 << opts.window_scale.unwrap_or(0),
                "{name}"
            );
        } else {
            assert_eq!((e.snd_wscale, e.rcv_wscale), (0, 0), "{name}");
            assert_eq!(tcb.peer_window(), 65_535, "{name}");
        }
    }
}

#[test]
fn lost_syn_ack_is_retransmitted_at_rto_with_back_off() {
    let fx = Fx::new();
    let (mut tcb, synack) = syn_received(&fx, TcpConfig::default(), &syn(opts_mss(1460)));
    recv!(tcb, fx.at(0), nothing);
    // RFC 6298 §2.1: "Until a round-trip time (RTT) measurement has been
    // made … the sender SHOULD set RTO <- 1 second".
    assert_eq!(tcb.poll_timeout(), Some(fx.at(1000)));
    tcb.on_timeout(fx.at(1000));
    let again = recv!(tcb, fx.at(1000));
    assert_eq!((again.seq, again.flags), (synack.seq, synack.flags));
    // §5.5: "The host MUST set RTO <- RTO * 2".
    assert_eq!(tcb.poll_timeout(), Some(fx.at(3000)));
    // The client's ACK finally arrives.
    send!(tcb, fx.at(3100), seg(SeqNum(CISN + 1), synack.seq + 1, &[]));
    assert_eq!(tcb.state(), State::Established);
    // RFC 6298 §5.7: after a SYN timeout, and with no RTT sample (Karn: not
    // from a retransmitted SYN-ACK), data starts with a 3 s RTO.
    tcb.send(Bytes::from_static(b"data")).expect("queued");
    recv!(tcb, fx.at(3200));
    assert_eq!(tcb.poll_timeout(), Some(fx.at(6200)));
}

#[test]
fn syn_ack_gives_up_after_syn_retries() {
    let fx = Fx::new();
    let config = TcpConfig {
        syn_retries: 2,
        idle_timeout: Duration::from_secs(3600),
        ..TcpConfig::default()
    };
    let (mut tcb, _) = syn_received(&fx, config, &syn(opts_mss(1460)));
    let mut sent = 1;
    while let Some(t) = tcb.poll_timeout() {
        tcb.on_timeout(t);
        sent += drain(&mut tcb, t).iter().filter(|s| s.flags.syn).count();
    }
    assert_eq!(sent, 3, "the original and two retransmissions");
    assert_eq!(tcb.state(), State::Closed);
    assert_eq!(events(&mut tcb), vec![Event::TimedOut, Event::Closed]);
}

#[test]
fn retransmitted_syn_is_answered_with_the_syn_ack_again() {
    let fx = Fx::new();
    let s = syn(opts_mss(1460));
    let (mut tcb, synack) = syn_received(&fx, TcpConfig::default(), &s);
    send!(tcb, fx.at(200), s);
    let again = recv!(tcb, fx.at(200));
    assert!(again.flags.syn && again.flags.ack);
    assert_eq!(again.seq, synack.seq);
    assert_eq!(tcb.state(), State::SynReceived);
}

#[test]
fn unacceptable_ack_in_syn_received_is_reset() {
    let fx = Fx::new();
    let (mut tcb, synack) = syn_received(&fx, TcpConfig::default(), &syn(opts_mss(1460)));
    let bogus = synack.seq + 5000;
    send!(tcb, fx.at(1), seg(SeqNum(CISN + 1), bogus, &[]));
    // RFC 9293 §3.10.7.4 fifth, SYN-RECEIVED: "If the segment acknowledgment
    // is not acceptable, form a reset segment <SEQ=SEG.ACK><CTL=RST>".
    let rst = recv!(tcb, fx.at(1));
    assert!(rst.flags.rst);
    assert_eq!(rst.seq, bogus);
    assert_eq!(tcb.state(), State::SynReceived);
}

#[test]
fn data_with_the_handshake_ack_is_delivered() {
    let fx = Fx::new();
    let (mut tcb, synack) = syn_received(&fx, TcpConfig::default(), &syn(opts_mss(1460)));
    send!(
        tcb,
        fx.at(1),
        seg(SeqNum(CISN + 1), synack.seq + 1, b"GET / HTTP/1.1\r\n\r\n")
    );
    assert_eq!(events(&mut tcb), vec![Event::Established, Event::Readable]);
    let mut buf = [0u8; 64];
    let n = tcb.recv(&mut buf);
    assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn active_open_completes_against_a_syn_ack() {
    let fx = Fx::new();
    let mut c = Tcb::connect(fx.at(0), TcpConfig::default(), tuple(), SeqNum(500));
    let s = recv!(c, fx.at(0));
    assert!(s.flags.syn && !s.flags.ack);
    assert_eq!(s.seq, SeqNum(500));
    assert_eq!(s.options.window_scale, Some(7));
    assert!(s.options.sack_permitted);
    let synack = Segment {
        seq: SeqNum(9000),
        ack: SeqNum(501),
        flags: Flags {
            syn: true,
            ack: true,
            ..Flags::default()
        },
        options: Options {
            timestamps: Some((77, s.options.timestamps.map_or(0, |t| t.0))),
            ..opts_all()
        },
        ..seg(SeqNum(0), SeqNum(0), &[])
    };
    send!(c, fx.at(2), synack);
    assert_eq!(c.state(), State::Established);
    let ack = recv!(c, fx.at(2));
    assert_eq!((ack.seq, ack.ack), (SeqNum(501), SeqNum(9001)));
    assert_eq!(ack.options.timestamps.map(|t| t.1), Some(77));
}
