//! Tests for RST and SYN handling in synchronized states, with the blind
//! attack mitigations of RFC 5961 (§3 RST, §4 SYN, §5 ACK).

use super::*;

fn rst(seq: SeqNum) -> Segment<'static> {
    Segment {
        flags: Flags {
            rst: true,
            ..Flags::default()
        },
        ..seg(seq, SeqNum(0), &[])
    }
}

#[test]
fn rst_exactly_at_rcv_nxt_resets_the_connection() {
    let fx = Fx::new();
    let (mut tcb, _) = established(&fx);
    send!(tcb, fx.at(10), rst(SeqNum(CISN + 1)));
    // RFC 5961 §3.2: "If the RST bit is set and the sequence number exactly
    // matches the next expected sequence number (RCV.NXT), then TCP MUST
    // reset the connection."
    assert_eq!(tcb.state(), State::Closed);
    assert_eq!(events(&mut tcb), vec![Event::Reset, Event::Closed]);
    recv!(tcb, fx.at(10), nothing);
    assert_eq!(tcb.poll_timeout(), None);
}

#[test]
fn rst_in_window_but_not_at_rcv_nxt_gets_a_challenge_ack() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    send!(tcb, fx.at(10), rst(SeqNum(CISN + 1 + 5000)));
    // RFC 5961 §3.2: "If the RST bit is set and the sequence number does not
    // exactly match the next expected sequence value, yet is within the
    // current receive window, TCP MUST send an acknowledgment (challenge
    // ACK): <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>".
    assert_eq!(tcb.state(), State::Established);
    let ack = recv!(tcb, fx.at(10));
    assert!(ack.flags.ack && !ack.flags.rst);
    assert_eq!((ack.seq, ack.ack), (iss + 1, SeqNum(CISN + 1)));
    assert_eq!(tcb.stats().challenge_acks, 1);
    assert!(events(&mut tcb).is_empty());
}

#[test]
fn rst_outside_the_window_is_silently_dropped() {
    let fx = Fx::new();
    let (mut tcb, _) = established(&fx);
    send!(tcb, fx.at(10), rst(SeqNum(CISN + 1 + 10_000_000)));
    send!(tcb, fx.at(10), rst(SeqNum(CISN)));
    // RFC 5961 §3.2: "If the RST bit is set and the sequence number is
    // outside the current receive window, silently drop the segment."
    assert_eq!(tcb.state(), State::Established);
    recv!(tcb, fx.at(10), nothing);
}

#[test]
fn syn_on_an_established_connection_gets_a_challenge_ack() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    for (i, seq) in [SeqNum(CISN + 1), SeqNum(CISN + 300), SeqNum(CISN)]
        .into_iter()
        .enumerate()
    {
        let mut s = syn(opts_mss(1460));
        s.seq = seq;
        // Spaced beyond the 500 ms challenge-ACK rate limit.
        let at = fx.at(10 + 600 * i as u64);
        send!(tcb, at, s);
        // RFC 5961 §4.2: "If the SYN bit is set, irrespective of the
        // sequence number, TCP MUST send an ACK (also referred to as
        // challenge ACK) to the remote peer".
        let ack = recv!(tcb, at);
        assert!(ack.flags.ack && !ack.flags.syn && !ack.flags.rst);
        assert_eq!((ack.seq, ack.ack), (iss + 1, SeqNum(CISN + 1)));
        assert_eq!(tcb.state(), State::Established);
    }
}

#[test]
fn a_blind_syn_far_outside_the_window_gets_an_ack_counted_as_out_of_window() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    let mut s = syn(opts_mss(1460));
    s.seq = SeqNum(CISN.wrapping_add(0x8000_0000));
    send!(tcb, fx.at(10), s);
    // RFC 5961 §4.2: "If the SYN bit is set, irrespective of the sequence
    // number, TCP MUST send an ACK". Outside the window it is the RFC 9293
    // reply to an unacceptable segment: the same ACK, never a reset.
    let ack = recv!(tcb, fx.at(10));
    assert!(ack.flags.ack && !ack.flags.syn && !ack.flags.rst);
    assert_eq!((ack.seq, ack.ack), (iss + 1, SeqNum(CISN + 1)));
    assert_eq!(tcb.state(), State::Established);
    assert_eq!(tcb.stats().oow_acks, 1);
}

