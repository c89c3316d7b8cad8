//! Tests for the takeover hooks: export, restore into UNREADY, the probe,
//! and the ready / not-ready outcomes (ARCHITECTURE.md "Takeover" 4-6, the
//! seed's Fig. 6).

use super::*;

/// An ESTABLISHED connection with all options that has sent 1000 bytes
/// (acknowledged) and received 10; exported at t = 100 ms.
fn checkpoint(fx: &Fx) -> TcbExport {
    let (mut tcb, iss) = established_with(fx, TcpConfig::default(), opts_all());
    tcb.send(Bytes::from(pattern(1000))).expect("queued");
    drain(&mut tcb, fx.at(10));
    let mut a = seg(SeqNum(CISN + 1), iss + 1001, b"0123456789");
    a.options.timestamps = Some((1_010, 0));
    send!(tcb, fx.at(20), a);
    let e = tcb.export(fx.at(100));
    assert_eq!(e.state, State::Established);
    assert_eq!(e.snd_una, (iss + 1001).0);
    assert_eq!(e.snd_nxt, e.snd_una);
    assert_eq!(e.rcv_nxt, CISN + 11);
    assert_eq!(e.ts_recent, 1_010);
    e
}

/// The client's duplicate ACK answering a probe.
fn answer(seq: SeqNum, ack: SeqNum, tsecr: u32) -> Segment<'static> {
    let mut s = seg(seq, ack, &[]);
    s.window = 500;
    s.options.timestamps = Some((2_000, tsecr));
    s
}

#[test]
fn probe_carries_one_old_byte_the_checkpoint_ack_and_a_later_tsval() {
    let fx = Fx::new();
    let e = checkpoint(&fx);
    let mut tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
    assert_eq!(tcb.state(), State::Unready);
    assert!(!tcb.is_ready());
    let probe = recv!(tcb, fx.at(5_000));
    // ARCHITECTURE.md Takeover (a): "the probe carries one byte the client
    // already acknowledged" — at SND.UNA - 1, so Linux answers at once
    // (data segments escape tcp_invalid_ratelimit).
    assert_eq!(probe.seq, SeqNum(e.snd_una) - 1);
    assert_eq!(probe.payload_len(), 1);
    // (c): "use the checkpoint's receive sequence, never a guess".
    assert!(probe.flags.ack && !probe.flags.rst && !probe.flags.syn);
    assert_eq!(probe.ack, SeqNum(e.rcv_nxt));
    // (b): our clock continues from the checkpoint, never backwards.
    let (tsval, tsecr) = probe.options.timestamps.expect("timestamps negotiated");
    assert!(tsval.wrapping_sub(e.ts_last_sent) as i32 >= 0);
    assert_eq!(tsecr, e.ts_recent);
    // The window the client last saw never shrinks (RFC 9293 §3.8.6.2.2).
    assert!(u32::from(probe.window) << e.rcv_wscale >= e.rcv_wnd & !127);
    recv!(tcb, fx.at(5_000), nothing);
    // Not ready: the application may not send yet.
    assert_eq!(tcb.send(Bytes::from_static(b"x")), Err(SendError::NotReady));
}

#[test]
fn answer_ahead_of_the_checkpoint_syncs_to_the_client_ack() {
    let fx = Fx::new();
    let e = checkpoint(&fx);
    let mut tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
    let probe = recv!(tcb, fx.at(5_000));
    let our_ts = probe.options.timestamps.map_or(0, |t| t.0);
    // The dead box had sent 600 bytes more than it checkpointed; the
    // client's TS.Recent is also ahead of our checkpointed clock.
    let client_ack = SeqNum(e.snd_una) + 600;
    let ts_recent = our_ts.wrapping_add(10_000);
    send!(
        tcb,
        fx.at(5_002),
        answer(SeqNum(e.rcv_nxt), client_ack, ts_recent)
    );
    // Takeover 5: "take the greater of it and the checkpoint"; 6: ready.
    assert_eq!(tcb.state(), State::Established);
    assert_eq!(
        events(&mut tcb),
        vec![Event::Ready {
            snd_una: client_ack,
            rcv_nxt: SeqNum(e.rcv_nxt)
        }]
    );
    assert_eq!(tcb.next_seq(), client_ack);
    assert_eq!(tcb.send(Bytes::from_static(b"rest")), Ok(client_ack));
    let out = recv!(tcb, fx.at(5_003));
    assert_eq!(out.seq, client_ack);
    assert_eq!(out.ack, SeqNum(e.rcv_nxt));
    // (b): "continue our clock from there": at or above the client's
    // TS.Recent, so PAWS accepts what we send.
    let tsval = out.options.timestamps.expect("ts").0;
    assert!(tsval.wrapping_sub(ts_recent) as i32 >= 0);
    // The client's window is scaled as negotiated.
    assert_eq!(tcb.peer_window(), 500 << e.snd_wscale);
}

