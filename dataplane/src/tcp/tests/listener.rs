//! Tests for LISTEN (RFC 9293 §3.10.7.2): ISNs (RFC 6528), the SYN backlog
//! and SYN cookies, and replies to segments for no connection (§3.10.7.1).

use super::*;

fn cookie_syn(options: Options) -> (Listener, OutSegment) {
    let mut l = listener(TcpConfig::default());
    let out = match l.on_syn(Instant::now(), tuple(), &syn(options), 8, 8) {
        SynOutcome::Cookie(s) => s,
        other => panic!("a full backlog must answer with a cookie, got {other:?}"),
    };
    (l, out)
}

/// An ACK for no connection that opens nothing: `cookie_ack` refuses it
/// and `on_unknown` answers with a RST, which this returns.
fn refused(l: &mut Listener, now: Instant, t: FourTuple, ack: &Segment) -> OutSegment {
    assert!(
        l.cookie_ack(now, t, ack).is_none(),
        "the ACK must open no connection"
    );
    match l.on_unknown(now, t, ack) {
        Some(r) if r.flags.rst => r,
        other => panic!("expected a RST, got {other:?}"),
    }
}

#[test]
fn full_backlog_answers_with_a_cookie_that_builds_an_established_tcb() {
    let fx = Fx::new();
    let mut l = listener(TcpConfig::default());
    let opts = Options {
        mss: Some(1400),
        window_scale: Some(5),
        sack_permitted: true,
        timestamps: Some((4242, 0)),
        ..Options::default()
    };
    // Below the backlog: a TCB.
    assert!(matches!(
        l.on_syn(fx.at(0), tuple(), &syn(opts), 7, 8),
        SynOutcome::Tcb(_)
    ));
    let synack = match l.on_syn(fx.at(0), tuple(), &syn(opts), 8, 8) {
        SynOutcome::Cookie(s) => s,
        other => panic!("expected a cookie, got {other:?}"),
    };
    assert!(synack.flags.syn && synack.flags.ack);
    assert_eq!(synack.ack, SeqNum(CISN + 1));
    assert_eq!(synack.options.window_scale, Some(7));
    assert!(synack.options.sack_permitted);
    let our_ts = synack.options.timestamps.expect("timestamps echoed");
    assert_eq!(our_ts.1, 4242);

    // The client's ACK, carrying a request, 30 s later.
    let mut ack = seg(SeqNum(CISN + 1), synack.seq + 1, b"GET /");
    ack.window = 1000;
    ack.options.timestamps = Some((4300, our_ts.0));
    let mut tcb = l
        .cookie_ack(fx.at(30_000), tuple(), &ack)
        .expect("a valid cookie must build a TCB");
    assert_eq!(tcb.state(), State::Established);
    assert_eq!(events(&mut tcb), vec![Event::Established, Event::Readable]);
    assert_eq!(tcb.recv_available(), 5);
    let e = tcb.export(fx.at(30_000));
    // The options came back out of the cookie: MSS 1400 rounds down to the
    // table's 1300, minus 12 bytes of timestamps.
    assert_eq!(e.mss, 1300 - 12);
    assert_eq!((e.snd_wscale, e.rcv_wscale), (5, 7));
    assert!(e.sack_permitted && e.timestamps);
    assert_eq!(tcb.peer_window(), 1000 << 5);
    assert_eq!(e.iss, synack.seq.0);
    assert_eq!(e.ts_recent, 4300);
    // Our timestamps continue the SYN-ACK's clock (monotonic for PAWS).
    tcb.on_timeout(fx.at(30_040));
    let out = drain(&mut tcb, fx.at(30_040));
    let tsval = out.last().and_then(|s| s.options.timestamps).expect("ts").0;
    assert!(tsval.wrapping_sub(our_ts.0) as i32 >= 30_000);
}

#[test]
fn cookie_without_options_round_trips() {
    let (mut l, synack) = cookie_syn(Options::default());
    assert_eq!(synack.options.window_scale, None);
    assert_eq!(synack.options.timestamps, None);
    let ack = seg(SeqNum(CISN + 1), synack.seq + 1, &[]);
    let t = l
        .cookie_ack(Instant::now(), tuple(), &ack)
        .expect("a valid cookie must build a TCB");
    let e = t.export(Instant::now());
    assert_eq!(e.mss, 536);
    assert_eq!(
        (e.snd_wscale, e.sack_permitted, e.timestamps),
        (0, false, false)
    );
}

