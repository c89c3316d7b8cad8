//! Segment-by-segment tests of the TCP state machine, in the manner of
//! smoltcp's socket tests: a fixture with a fake clock, template segments,
//! and `send!` (segment into the TCB) / `recv!` (segment out of it)
//! macros. One file per group of states; each test quotes the RFC sentence
//! it checks. `harness` runs two endpoints over a simulated lossy link.

use super::*;
pub(crate) use bytes::Bytes;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

mod budget;
mod closing;
mod established;
mod fuzz;
mod handshake;
mod harness;
mod listener;
mod restore;
mod rfc5961;
mod sending;

/// The client's initial sequence number in most tests.
pub(crate) const CISN: u32 = 10_000;

/// Feed a segment to a TCB at a time.
macro_rules! send {
    ($tcb:expr, $now:expr, $seg:expr) => {
        $tcb.on_segment($now, &$seg)
    };
}

/// Take the next segment a TCB wants to send; `recv!(tcb, now, nothing)`
/// asserts there is none.
macro_rules! recv {
    ($tcb:expr, $now:expr) => {
        $tcb.poll_transmit($now)
            .expect("the TCB should have a segment to send")
    };
    ($tcb:expr, $now:expr, nothing) => {{
        let s = $tcb.poll_transmit($now);
        assert!(s.is_none(), "expected no segment, got {:?}", s);
    }};
}
pub(crate) use {recv, send};

/// A fake clock: `fx.at(ms)` is `ms` milliseconds after the test began.
pub(crate) struct Fx {
    pub(crate) t0: Instant,
}

impl Fx {
    pub(crate) fn new() -> Fx {
        Fx { t0: Instant::now() }
    }
    pub(crate) fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }
}

pub(crate) fn tuple() -> FourTuple {
    FourTuple {
        local: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 11), 80)),
        remote: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 100), 40_000)),
    }
}

pub(crate) fn ack_flags() -> Flags {
    Flags {
        ack: true,
        ..Flags::default()
    }
}

/// Template: a segment from the client with ACK set and a 64 KiB window.
pub(crate) fn seg(seq: SeqNum, ack: SeqNum, payload: &[u8]) -> Segment<'_> {
    Segment {
        src_port: 40_000,
        dst_port: 80,
        seq,
        ack,
        flags: ack_flags(),
        window: u16::MAX,
        options: Options::default(),
        payload,
    }
}

/// Template: the client's SYN with the given options.
pub(crate) fn syn(options: Options) -> Segment<'static> {
    Segment {
        src_port: 40_000,
        dst_port: 80,
        seq: SeqNum(CISN),
        ack: SeqNum(0),
        flags: Flags {
            syn: true,
            ..Flags::default()
        },
        window: u16::MAX,
        options,
        payload: &[],
    }
}

pub(crate) fn opts_all() -> Options {
    Options {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((1_000, 0)),
        ..Options::default()
    }
}

pub(crate) fn opts_mss(mss: u16) -> Options {
    Options {
        mss: Some(mss),
        ..Options::default()
    }
}

pub(crate) fn listener(config: TcpConfig) -> Listener {
    Listener::new(config, *b"baton-test-key!!")
}

/// A server TCB in SYN-RECEIVED for `syn`, and its SYN-ACK.
pub(crate) fn syn_received(fx: &Fx, config: TcpConfig, syn: &Segment) -> (Tcb, OutSegment) {
    let mut l = listener(config);
    let mut tcb = match l.on_syn(fx.at(0), tuple(), syn, 0, 128) {
        SynOutcome::Tcb(t) => t,
        other => panic!("expected a TCB, got {other:?}"),
    };
    let synack = recv!(tcb, fx.at(0));
    (tcb, synack)
}