#[test]
fn answer_behind_the_checkpoint_keeps_the_checkpoint() {
    let fx = Fx::new();
    let e = checkpoint(&fx);
    let mut tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
    recv!(tcb, fx.at(5_000));
    let behind = SeqNum(e.snd_una) - 300;
    send!(tcb, fx.at(5_002), answer(SeqNum(e.rcv_nxt), behind, 0));
    assert_eq!(
        events(&mut tcb),
        vec![Event::Ready {
            snd_una: SeqNum(e.snd_una),
            rcv_nxt: SeqNum(e.rcv_nxt)
        }]
    );
    assert_eq!(tcb.next_seq(), SeqNum(e.snd_una));
}

/// A restored TCB whose client answered the probe from `ahead` bytes
/// beyond the checkpoint (`fin`: the last of them is its FIN), acking
/// `client_ack`, with its TS.Recent 10 s ahead of our checkpointed clock.
/// Returns the TCB, the checkpoint and the client's TSecr.
fn restored_ahead(fx: &Fx, config: TcpConfig, ahead: u32) -> (Tcb, TcbExport, u32) {
    restored_ahead_stamped(fx, config, ahead, 2_000)
}

/// As [`restored_ahead`], the client's answer stamped with TSval `tsval`.
fn restored_ahead_stamped(
    fx: &Fx,
    config: TcpConfig,
    ahead: u32,
    tsval: u32,
) -> (Tcb, TcbExport, u32) {
    let e = checkpoint(fx);
    let mut tcb = Tcb::restore(fx.at(5_000), config, &e);
    let probe = recv!(tcb, fx.at(5_000));
    let ts_recent = probe
        .options
        .timestamps
        .map_or(0, |t| t.0)
        .wrapping_add(10_000);
    let client_ack = SeqNum(e.snd_una) + 100;
    let mut a = answer(SeqNum(e.rcv_nxt) + ahead, client_ack, ts_recent);
    a.options.timestamps = Some((tsval, ts_recent));
    send!(tcb, fx.at(5_002), a);
    (tcb, e, ts_recent)
}