#[test]
fn forged_or_stale_cookie_ack_gets_a_reset() {
    let fx = Fx::new();
    let mut l = listener(TcpConfig::default());
    let synack = match l.on_syn(fx.at(0), tuple(), &syn(opts_mss(1460)), 1, 1) {
        SynOutcome::Cookie(s) => s,
        other => panic!("expected a cookie, got {other:?}"),
    };
    // A guessed cookie.
    let forged = seg(SeqNum(CISN + 1), synack.seq + 77, &[]);
    let r = refused(&mut l, fx.at(1), tuple(), &forged);
    // RFC 9293 §3.10.7.1: "If the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>".
    assert!(!r.flags.ack);
    assert_eq!(r.seq, synack.seq + 77);
    // The right cookie from another client port.
    let mut other = tuple();
    other.remote.set_port(40_001);
    let ack = seg(SeqNum(CISN + 1), synack.seq + 1, &[]);
    refused(&mut l, fx.at(1), other, &ack);
    // The right cookie, too late: valid for two 64 s ticks at most.
    refused(&mut l, fx.at(129_000), tuple(), &ack);
    // …and in time.
    assert!(l.cookie_ack(fx.at(100_000), tuple(), &ack).is_some());
}

#[test]
fn a_valid_cookie_ack_opens_nothing_on_a_listener_that_sent_no_cookie() {
    // Linux's tcp_synq_no_recent_overflow: cookies are checked only while
    // the backlog overflowed recently. `sender` and `quiet` share a key,
    // so `quiet` would validate the cookie `sender` made.
    let fx = Fx::new();
    let mut sender = listener(TcpConfig::default());
    let mut quiet = listener(TcpConfig::default());
    assert!(matches!(
        quiet.on_syn(fx.at(0), tuple(), &syn(opts_mss(1460)), 0, 8),
        SynOutcome::Tcb(_)
    ));
    let synack = match sender.on_syn(fx.at(0), tuple(), &syn(opts_mss(1460)), 8, 8) {
        SynOutcome::Cookie(s) => s,
        other => panic!("expected a cookie, got {other:?}"),
    };
    let ack = seg(SeqNum(CISN + 1), synack.seq + 1, &[]);
    // The blind ACK: RFC 9293 §3.10.7.1 "<SEQ=SEG.ACK><CTL=RST>", no TCB.
    let r = refused(&mut quiet, fx.at(1_000), tuple(), &ack);
    assert_eq!(r.seq, ack.ack);
    assert_eq!(quiet.cookie_acks_unexpected(), 1);
    // Once its own backlog overflows (another client), the same ACK is a
    // cookie it may have sent: the gate, not the hash, refused it.
    let mut other = tuple();
    other.remote.set_port(40_002);
    let mut s2 = syn(opts_mss(1460));
    s2.src_port = 40_002;
    assert!(matches!(
        quiet.on_syn(fx.at(2_000), other, &s2, 8, 8),
        SynOutcome::Cookie(_)
    ));
    assert!(quiet.cookie_ack(fx.at(3_000), tuple(), &ack).is_some());
    assert_eq!(quiet.cookie_acks_unexpected(), 1);
    assert_eq!(sender.cookie_acks_unexpected(), 0);
}

#[test]
fn cookie_acks_are_refused_once_the_overflow_is_older_than_the_cookie_validity() {
    let fx = Fx::new();
    let mut l = listener(TcpConfig::default());
    assert!(matches!(
        l.on_syn(fx.at(0), tuple(), &syn(opts_mss(1460)), 8, 8),
        SynOutcome::Cookie(_)
    ));
    // A stray ACK while cookies are in flight is checked (and fails).
    let stray = seg(SeqNum(5), SeqNum(6), &[]);
    refused(&mut l, fx.at(128_000), tuple(), &stray);
    assert_eq!(l.cookie_acks_unexpected(), 0);
    // Past 2 ticks (128 s) no cookie can still be valid: not even checked.
    refused(&mut l, fx.at(128_001), tuple(), &stray);
    assert_eq!(l.cookie_acks_unexpected(), 1);
}