#[test]
fn replies_to_unacceptable_segments_without_data_are_rate_limited() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    // RFC 5961 §7: "An implementation SHOULD include an ACK throttling
    // mechanism"; Linux allows one reply per 500 ms to segments without
    // data (tcp_invalid_ratelimit).
    let old_ack = seg(SeqNum(CISN - 5000), iss + 1, &[]);
    send!(tcb, fx.at(10), old_ack);
    recv!(tcb, fx.at(10));
    send!(tcb, fx.at(20), old_ack);
    recv!(tcb, fx.at(20), nothing);
    let mut r = rst(SeqNum(CISN + 50));
    send!(tcb, fx.at(30), r);
    recv!(tcb, fx.at(30), nothing);
    // Old data is always answered: the takeover probe relies on it.
    send!(tcb, fx.at(40), seg(SeqNum(CISN), iss + 1, b"x"));
    assert_eq!(recv!(tcb, fx.at(40)).ack, SeqNum(CISN + 1));
    // After the interval, replies resume.
    r.seq = SeqNum(CISN + 60);
    send!(tcb, fx.at(600), r);
    recv!(tcb, fx.at(600));
    assert_eq!(tcb.stats().challenge_acks, 1);
}

#[test]
fn ack_of_data_never_sent_is_answered_and_the_segment_dropped() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    send!(tcb, fx.at(10), seg(SeqNum(CISN + 1), iss + 1000, b"data"));
    // RFC 5961 §5.2 / RFC 9293 §3.10.7.4: "If the ACK acknowledges something
    // not yet sent (SEG.ACK > SND.NXT), then send an ACK, drop the segment".
    assert_eq!(tcb.recv_available(), 0);
    let ack = recv!(tcb, fx.at(10));
    assert_eq!(ack.ack, SeqNum(CISN + 1));
    assert_eq!(tcb.state(), State::Established);
}

#[test]
fn ack_too_far_in_the_past_gets_a_challenge_ack() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    // RFC 5961 §5.2: acceptable ACKs satisfy (SND.UNA - MAX.SND.WND) <=
    // SEG.ACK <= SND.NXT; older ones are dropped with a challenge ACK.
    send!(
        tcb,
        fx.at(10),
        seg(SeqNum(CISN + 1), iss - 200_000, b"data")
    );
    assert_eq!(tcb.recv_available(), 0);
    let ack = recv!(tcb, fx.at(10));
    assert_eq!(ack.ack, SeqNum(CISN + 1));
    assert_eq!(tcb.stats().challenge_acks, 1);
    // An old but plausible ACK (a reordered duplicate) is fine: its data is
    // taken.
    send!(tcb, fx.at(11), seg(SeqNum(CISN + 1), iss, b"data"));
    assert_eq!(tcb.recv_available(), 4);
}

#[test]
fn segment_without_ack_is_dropped() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    let mut s = seg(SeqNum(CISN + 1), iss + 1, b"data");
    s.flags.ack = false;
    send!(tcb, fx.at(10), s);
    // RFC 9293 §3.10.7.4 fifth: "if the ACK bit is off, drop the segment".
    assert_eq!(tcb.recv_available(), 0);
}