#[test]
fn client_ahead_of_the_checkpoint_gets_three_duplicate_acks_and_no_reset() {
    // Issue 13: the client's request (never acknowledged by the dead box)
    // is still in its send queue. No reset: three duplicate ACKs at the
    // checkpoint's RCV.NXT prompt its fast retransmit (RFC 5681 §3.2).
    let fx = Fx::new();
    let (mut tcb, e, ts_recent) = restored_ahead(&fx, TcpConfig::default(), 50);
    assert_eq!(tcb.state(), State::Established);
    // Not ready yet: the application hears nothing until the bytes come.
    assert_eq!(events(&mut tcb), vec![]);
    let client_ack = SeqNum(e.snd_una) + 100;
    let mut window = None;
    for _ in 0..3 {
        let d = recv!(tcb, fx.at(5_002));
        assert!(d.flags.ack && !d.flags.rst && !d.flags.fin && !d.flags.syn);
        assert_eq!(d.payload_len(), 0);
        assert_eq!(d.ack, SeqNum(e.rcv_nxt));
        // At the client's RCV.NXT, so it is acceptable to it.
        assert_eq!(d.seq, client_ack);
        // The same window each time (else not a duplicate, RFC 5681 §2).
        assert!(window.is_none_or(|w| w == d.window));
        window = Some(d.window);
        // PAWS: our TSval is at or above the client's TS.Recent (its
        // TSecr), TSecr echoes its TSval.
        let (tsval, tsecr) = d.options.timestamps.expect("timestamps");
        assert!(tsval.wrapping_sub(ts_recent) as i32 >= 0);
        assert_eq!(tsecr, 2_000);
    }
    recv!(tcb, fx.at(5_002), nothing);
    // The client retransmits its 50 bytes from our RCV.NXT.
    let mut again = answer(SeqNum(e.rcv_nxt), client_ack, ts_recent);
    again.payload = b"GET /next HTTP/1.1\r\nHost: h\r\nX-Pad: 0123456789\r\n\r\n";
    assert_eq!(again.payload.len(), 50);
    send!(tcb, fx.at(5_010), again);
    assert_eq!(
        events(&mut tcb),
        vec![
            Event::Ready {
                snd_una: client_ack,
                rcv_nxt: SeqNum(e.rcv_nxt)
            },
            Event::Readable
        ]
    );
    assert_eq!(tcb.recv_available(), 50);
    // No reset, ever: the gap deadline no longer applies.
    tcb.on_timeout(fx.at(20_000));
    while let Some(s) = tcb.poll_transmit(fx.at(20_000)) {
        assert!(!s.flags.rst, "{s:?}");
    }
    assert_ne!(tcb.state(), State::Closed);
}

#[test]
fn the_first_retransmitted_segment_makes_the_connection_ready() {
    // A client whose RTO shrank its congestion window to one segment
    // resends the first part only and waits for its ACK: the first byte
    // from the checkpoint's RCV.NXT proves the rest is in its send queue,
    // so the connection is ready at once and the rest follows.
    let fx = Fx::new();
    let (mut tcb, e, ts_recent) = restored_ahead(&fx, TcpConfig::default(), 3_000);
    for _ in 0..3 {
        recv!(tcb, fx.at(5_002));
    }
    let mut part = answer(SeqNum(e.rcv_nxt), SeqNum(e.snd_una) + 100, ts_recent);
    let first = pattern(1_000);
    part.payload = &first;
    send!(tcb, fx.at(5_300), part);
    assert_eq!(
        events(&mut tcb),
        vec![
            Event::Ready {
                snd_una: SeqNum(e.snd_una) + 100,
                rcv_nxt: SeqNum(e.rcv_nxt)
            },
            Event::Readable
        ]
    );
    tcb.on_timeout(fx.at(5_400));
    assert_eq!(recv!(tcb, fx.at(5_400)).ack, SeqNum(e.rcv_nxt) + 1_000);
    // No deadline any more.
    tcb.on_timeout(fx.at(30_000));
    while let Some(s) = tcb.poll_transmit(fx.at(30_000)) {
        assert!(!s.flags.rst);
    }
}

#[test]
fn a_client_that_never_retransmits_is_reset_at_the_gap_deadline() {
    // The dead box acknowledged bytes no checkpoint holds: the client
    // believes them delivered and never sends them again. Reset, exactly
    // at the client's RCV.NXT, once `restore_gap_timeout` has passed.
    let fx = Fx::new();
    let config = TcpConfig {
        restore_gap_timeout: Duration::from_secs(3),
        ..TcpConfig::default()
    };
    let (mut tcb, e, ts_recent) = restored_ahead(&fx, config, 50);
    for _ in 0..3 {
        recv!(tcb, fx.at(5_002));
    }
    // The client's pure ACKs (it has nothing to retransmit) change nothing.
    send!(
        tcb,
        fx.at(6_000),
        answer(SeqNum(e.rcv_nxt) + 50, SeqNum(e.snd_una) + 100, ts_recent)
    );
    recv!(tcb, fx.at(6_000), nothing);
    assert_eq!(tcb.poll_timeout(), Some(fx.at(8_002)));
    tcb.on_timeout(fx.at(8_001));
    recv!(tcb, fx.at(8_001), nothing);
    tcb.on_timeout(fx.at(8_002));
    let rst = recv!(tcb, fx.at(8_002));
    assert!(rst.flags.rst);
    assert_eq!(rst.seq, SeqNum(e.snd_una) + 100);
    assert_eq!(tcb.state(), State::Closed);
    // The application and the counters hear "not ready", as for a probe
    // never answered.
    assert_eq!(events(&mut tcb), vec![Event::NotReady, Event::Closed]);
}