/// A server TCB in ESTABLISHED (client SYN with `options`, handshake
/// completed at t = 1 ms). Returns the TCB and the server's ISS; the
/// Established event is consumed.
pub(crate) fn established_with(fx: &Fx, config: TcpConfig, options: Options) -> (Tcb, SeqNum) {
    let (mut tcb, synack) = syn_received(fx, config, &syn(options));
    let iss = synack.seq;
    let mut ack = seg(SeqNum(CISN + 1), iss + 1, &[]);
    if let Some((tsval, _)) = options.timestamps {
        ack.options.timestamps = Some((tsval + 1, synack.options.timestamps.map_or(0, |t| t.0)));
    }
    send!(tcb, fx.at(1), ack);
    assert_eq!(tcb.state(), State::Established);
    assert_eq!(tcb.poll_event(), Some(Event::Established));
    (tcb, iss)
}

/// ESTABLISHED without timestamps, SACK or scaling; MSS 1460.
pub(crate) fn established(fx: &Fx) -> (Tcb, SeqNum) {
    established_with(fx, TcpConfig::default(), opts_mss(1460))
}

/// All events queued.
pub(crate) fn events(tcb: &mut Tcb) -> Vec<Event> {
    std::iter::from_fn(|| tcb.poll_event()).collect()
}

/// All segments the TCB wants to send now.
pub(crate) fn drain(tcb: &mut Tcb, now: Instant) -> Vec<OutSegment> {
    std::iter::from_fn(|| tcb.poll_transmit(now)).collect()
}

pub(crate) fn payload(s: &OutSegment) -> Vec<u8> {
    s.payload.iter().flat_map(|b| b.iter().copied()).collect()
}

/// Bytes 0, 1, 2, … as a payload source.
pub(crate) fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A worker holds up to ~300,000 TCBs (issue 3): an idle one must stay
/// small. Buffers grow only while data is queued; events owed are flags
/// (680 bytes with the event queue); timers and remembered moments are
/// 4-byte ticks on the TCB's clock (664 bytes with `Instant`s); the tuple
/// is packed (576 bytes with two `SocketAddr`s); out-of-order data is
/// boxed while held and counts of segments are u32 (552 bytes before);
/// the send queue's parts and the receive buffer are boxed while they
/// hold bytes (504 before).
#[test]
fn an_idle_tcb_stays_small() {
    let size = std::mem::size_of::<Tcb>();
    eprintln!("size_of::<Tcb>() = {size}");
    assert!(size <= 432, "size_of::<Tcb>() = {size}");
}

/// An idle keep-alive connection — a request read, its response sent and
/// acknowledged — keeps no receive buffer, no chunk list, no event queue:
/// no heap at all (issue 19).
#[test]
fn an_idle_keep_alive_tcb_gives_its_buffers_back() {
    let fx = Fx::new();
    let (mut tcb, iss) = established(&fx);
    let request = b"GET /1K.bin HTTP/1.1\r\nHost: lab\r\n\r\n";
    send!(tcb, fx.at(2), seg(SeqNum(CISN + 1), iss + 1, request));
    events(&mut tcb);
    let mut buf = [0u8; 256];
    assert_eq!(tcb.recv(&mut buf), request.len());
    tcb.send(bytes::Bytes::from(vec![b'x'; 1247])).unwrap();
    let out = drain(&mut tcb, fx.at(3));
    let sent: usize = out.iter().map(|s| payload(s).len()).sum();
    assert_eq!(sent, 1247);
    let acked = iss + 1 + sent as u32;
    send!(
        tcb,
        fx.at(4),
        seg(SeqNum(CISN + 1) + request.len() as u32, acked, &[])
    );
    events(&mut tcb);
    let heap = tcb.heap_bytes();
    eprintln!(
        "an idle keep-alive TCB: {size} B + {heap} B of heap",
        size = std::mem::size_of::<Tcb>()
    );
    assert_eq!(heap, 0, "an idle TCB holds heap");
    // The next request allocates again, as it must.
    send!(
        tcb,
        fx.at(5),
        seg(SeqNum(CISN + 1) + request.len() as u32, acked, request)
    );
    assert!(tcb.heap_bytes() > heap);
    assert_eq!(tcb.recv(&mut buf), request.len());
}