#[test]
fn segments_for_no_connection_get_the_rfc_reset() {
    let fx = Fx::new();
    let mut l = listener(TcpConfig::default());
    let mut s = seg(SeqNum(777), SeqNum(0), b"xyz");
    s.flags.ack = false;
    // "If the ACK bit is off, sequence number zero is used,
    // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>".
    match l.on_unknown(fx.at(0), tuple(), &s) {
        Some(r) => {
            assert!(r.flags.rst && r.flags.ack);
            assert_eq!((r.seq, r.ack), (SeqNum(0), SeqNum(780)));
        }
        None => panic!("expected a RST, got nothing"),
    }
    // "An incoming segment containing a RST is discarded."
    let mut r = seg(SeqNum(777), SeqNum(1), &[]);
    r.flags.rst = true;
    assert!(l.on_unknown(fx.at(0), tuple(), &r).is_none());
    // A SYN is `on_syn`'s to answer, not this.
    assert!(l
        .on_unknown(fx.at(0), tuple(), &syn(opts_mss(1460)))
        .is_none());
}

#[test]
fn non_syn_flag_combinations_are_not_opens() {
    let fx = Fx::new();
    let mut l = listener(TcpConfig::default());
    for (ack, rst, fin) in [
        (true, false, false),
        (false, true, false),
        (false, false, true),
    ] {
        let mut s = syn(opts_mss(1460));
        s.flags.ack = ack;
        s.flags.rst = rst;
        s.flags.fin = fin;
        assert!(matches!(
            l.on_syn(fx.at(0), tuple(), &s, 0, 8),
            SynOutcome::Drop
        ));
    }
}

#[test]
fn isns_differ_per_connection_and_advance_with_time() {
    let fx = Fx::new();
    let mut l = listener(TcpConfig::default());
    let iss = |l: &mut Listener, t: FourTuple, now| match l.on_syn(
        now,
        t,
        &syn(Options::default()),
        0,
        8,
    ) {
        SynOutcome::Tcb(mut tcb) => recv!(tcb, now).seq,
        other => panic!("expected a TCB, got {other:?}"),
    };
    let mut other = tuple();
    other.remote.set_port(40_001);
    let a = iss(&mut l, tuple(), fx.at(0));
    let b = iss(&mut l, other, fx.at(0));
    // RFC 6528 §3: F() keyed by the 4-tuple: other connections get other
    // ISNs; the same one later gets one about 250,000 per second larger.
    assert_ne!(a, b);
    let a2 = iss(&mut l, tuple(), fx.at(1000));
    assert_eq!(a2 - a, 250_000);
    // Another key, other ISNs.
    let mut l2 = Listener::new(TcpConfig::default(), [9; 16]);
    assert_ne!(iss(&mut l2, tuple(), fx.at(0)), a);
}

/// A listener up for two months makes a TCB on its timestamp clock: the
/// TCB moves that clock's epoch on to fit its 4-byte ticks, and its first
/// segment after the SYN-ACK carries the TSval the milliseconds say, its
/// delayed ACK falls due 40 ms after the data (issue 19).
#[test]
fn a_tcb_from_a_listener_up_for_months_keeps_its_clock() {
    let fx = Fx::new();
    let mut l = listener(TcpConfig::default());
    let _ = l.on_syn(fx.at(0), tuple(), &syn(opts_all()), 0, 128);
    let at = 61 * 86_400_000u64;
    let mut tcb = match l.on_syn(fx.at(at), tuple(), &syn(opts_all()), 0, 128) {
        SynOutcome::Tcb(t) => t,
        other => panic!("expected a TCB, got {other:?}"),
    };
    let synack = recv!(tcb, fx.at(at));
    let ts0 = synack.options.timestamps.map(|t| t.0).expect("timestamps");
    let iss = synack.seq;
    let mut ack = seg(SeqNum(CISN + 1), iss + 1, b"hello");
    ack.options.timestamps = Some((1_001, ts0));
    send!(tcb, fx.at(at + 5), ack);
    assert_eq!(tcb.state(), State::Established);
    assert_eq!(tcb.poll_timeout(), Some(fx.at(at + 45)), "the delayed ACK");
    tcb.on_timeout(fx.at(at + 45));
    let out = recv!(tcb, fx.at(at + 45));
    assert_eq!(out.ack, SeqNum(CISN + 6));
    assert_eq!(
        out.options.timestamps.map(|t| t.0),
        Some(ts0.wrapping_add(45))
    );
}