#[test]
fn a_client_that_retransmitted_into_the_dead_box_for_long_is_waited_for_twice_as_long() {
    // Restored 21 s after the kill, the client had been retransmitting its
    // request for 36 s by its clock (TSval against the checkpoint's
    // TS.Recent): backed off, its next try is ~30 s away. The 5 s gap
    // deadline reset such clients (300,000 taken over); now it waits twice
    // that, capped at 45 s.
    let fx = Fx::new();
    let late = checkpoint(&fx).ts_recent + 36_000;
    let (mut tcb, _, _) = restored_ahead_stamped(&fx, TcpConfig::default(), 50, late);
    assert_eq!(tcb.state(), State::Established);
    for at in [5_002, 11_000, 40_000, 50_001] {
        tcb.on_timeout(fx.at(at));
        while let Some(s) = tcb.poll_transmit(fx.at(at)) {
            assert!(
                !s.flags.rst,
                "reset at {at} ms while the client still backs off"
            );
        }
    }
    assert_eq!(tcb.state(), State::Established);
    // A real gap still ends, 45 s after the answer.
    tcb.on_timeout(fx.at(50_002));
    let rst = recv!(tcb, fx.at(50_002));
    assert!(rst.flags.rst);
    assert_eq!(tcb.state(), State::Closed);
}

#[test]
fn a_fin_sent_just_before_death_is_retransmitted_and_half_closes() {
    // The client closed (its FIN, never acknowledged by the dead box).
    let fx = Fx::new();
    let (mut tcb, e, ts_recent) = restored_ahead(&fx, TcpConfig::default(), 1);
    for _ in 0..3 {
        assert_eq!(recv!(tcb, fx.at(5_002)).ack, SeqNum(e.rcv_nxt));
    }
    assert_eq!(events(&mut tcb), vec![]);
    let mut fin = answer(SeqNum(e.rcv_nxt), SeqNum(e.snd_una) + 100, ts_recent);
    fin.flags.fin = true;
    send!(tcb, fx.at(5_200), fin);
    assert_eq!(tcb.state(), State::CloseWait);
    assert_eq!(
        events(&mut tcb),
        vec![
            Event::Ready {
                snd_una: SeqNum(e.snd_una) + 100,
                rcv_nxt: SeqNum(e.rcv_nxt)
            },
            Event::PeerClosed
        ]
    );
    // Its FIN is acknowledged; the application answers and closes.
    assert_eq!(recv!(tcb, fx.at(5_200)).ack, SeqNum(e.rcv_nxt) + 1);
}

#[test]
fn a_restored_connection_holds_the_retransmitted_request_until_committed() {
    // With `hold_acks`, the request that filled the gap is acknowledged
    // only by the checkpoint that covers it (a second failure finds it).
    let fx = Fx::new();
    let config = TcpConfig {
        hold_acks: true,
        ..TcpConfig::default()
    };
    let (mut tcb, e, ts_recent) = restored_ahead(&fx, config, 10);
    for _ in 0..3 {
        recv!(tcb, fx.at(5_002));
    }
    let mut again = answer(SeqNum(e.rcv_nxt), SeqNum(e.snd_una) + 100, ts_recent);
    again.payload = b"0123456789";
    send!(tcb, fx.at(5_010), again);
    assert_eq!(tcb.recv_available(), 10);
    tcb.on_timeout(fx.at(5_100));
    recv!(tcb, fx.at(5_100), nothing);
    tcb.commit_ack(SeqNum(e.rcv_nxt) + 10);
    assert_eq!(recv!(tcb, fx.at(5_101)).ack, SeqNum(e.rcv_nxt) + 10);
}