/// A server TCB brought to `target` (one of the states that hold a
/// connection after the client may have lost it), with timestamps; the
/// client's last TSval is 1_100.
fn held_in(fx: &Fx, target: State) -> (Tcb, SeqNum) {
    let (mut tcb, iss) = established_with(fx, TcpConfig::default(), opts_all());
    let ts = |mut s: Segment<'static>| {
        s.options.timestamps = Some((1_100, 0));
        s
    };
    let fin = |seq: SeqNum, ack: SeqNum| {
        let mut s = seg(seq, ack, &[]);
        s.flags.fin = true;
        ts(s)
    };
    match target {
        State::Established => {}
        State::CloseWait => send!(tcb, fx.at(5), fin(SeqNum(CISN + 1), iss + 1)),
        State::LastAck => {
            send!(tcb, fx.at(5), fin(SeqNum(CISN + 1), iss + 1));
            tcb.close();
        }
        State::FinWait1 => tcb.close(),
        State::FinWait2 => {
            tcb.close();
            drain(&mut tcb, fx.at(5));
            send!(tcb, fx.at(6), ts(seg(SeqNum(CISN + 1), iss + 2, &[])));
        }
        State::Closing => {
            tcb.close();
            drain(&mut tcb, fx.at(5));
            send!(tcb, fx.at(6), fin(SeqNum(CISN + 1), iss + 1));
        }
        other => panic!("not a held state: {other:?}"),
    }
    drain(&mut tcb, fx.at(10));
    assert_eq!(tcb.state(), target);
    (tcb, iss)
}

#[test]
fn syn_on_a_held_four_tuple_is_answered_at_once_and_the_clients_rst_frees_it() {
    for target in [
        State::Established,
        State::CloseWait,
        State::LastAck,
        State::FinWait1,
        State::FinWait2,
        State::Closing,
    ] {
        let fx = Fx::new();
        let (mut tcb, _) = held_in(&fx, target);
        let rcv_nxt = match target {
            State::CloseWait | State::LastAck | State::Closing => SeqNum(CISN + 2),
            _ => SeqNum(CISN + 1),
        };
        // A client that reused its port: a new ISN far from the old
        // sequence space, and (Linux's per-host timestamp clock) a newer
        // TSval.
        let mut s = syn(opts_all());
        s.seq = SeqNum(CISN.wrapping_add(0x4000_0000));
        s.options.timestamps = Some((5_000, 0));
        send!(tcb, fx.at(1000), s);
        // RFC 9293 §3.10.7.4 "fourth" / RFC 5961 §4.2: "If the SYN bit is
        // set, irrespective of the sequence number, TCP MUST send an ACK
        // (also referred to as challenge ACK) to the remote peer:
        // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>".
        let out = drain(&mut tcb, fx.at(1000));
        let ack = out
            .iter()
            .find(|o| o.flags.ack && !o.flags.syn && !o.flags.rst)
            .unwrap_or_else(|| panic!("{target:?}: no challenge ACK in {out:?}"));
        assert_eq!(ack.ack, rcv_nxt, "{target:?}");
        assert_eq!(tcb.state(), target, "the SYN alone changes nothing");
        // RFC 5961 §7 (Linux tcp_invalid_ratelimit): a second SYN within
        // 500 ms gets nothing.
        send!(tcb, fx.at(1100), s);
        recv!(tcb, fx.at(1100), nothing);
        // The client's SYN-SENT answer to an ACK it did not expect is
        // <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.3): exactly RCV.NXT, so
        // it resets the old connection and the next SYN finds the
        // listener.
        let mut r = seg(ack.ack, SeqNum(0), &[]);
        r.flags = Flags {
            rst: true,
            ..Flags::default()
        };
        send!(tcb, fx.at(1101), r);
        assert_eq!(tcb.state(), State::Closed, "{target:?}");
        assert_eq!(events(&mut tcb).last(), Some(&Event::Closed));
    }
}

#[test]
fn syn_failing_paws_on_a_held_four_tuple_is_still_answered() {
    let fx = Fx::new();
    let (mut tcb, _) = held_in(&fx, State::LastAck);
    // A client with random per-connection timestamp offsets: the new SYN's
    // TSval is below TS.Recent. RFC 7323 §5.3 R1: "Send an acknowledgment
    // in reply … and drop" — the client still gets an ACK to RST.
    let mut s = syn(opts_all());
    s.seq = SeqNum(CISN.wrapping_add(0x4000_0000));
    s.options.timestamps = Some((7, 0));
    send!(tcb, fx.at(1000), s);
    let out = drain(&mut tcb, fx.at(1000));
    assert!(
        out.iter().any(|o| o.flags.ack && o.ack == SeqNum(CISN + 2)),
        "{out:?}"
    );
}
