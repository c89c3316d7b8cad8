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