/// A client 50 bytes ahead of the checkpoint `e` answers the probe; those
/// bytes were never acknowledged, so it retransmits them from our RCV.NXT
/// and they are delivered: no reset.
fn a_client_ahead_is_waited_for(fx: &Fx, config: TcpConfig, e: &TcbExport) {
    let mut tcb = Tcb::restore(fx.at(5_000), config, e);
    recv!(tcb, fx.at(5_000));
    send!(
        tcb,
        fx.at(5_002),
        answer(SeqNum(e.rcv_nxt) + 50, SeqNum(e.snd_una), 0)
    );
    assert_eq!(tcb.state(), State::Established);
    let mut again = answer(SeqNum(e.rcv_nxt), SeqNum(e.snd_una), 0);
    again.payload = b"upload body";
    send!(tcb, fx.at(5_300), again);
    assert_eq!(tcb.recv_available(), 11);
}

#[test]
fn with_ack_after_commit_a_client_ahead_is_waited_for() {
    let fx = Fx::new();
    let config = TcpConfig {
        ack_after_commit: true,
        ..TcpConfig::default()
    };
    a_client_ahead_is_waited_for(&fx, config, &checkpoint(&fx));
}

#[test]
fn a_client_ahead_of_a_checkpoint_that_covers_every_ack_is_waited_for() {
    // A final checkpoint before a planned move (or one taken under
    // ack_after_commit on the dead box) covers every acknowledgement.
    let fx = Fx::new();
    let e = TcbExport {
        acks_covered: true,
        ..checkpoint(&fx)
    };
    a_client_ahead_is_waited_for(&fx, TcpConfig::default(), &e);
}

#[test]
fn answer_carrying_data_at_rcv_nxt_is_ready_and_delivered() {
    let fx = Fx::new();
    let e = checkpoint(&fx);
    let mut tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
    recv!(tcb, fx.at(5_000));
    let mut s = answer(SeqNum(e.rcv_nxt), SeqNum(e.snd_una), 0);
    s.payload = b"GET /next";
    send!(tcb, fx.at(5_002), s);
    assert!(tcb.is_ready());
    assert_eq!(tcb.recv_available(), 9);
    let ev = events(&mut tcb);
    assert!(matches!(ev[0], Event::Ready { .. }));
    assert_eq!(ev[1], Event::Readable);
}

#[test]
fn probes_back_off_and_give_up_with_not_ready() {
    let fx = Fx::new();
    let e = checkpoint(&fx);
    let mut tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
    let mut probes = vec![];
    let mut rst = None;
    if tcb.poll_transmit(fx.at(5_000)).is_some() {
        probes.push(0);
    }
    while let Some(t) = tcb.poll_timeout() {
        tcb.on_timeout(t);
        for s in drain(&mut tcb, t) {
            if s.flags.rst {
                rst = Some((t - fx.at(5_000)).as_millis());
            } else {
                probes.push((t - fx.at(5_000)).as_millis());
            }
        }
    }
    // restore_probe_retries = 12 retries after the first: four at 50 ms,
    // then doubling; each retry spread over up to half its interval more,
    // so thousands of connections restored together do not probe in
    // lockstep. Giving up takes about 26 s (38 s at most with the spread):
    // long enough for an inheritor that dropped answers for seconds.
    assert_eq!(probes.len(), 13, "{probes:?}");
    assert_eq!(&probes[..2], &[0, 50]);
    let mut times = probes.clone();
    times.push(rst.expect("a reset when giving up"));
    assert!(
        (25_000..40_000).contains(times.last().unwrap()),
        "gave up at {times:?}"
    );
    for k in 2..times.len() {
        let base = 50u128 << (k as u32 - 1).saturating_sub(4);
        let gap = times[k] - times[k - 1];
        assert!(
            gap >= base && gap <= base + base / 2,
            "gap {k}: {gap} ms, {times:?}"
        );
    }
    assert_eq!(events(&mut tcb), vec![Event::NotReady, Event::Closed]);
}

