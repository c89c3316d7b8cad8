//! The worker's TCP buffer budget seen from two connections sharing it:
//! once one fills it, the other is held to its floors (send capacity,
//! receive window) without losing what it was promised, and gets its whole
//! buffers back as soon as acknowledgements free the budget.

use super::*;

const BUDGET: usize = 100_000;

fn budget_config() -> TcpConfig {
    TcpConfig {
        buffer_budget: BufferBudget::new(BUDGET),
        ..TcpConfig::default()
    }
}

/// `hog`'s client acknowledges what it gets until `at_least` bytes were
/// acknowledged; returns how many were.
fn acknowledge(fx: &Fx, hog: &mut Tcb, iss: SeqNum, at_least: usize) -> usize {
    let mut acked = 0;
    let mut t = 100;
    while acked < at_least {
        let sent: usize = drain(hog, fx.at(t)).iter().map(|s| payload(s).len()).sum();
        assert!(sent > 0, "the hog sends while its client acknowledges");
        acked += sent;
        send!(
            hog,
            fx.at(t + 1),
            seg(SeqNum(CISN + 1), iss + 1 + acked as u32, &[])
        );
        t += 2;
    }
    acked
}

/// Fills the budget through `hog`'s send queue: BUDGET bytes queued.
fn fill(hog: &mut Tcb) {
    hog.send(Bytes::from(pattern(BUDGET)))
        .expect("the hog's bytes fit its buffer");
}

#[test]
fn a_spent_budget_holds_the_send_capacity_to_the_floor_until_acks_free_it() {
    let fx = Fx::new();
    let config = budget_config();
    let budget = config.buffer_budget.clone();
    let (mut hog, hog_iss) = established_with(&fx, config.clone(), opts_mss(1460));
    let (mut other, _) = established_with(&fx, config.clone(), opts_mss(1460));
    let full = config.send_buffer as usize;
    assert_eq!(other.send_capacity(), full);

    fill(&mut hog);
    assert!(budget.exhausted());
    assert_eq!(other.send_capacity(), SEND_FLOOR);
    // The application may queue its floor, and nothing beyond it.
    assert!(matches!(
        other.send(Bytes::from(pattern(SEND_FLOOR + 1))),
        Err(SendError::Full { .. })
    ));
    other
        .send(Bytes::from(pattern(SEND_FLOOR)))
        .expect("the floor is guaranteed");
    assert_eq!(other.send_capacity(), 0);
    assert!(budget.stats().send_limited >= 2);

    // The hog's client acknowledges what it got: the budget has room again
    // and the other connection its whole buffer.
    let sent = acknowledge(&fx, &mut hog, hog_iss, SEND_FLOOR + 1);
    assert_eq!(budget.used(), BUDGET + SEND_FLOOR - sent);
    assert!(!budget.exhausted());
    assert_eq!(other.send_capacity(), full - SEND_FLOOR);

    // Connections that end give their bytes back.
    drop(hog);
    drop(other);
    assert_eq!(budget.used(), 0);
}

/// The client sends `n` full segments from offset `from` of its stream;
/// returns the last ACK they drew.
fn deliver(tcb: &mut Tcb, at: Instant, iss: SeqNum, from: u32, n: u32) -> OutSegment {
    for i in 0..n {
        let seq = SeqNum(CISN + 1 + from + i * 1460);
        send!(tcb, at, seg(seq, iss + 1, &pattern(1460)));
    }
    drain(tcb, at).pop().expect("two full segments draw an ACK")
}

#[test]
fn a_spent_budget_stops_the_receive_window_opening_but_never_shrinks_it() {
    let fx = Fx::new();
    let config = budget_config();
    let budget = config.buffer_budget.clone();
    let (mut hog, hog_iss) = established_with(&fx, config.clone(), opts_mss(1460));
    let (mut tcb, iss) = established_with(&fx, config.clone(), opts_mss(1460));

    let ack = deliver(&mut tcb, fx.at(10), iss, 0, 2);
    let edge = ack.ack + u32::from(ack.window);
    assert_eq!(
        u32::from(ack.window),
        65_535,
        "a full window before the budget is spent"
    );

    fill(&mut hog);
    // Bytes inside the window the client was given are still taken, far
    // beyond the floor.
    let ack = deliver(&mut tcb, fx.at(20), iss, 2 * 1460, 4);
    assert_eq!(tcb.recv_available(), 6 * 1460);
    assert!(tcb.recv_available() > RECV_FLOOR);
    assert_eq!(ack.ack, SeqNum(CISN + 1 + 6 * 1460));
    assert_eq!(
        ack.ack + u32::from(ack.window),
        edge,
        "the edge neither moves on nor back"
    );

    // The application reads everything: the window may reopen only to the
    // floor, and not past the edge already given.
    let mut buf = vec![0u8; 20_000];
    assert_eq!(tcb.recv(&mut buf), 6 * 1460);
    for update in drain(&mut tcb, fx.at(30)) {
        assert_eq!(update.ack + u32::from(update.window), edge);
    }
    assert!(budget.stats().window_limited > 0);

    // The budget frees: the next ACK opens the full window again.
    acknowledge(&fx, &mut hog, hog_iss, BUDGET);
    assert!(!budget.exhausted());
    let ack = deliver(&mut tcb, fx.at(500), iss, 6 * 1460, 2);
    assert_eq!(ack.ack, SeqNum(CISN + 1 + 8 * 1460));
    assert_eq!(u32::from(ack.window), 65_535);
}
