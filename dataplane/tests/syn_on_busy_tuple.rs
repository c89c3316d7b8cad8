//! A client that reuses its port while the worker still holds the old
//! connection on that 4-tuple, end to end through the worker over an
//! in-memory port (no root, no sockets): the new SYN must get an answer at
//! once, never silence that costs the client SYN retransmissions.
//!
//! The 300,000-connection benchmark reuses client ports within a minute of
//! an earlier run; the box may still hold some of those 4-tuples
//! (ESTABLISHED when the client's RST was lost, TIME-WAIT when the box
//! closed first).

mod common;

use baton_dataplane::responder::Responder;
use baton_dataplane::tcp::{Event, FourTuple, SeqNum, State, Tcb, TcpConfig};
use bytes::Bytes;
use common::memnet::{body_start, recv_into, responder_net, MemNet, Sent};
use common::wire::{CLIENT, SERVICE};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const PORT: u16 = 40_123;
const BODY: usize = 1000;
const KEEP_ALIVE: &[u8] = b"GET /obj HTTP/1.1\r\nHost: x\r\n\r\n";

type Net = MemNet<Responder>;

/// A worker serving `/obj`, [`BODY`] bytes.
fn net() -> Net {
    responder_net("obj", Bytes::from(vec![7u8; BODY]), |_| {})
}

/// A client TCB on the fixed 4-tuple (its `local` is the client).
fn client(now: Instant, iss: u32) -> Tcb {
    let tuple = FourTuple {
        local: SocketAddr::new(IpAddr::V4(CLIENT), PORT),
        remote: SocketAddr::new(IpAddr::V4(SERVICE), 80),
    };
    Tcb::connect(now, TcpConfig::default(), tuple, SeqNum(iss))
}

/// Runs `client` through one request until the whole response arrived (and,
/// with `close`, until both FINs are exchanged); returns the response.
fn request(net: &mut Net, c: &mut Tcb, close: bool, max_ms: u32) -> Vec<u8> {
    let req: &'static [u8] = if close {
        b"GET /obj HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    } else {
        KEEP_ALIVE
    };
    let mut got = Vec::new();
    let mut asked = false;
    for _ in 0..max_ms {
        net.step(c);
        while let Some(e) = c.poll_event() {
            if e == Event::PeerClosed {
                c.close();
            }
        }
        if c.state() == State::Established && !asked {
            c.send(Bytes::from_static(req)).expect("room for a request");
            asked = true;
        }
        recv_into(c, &mut got);
        let complete = body_start(&got).is_some_and(|b| got.len() - b == BODY);
        if complete && (!close || matches!(c.state(), State::Closed | State::TimeWait)) {
            // One more round so the box sees our last ACK.
            net.step(c);
            break;
        }
        net.tick(c);
    }
    got
}

fn assert_ok(got: &[u8]) {
    assert!(
        got.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        &got[..got.len().min(40)]
    );
}

/// Opens a second connection on the same 4-tuple; returns what the box
/// answered to the first SYN and how long the handshake took.
fn reconnect(net: &mut Net, iss: u32) -> (Vec<Sent>, Duration, Tcb) {
    let mut c = client(net.now, iss);
    let start = net.now;
    let first = net.step(&mut c);
    for _ in 0..3_000 {
        if c.state() == State::Established {
            break;
        }
        net.tick(&mut c);
        net.step(&mut c);
    }
    assert_eq!(c.state(), State::Established, "the new connection opens");
    (first, net.now - start, c)
}

#[test]
fn port_reused_while_the_box_holds_the_old_connection_opens_after_one_challenge_ack() {
    let mut net = net();
    let mut old = client(net.now, 1_000);
    assert_ok(&request(&mut net, &mut old, false, 2_000));
    assert_eq!(net.worker.connections(), 1);
    // The client process exits and its RST is lost: the box keeps the
    // connection ESTABLISHED. A new socket gets the same port.
    drop(old);
    net.now += Duration::from_secs(2);
    let (first, took, mut c) = reconnect(&mut net, 2_000_000);
    // RFC 9293 §3.10.7.4 "fourth" / RFC 5961 §4.2: the SYN is answered at
    // once with a challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT>; the client's
    // SYN-SENT answer <SEQ=SEG.ACK><CTL=RST> (§3.10.7.3) resets the old
    // connection exactly at RCV.NXT, and the client's next SYN opens.
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        first[0].flags.ack && !first[0].flags.syn && !first[0].flags.rst,
        "{first:?}"
    );
    assert_eq!(
        first[0].ack,
        SeqNum(1_001 + KEEP_ALIVE.len() as u32),
        "the old connection's RCV.NXT"
    );
    assert!(
        took <= Duration::from_millis(1_100),
        "one SYN retransmission at most: {took:?}"
    );
    assert_eq!(
        net.worker.counters().tcp_closed,
        1,
        "the old connection is gone"
    );
    assert_ok(&request(&mut net, &mut c, false, 2_000));
    assert_eq!(net.worker.app().requests, 2);
}

#[test]
fn port_reused_while_the_box_holds_time_wait_is_answered_at_once() {
    let mut net = net();
    let mut old = client(net.now, 1_000);
    // "Connection: close": the box closes first and keeps TIME-WAIT
    // (RFC 9293 §3.6).
    assert_ok(&request(&mut net, &mut old, true, 3_000));
    assert_eq!(net.worker.connections(), 1, "the box holds TIME-WAIT");
    drop(old);
    net.now += Duration::from_secs(2);
    // A new incarnation: ISN and TSval above the old connection's.
    let (first, took, mut c) = reconnect(&mut net, 2_000_000);
    // A newer SYN gets a SYN-ACK (RFC 6191, the worker asks
    // `Tcb::accepts_new_syn`); an older one would get a challenge ACK (the
    // client's RST ends TIME-WAIT, its next SYN opens). Either is an
    // answer at once.
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].flags.ack && !first[0].flags.rst, "{first:?}");
    assert!(
        took <= Duration::from_millis(1_100),
        "one SYN retransmission at most: {took:?}"
    );
    assert_ok(&request(&mut net, &mut c, false, 2_000));
}

#[test]
fn newer_syn_on_a_time_wait_four_tuple_gets_a_syn_ack_per_rfc_6191() {
    let mut net = net();
    let mut old = client(net.now, 1_000);
    assert_ok(&request(&mut net, &mut old, true, 3_000));
    drop(old);
    net.now += Duration::from_secs(2);
    let (first, took, _) = reconnect(&mut net, 2_000_000);
    // RFC 6191 §2: a SYN whose timestamp is above TS.Recent may open a new
    // incarnation of a connection in TIME-WAIT.
    assert!(first[0].flags.syn && first[0].flags.ack, "{first:?}");
    assert!(took < Duration::from_millis(5), "{took:?}");
}