#[test]
fn exact_rst_while_unready_closes() {
    let fx = Fx::new();
    let e = checkpoint(&fx);
    let mut tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
    recv!(tcb, fx.at(5_000));
    let mut r = seg(SeqNum(e.rcv_nxt) + 5, SeqNum(0), &[]);
    r.flags = Flags {
        rst: true,
        ..Flags::default()
    };
    send!(tcb, fx.at(5_001), r);
    assert_eq!(tcb.state(), State::Unready, "inexact RST ignored");
    r.seq = SeqNum(e.rcv_nxt);
    send!(tcb, fx.at(5_001), r);
    assert_eq!(tcb.state(), State::Closed);
    assert_eq!(events(&mut tcb), vec![Event::Reset, Event::Closed]);
}

#[test]
fn closed_or_half_open_checkpoints_are_not_resumed() {
    let fx = Fx::new();
    let mut e = checkpoint(&fx);
    for state in [State::SynReceived, State::TimeWait, State::Closed] {
        e.state = state;
        let mut tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
        assert_eq!(tcb.state(), State::Closed, "{state:?}");
        assert_eq!(events(&mut tcb), vec![Event::NotReady, Event::Closed]);
        recv!(tcb, fx.at(5_000), nothing);
    }
}

#[test]
fn export_while_unready_hands_on_the_checkpoint() {
    let fx = Fx::new();
    let e = checkpoint(&fx);
    let tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
    let again = tcb.export(fx.at(5_100));
    assert_eq!(again.snd_una, e.snd_una);
    assert_eq!(again.rcv_nxt, e.rcv_nxt);
    assert_eq!(again.state, State::Established);
    assert_eq!(again.ts_last_sent, e.ts_last_sent.wrapping_add(100));
}

#[test]
fn state_bytes_round_trip() {
    for v in 0..=255u8 {
        if let Some(s) = State::from_u8(v) {
            assert_eq!(s.as_u8(), v);
        }
    }
    assert_eq!(State::from_u8(State::Unready.as_u8()), Some(State::Unready));
    assert_eq!(State::from_u8(0), None);
}

#[test]
fn after_takeover_an_ack_beyond_what_we_resent_is_taken_not_fought() {
    let fx = Fx::new();
    let e = checkpoint(&fx);
    let mut tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
    recv!(tcb, fx.at(5_000));
    let una = SeqNum(e.snd_una);
    send!(tcb, fx.at(5_002), answer(SeqNum(e.rcv_nxt), una, 0));
    events(&mut tcb);
    tcb.send(Bytes::from(pattern(10_000))).expect("queued");
    let first = recv!(tcb, fx.at(5_003));
    assert_eq!(first.seq, una);
    // The client held the dead box's later segments out of order: once our
    // resent segment fills its hole, its ACK jumps past all we sent.
    send!(tcb, fx.at(5_004), answer(SeqNum(e.rcv_nxt), una + 6_000, 0));
    assert_eq!(tcb.send_queued(), 4_000);
    assert_eq!(tcb.stats().dropped, 0);
    // Sending goes on from there, not from what we had sent.
    let next = drain(&mut tcb, fx.at(5_004));
    assert_eq!(next.first().map(|s| s.seq), Some(una + 6_000));
}

#[test]
fn a_late_window_update_as_the_answer_after_several_probes_still_lets_data_flow() {
    // Seen in the lab: a rate-limited client had closed its window; its
    // answers to the first probes went to the dead box's MAC, and the first
    // segment to reach the survivor was a window update 1.6 s later.
    let fx = Fx::new();
    let e = checkpoint(&fx);
    let mut tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
    recv!(tcb, fx.at(5_000));
    let mut t = 5_000;
    for _ in 0..5 {
        let Some(due) = tcb.poll_timeout() else { break };
        t = due.duration_since(fx.at(0)).as_millis() as u64 + 1;
        tcb.on_timeout(fx.at(t));
        while tcb.poll_transmit(fx.at(t)).is_some() {}
    }
    let client_ack = SeqNum(e.snd_una) + 2_000;
    let mut update = seg(SeqNum(e.rcv_nxt), client_ack, &[]);
    update.window = 81;
    update.options.timestamps = Some((3_000, e.ts_last_sent));
    send!(tcb, fx.at(t + 10), update);
    assert_eq!(
        events(&mut tcb),
        vec![Event::Ready {
            snd_una: client_ack,
            rcv_nxt: SeqNum(e.rcv_nxt)
        }]
    );
    assert_eq!(tcb.send(Bytes::from(pattern(20_000))), Ok(client_ack));
    let out = recv!(tcb, fx.at(t + 11));
    assert_eq!(
        out.seq, client_ack,
        "data resumes at the client's byte at once"
    );
    assert!(out.payload_len() > 0);
}

#[test]
fn a_zero_window_answer_arms_the_persist_timer_once_data_is_queued() {
    // A rate-limited client answers the probe with a closed window; its
    // later window update may have gone to the dead box. RFC 9293
    // §3.8.6.1: the sender must probe a zero window, so data resumes.
    let fx = Fx::new();
    let e = checkpoint(&fx);
    let mut tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
    recv!(tcb, fx.at(5_000));
    let client_ack = SeqNum(e.snd_una) + 2_000;
    let mut closed = seg(SeqNum(e.rcv_nxt), client_ack, &[]);
    closed.window = 0;
    closed.options.timestamps = Some((3_000, e.ts_last_sent));
    send!(tcb, fx.at(5_002), closed);
    assert!(matches!(events(&mut tcb)[..], [Event::Ready { .. }]));
    assert_eq!(tcb.send(Bytes::from(pattern(20_000))), Ok(client_ack));
    while tcb.poll_transmit(fx.at(5_003)).is_some() {}
    let due = tcb.poll_timeout().expect("the persist timer is armed");
    tcb.on_timeout(due);
    let probe = tcb
        .poll_transmit(due)
        .expect("a zero-window probe goes out");
    assert_eq!(probe.seq, client_ack);
    assert_eq!(probe.payload_len(), 1);
}

/// The first loss after a takeover is resent after the RTO the probe's
/// round trip gives (`min_rto`, 200 ms, on a 3 ms path), not after the
/// 1 s an empty estimator starts from; with a second probe the answer is
/// ambiguous and the estimator stays empty (Karn).
#[test]
fn the_probe_round_trip_is_the_first_rtt_sample() {
    let resent_after = |probes: u32| {
        let fx = Fx::new();
        let e = checkpoint(&fx);
        let mut tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
        recv!(tcb, fx.at(5_000));
        let mut now = fx.at(5_000);
        for _ in 1..probes {
            let t = tcb.poll_timeout().expect("probe timer");
            tcb.on_timeout(t);
            assert_eq!(drain(&mut tcb, t).len(), 1, "one more probe");
            now = t;
        }
        let answered = now + Duration::from_millis(3);
        send!(
            tcb,
            answered,
            answer(SeqNum(e.rcv_nxt), SeqNum(e.snd_una), 0)
        );
        assert!(tcb.is_ready());
        tcb.send(Bytes::from(pattern(500))).expect("queued");
        let first = recv!(tcb, answered);
        assert_eq!(first.payload_len(), 500);
        // Nothing comes back: the next thing out is the retransmission.
        loop {
            let t = tcb.poll_timeout().expect("retransmission timer");
            tcb.on_timeout(t);
            if let Some(s) = drain(&mut tcb, t).into_iter().next() {
                assert_eq!(s.seq, first.seq, "the lost segment again");
                return (t - answered).as_millis();
            }
        }
    };
    assert_eq!(resent_after(1), 200);
    assert_eq!(resent_after(2), 1_000);
}

/// A download whose response and FIN were all acknowledged before the
/// kill: the client is still reading what its kernel buffered. The
/// survivor holds the connection in FIN-WAIT-2 without a probe or a
/// reset: the client's window updates are taken silently and its FIN is
/// acknowledged (TIME-WAIT). It once got NotReady and the next window
/// update a RST ("Connection reset by peer" in curl).
#[test]
fn a_fin_wait_2_checkpoint_is_held_quietly_until_the_clients_fin() {
    let fx = Fx::new();
    let (mut tcb, iss) = established_with(&fx, TcpConfig::default(), opts_all());
    tcb.send(Bytes::from(pattern(1000))).expect("queued");
    tcb.close();
    let sent = drain(&mut tcb, fx.at(10));
    assert!(sent.last().is_some_and(|s| s.flags.fin), "{sent:?}");
    let mut all_acked = seg(SeqNum(CISN + 1), iss + 1002, &[]);
    all_acked.options.timestamps = Some((1_010, 0));
    send!(tcb, fx.at(20), all_acked);
    assert_eq!(tcb.state(), State::FinWait2);
    let e = tcb.export(fx.at(100));
    assert_eq!(e.state, State::FinWait2);

    let mut tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
    assert_eq!(tcb.state(), State::FinWait2);
    recv!(tcb, fx.at(5_000), nothing);
    assert_eq!(events(&mut tcb), vec![]);
    // A window update as the client's application reads: no answer.
    let mut update = seg(SeqNum(CISN + 1), iss + 1002, &[]);
    update.window = 4_000;
    update.options.timestamps = Some((1_500, e.ts_last_sent));
    send!(tcb, fx.at(5_010), update);
    recv!(tcb, fx.at(5_010), nothing);
    // Its FIN: acknowledged, TIME-WAIT, then closed normally.
    let mut fin = seg(SeqNum(CISN + 1), iss + 1002, &[]);
    fin.flags.fin = true;
    fin.options.timestamps = Some((1_600, e.ts_last_sent));
    send!(tcb, fx.at(5_020), fin);
    let ack = recv!(tcb, fx.at(5_020));
    assert!(ack.flags.ack && !ack.flags.rst, "{ack:?}");
    assert_eq!(ack.ack, SeqNum(CISN + 2));
    assert_eq!(ack.seq, iss + 1002);
    assert_eq!(tcb.state(), State::TimeWait);
    assert!(!events(&mut tcb).contains(&Event::NotReady));
}

/// A replica a few milliseconds behind: the dead box and the client closed
/// the connection after its last checkpoint (the client's FIN, the box's
/// FIN, the client's last ACK), and the client sits in TIME-WAIT. Its
/// answer to the probe acknowledges a FIN the record never sent, from one
/// past the record's RCV.NXT. The survivor ends the connection quietly:
/// no duplicate ACKs, no gap deadline, no RST, no "not ready". Seen in the
/// lab (IPv6 back LAN, 1 MB downloads): the connection waited out the 5 s
/// gap deadline and was reset.
#[test]
fn a_connection_both_sides_closed_after_the_checkpoint_ends_quietly() {
    let fx = Fx::new();
    let e = checkpoint(&fx);
    let mut tcb = Tcb::restore(fx.at(5_000), TcpConfig::default(), &e);
    let probe = recv!(tcb, fx.at(5_000));
    let tsecr = probe.options.timestamps.map_or(0, |t| t.0);
    send!(
        tcb,
        fx.at(5_002),
        answer(SeqNum(e.rcv_nxt) + 1, SeqNum(e.snd_nxt) + 1, tsecr)
    );
    assert_eq!(tcb.state(), State::Closed);
    assert_eq!(events(&mut tcb), vec![Event::Closed]);
    recv!(tcb, fx.at(5_002), nothing);
    tcb.on_timeout(fx.at(20_000));
    recv!(tcb, fx.at(20_000), nothing);
}

/// Only both FINs together mean closed: a client one past the record
/// whose ACK is not past our data (its own FIN or a byte the dead box
/// never acknowledged) is still waited for, as before.
#[test]
fn a_client_one_ahead_without_acknowledging_a_fin_is_still_waited_for() {
    let fx = Fx::new();
    let (mut tcb, _e, _) = restored_ahead(&fx, TcpConfig::default(), 1);
    assert_eq!(tcb.state(), State::Established);
    assert_eq!(events(&mut tcb), vec![]);
}
