//! The worker over an in-memory port: ARP, ICMP, TCP to a closed port,
//! connection limits, malformed frames, and a whole download driven by a
//! client TCB — no root, no sockets.

mod common;

use baton_dataplane::port::memory::MemoryPort;
use baton_dataplane::port::RxMeta;
use baton_dataplane::responder::Responder;
use baton_dataplane::tcp::{Flags, FourTuple, OutSegment, SeqNum, State, Tcb, TcpConfig};
use baton_dataplane::wire::ethernet::{self, MacAddr};
use baton_dataplane::wire::{arp, checksum, icmp, ipv4};
use baton_dataplane::worker::{Command, Worker, WorkerConfig};
use bytes::Bytes;
use common::memnet::{body_start, recv_into, responder_net};
use common::wire::{
    arp_request, arp_request_for, client_eth, client_ipv4, client_tcp, tcp_frame_from, tcp_of,
    BOX_MAC, CLIENT, CLIENT_MAC, SERVICE,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

type TestWorker = Worker<MemoryPort, Responder>;

/// The object `/obj`: 300,000 bytes, more than the 256 KiB send buffer.
fn obj() -> Bytes {
    Bytes::from(
        (0..300_000u32)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
}

fn setup(cfg: impl FnOnce(&mut WorkerConfig)) -> (TestWorker, MemoryPort, Instant) {
    let net = responder_net("obj", obj(), cfg);
    (net.worker, net.wire, net.now)
}

fn syn(port: u16) -> OutSegment {
    common::wire::syn(port, 5000, 65535)
}

/// Parsed TCP segments the worker sent: (flags, src port, dst port).
fn sent_tcp(wire: &mut MemoryPort) -> Vec<(Flags, u16, u16)> {
    wire.drain()
        .iter()
        .filter_map(|f| {
            let (eh, s) = tcp_of(f)?;
            assert_eq!(eh.src, BOX_MAC);
            Some((s.flags, s.src_port, s.dst_port))
        })
        .collect()
}

#[test]
fn arp_request_for_service_ip_is_answered_and_others_are_not() {
    let (mut w, mut wire, now) = setup(|_| {});
    for target in [SERVICE, Ipv4Addr::new(198, 18, 0, 12)] {
        w.handle_frame(
            &arp_request(CLIENT_MAC, CLIENT, target),
            RxMeta::default(),
            now,
        );
    }
    w.poll(now).unwrap();
    let out = wire.drain();
    assert_eq!(out.len(), 1, "only the service address is answered");
    let (eh, p) = ethernet::parse(&out[0]).unwrap();
    assert_eq!(eh.dst, CLIENT_MAC);
    let r = arp::parse(p).unwrap();
    assert_eq!(
        (r.op, r.sender_ip, r.sender_mac, r.target_ip),
        (arp::OP_REPLY, SERVICE, BOX_MAC, CLIENT)
    );
    assert_eq!(w.counters().arp_replies_sent, 1);
    assert_eq!(w.counters().arp_not_for_us, 1);
}

#[test]
fn echo_request_gets_echo_reply_with_same_payload() {
    let (mut w, mut wire, now) = setup(|_| {});
    let mut m = vec![icmp::TYPE_ECHO_REQUEST, 0, 0, 0, 0, 7, 0, 1];
    m.extend_from_slice(b"payload!");
    let c = checksum::checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    wire.send(client_ipv4(ipv4::PROTO_ICMP, &m)).unwrap();
    w.poll(now).unwrap();
    let out = wire.drain();
    assert_eq!(out.len(), 1);
    let (eh, p) = ethernet::parse(&out[0]).unwrap();
    assert_eq!(
        eh.dst, CLIENT_MAC,
        "reply goes to the MAC learned from the request"
    );
    let (ih, l4) = ipv4::parse(p).unwrap();
    assert_eq!((ih.src, ih.dst), (SERVICE, CLIENT));
    let r = icmp::parse(l4).unwrap();
    assert_eq!(
        (r.ty, r.ident, r.seq, r.data),
        (icmp::TYPE_ECHO_REPLY, 7, 1, &b"payload!"[..])
    );
}

#[test]
fn gratuitous_arp_goes_out_on_announce() {
    let (mut w, mut wire, now) = setup(|_| {});
    assert!(w.command(Command::Announce(IpAddr::V4(SERVICE)), now));
    w.poll(now).unwrap();
    let out = wire.drain();
    assert_eq!(out.len(), 1);
    let (eh, p) = ethernet::parse(&out[0]).unwrap();
    assert!(eh.dst.is_broadcast());
    let a = arp::parse(p).unwrap();
    assert_eq!(
        (a.sender_ip, a.target_ip, a.sender_mac),
        (SERVICE, SERVICE, BOX_MAC)
    );
}

#[test]
fn syn_to_closed_port_gets_rst_ack() {
    let (mut w, mut wire, now) = setup(|_| {});
    let mut s = syn(40000);
    s.dst_port = 8080;
    wire.send(client_tcp(&s)).unwrap();
    w.poll(now).unwrap();
    let out = sent_tcp(&mut wire);
    assert_eq!(out.len(), 1);
    assert!(
        out[0].0.rst && out[0].0.ack,
        "RST,ACK per RFC 9293 §3.10.7.1"
    );
    assert_eq!((out[0].1, out[0].2), (8080, 40000));
    assert_eq!(w.counters().tcp_no_listener, 1);
    assert_eq!(w.connections(), 0);
}

#[test]
fn syns_beyond_max_connections_are_dropped_and_counted() {
    let (mut w, mut wire, now) = setup(|c| c.max_connections = 2);
    for p in [40000, 40002, 40004] {
        wire.send(client_tcp(&syn(p))).unwrap();
    }
    w.poll(now).unwrap();
    let out = sent_tcp(&mut wire);
    assert_eq!(
        out.iter().filter(|s| s.0.syn && s.0.ack).count(),
        2,
        "two SYN-ACKs"
    );
    assert_eq!(w.counters().drop_tcp_max_connections, 1);
    assert_eq!(w.connections(), 2);
}

#[test]
fn syns_beyond_the_per_client_cap_are_dropped_and_other_clients_still_served() {
    let (mut w, mut wire, now) = setup(|c| c.max_connections_per_client = 2);
    for p in [40000, 40002, 40004] {
        wire.send(client_tcp(&syn(p))).unwrap();
    }
    let other = Ipv4Addr::new(198, 18, 0, 101);
    let other_mac = MacAddr([2, 0, 0, 0, 0, 0x65]);
    w.handle_frame(
        &tcp_frame_from(other_mac, other, &syn(40006)),
        RxMeta::default(),
        now,
    );
    w.poll(now).unwrap();
    let out = sent_tcp(&mut wire);
    let mut synacks: Vec<u16> = out
        .iter()
        .filter(|s| s.0.syn && s.0.ack)
        .map(|s| s.2)
        .collect();
    synacks.sort();
    assert_eq!(
        synacks,
        vec![40000, 40002, 40006],
        "the third SYN of one client is dropped"
    );
    assert_eq!(w.counters().drop_tcp_client_limit, 1);
    assert_eq!(w.counters().drop_tcp_max_connections, 0);
    assert_eq!(w.connections(), 3);
    // Its retransmitted SYN too, no RST (it may come back later).
    wire.send(client_tcp(&syn(40004))).unwrap();
    w.poll(now).unwrap();
    assert!(sent_tcp(&mut wire).is_empty());
    assert_eq!(w.counters().drop_tcp_client_limit, 2);
}

#[test]
fn full_syn_backlog_answers_with_stateless_cookies() {
    let (mut w, mut wire, now) = setup(|c| c.syn_backlog = 2);
    for p in 0..5u16 {
        wire.send(client_tcp(&syn(41000 + p))).unwrap();
    }
    w.poll(now).unwrap();
    let out = sent_tcp(&mut wire);
    assert_eq!(
        out.iter().filter(|s| s.0.syn && s.0.ack).count(),
        5,
        "every SYN answered"
    );
    assert_eq!(w.connections(), 2, "only the backlog holds state");
    assert_eq!(w.counters().tcp_syn_backlog_full, 3);
    assert_eq!(w.stats().half_open, 2);
}

#[test]
fn malformed_frames_are_counted_under_their_reason_and_never_answered() {
    let (mut w, mut wire, now) = setup(|_| {});
    let good = client_tcp(&syn(40000));
    let mut bad_ip_sum = good.clone();
    bad_ip_sum[14 + 10] ^= 0xff;
    let mut bad_tcp_sum = good.clone();
    bad_tcp_sum[14 + 20 + 16] ^= 0xff;
    let mut ihl_beyond = good.clone();
    ihl_beyond[14] = 0x4f;
    let mut total_beyond = good.clone();
    total_beyond[14 + 2..14 + 4].copy_from_slice(&1400u16.to_be_bytes());
    let mut syn_fin = syn(40000);
    syn_fin.flags.fin = true;
    let mut frag = good.clone();
    frag[14 + 6] = 0x20;
    let fix = |f: &mut Vec<u8>| {
        f[24] = 0;
        f[25] = 0;
        let c = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    };
    fix(&mut total_beyond);
    fix(&mut frag);
    let frames = vec![
        good[..10].to_vec(),
        good[..14 + 12].to_vec(),
        bad_ip_sum,
        bad_tcp_sum,
        ihl_beyond,
        total_beyond,
        frag,
        client_tcp(&syn_fin),
        client_eth(
            MacAddr([2, 9, 9, 9, 9, 9]),
            ethernet::ETHERTYPE_IPV4,
            &good[14..],
        ),
        client_eth(BOX_MAC, 0x8100, &[0; 46]),
    ];
    for f in &frames {
        w.handle_frame(f, RxMeta::default(), now);
    }
    w.poll(now).unwrap();
    assert!(wire.drain().is_empty(), "nothing answered");
    let c = w.counters();
    assert_eq!(c.drop_eth_truncated, 1);
    assert_eq!(
        c.drop_ipv4_truncated, 2,
        "short header and IHL beyond the frame"
    );
    assert_eq!(c.drop_ipv4_bad_checksum, 1);
    assert_eq!(c.drop_tcp_bad_checksum, 1);
    assert_eq!(c.drop_ipv4_bad_length, 1);
    assert_eq!(c.drop_ipv4_fragment, 1);
    assert_eq!(c.drop_tcp_bad_flags, 1);
    assert_eq!(c.drop_eth_not_for_us, 1);
    assert_eq!(c.drop_eth_unknown_type, 1);
    assert_eq!(c.total_drops(), frames.len() as u64);
    assert_eq!(w.connections(), 0);
}

#[test]
fn trusted_checksum_frames_are_accepted_without_verification() {
    // A veth peer leaves the TCP checksum to offload (TP_STATUS_CSUMNOTREADY).
    let (mut w, mut wire, now) = setup(|_| {});
    let mut f = client_tcp(&syn(40000));
    f[14 + 20 + 16] ^= 0x55;
    w.handle_frame(
        &f,
        RxMeta {
            checksum_trusted: true,
        },
        now,
    );
    w.poll(now).unwrap();
    assert_eq!(
        sent_tcp(&mut wire)
            .iter()
            .filter(|s| s.0.syn && s.0.ack)
            .count(),
        1
    );
}

/// Drives a client TCB against the worker (simulated clock) until it has
/// `want` bytes after the response head or `ms` milliseconds pass;
/// `half_close` sends the client's FIN right after its request.
fn download(half_close: bool, ms: u32) -> (Vec<u8>, TestWorker, Tcb) {
    let mut net = responder_net("obj", obj(), |_| {});
    let tuple = FourTuple {
        local: SocketAddr::new(IpAddr::V4(CLIENT), 40123),
        remote: SocketAddr::new(IpAddr::V4(SERVICE), 80),
    };
    let mut client = Tcb::connect(net.now, TcpConfig::default(), tuple, SeqNum(0xffff_f000));
    let mut got = Vec::new();
    let mut requested = false;
    for _ in 0..ms {
        net.step(&mut client);
        while client.poll_event().is_some() {}
        if client.state() == State::Established && !requested {
            client
                .send(Bytes::from_static(b"GET /obj HTTP/1.1\r\nHost: x\r\n\r\n"))
                .unwrap();
            if half_close {
                client.close();
            }
            requested = true;
        }
        recv_into(&mut client, &mut got);
        if let Some(b) = body_start(&got) {
            if got.len() - b >= 300_000
                && (!half_close
                    || client.state() == State::Closed
                    || client.state() == State::TimeWait)
            {
                break;
            }
        }
        net.tick(&mut client);
    }
    (got, net.worker, client)
}

fn assert_body(got: &[u8]) {
    let b = body_start(got).expect("response head");
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let body = &got[b..];
    assert_eq!(body.len(), 300_000);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, &b)| b == (i as u32 * 31 % 251) as u8),
        "body intact"
    );
}

#[test]
fn client_tcb_downloads_an_object_through_the_worker() {
    let (got, w, _) = download(false, 20_000);
    assert_body(&got);
    assert_eq!(w.counters().tcp_accepted, 1);
    assert_eq!(w.app().requests, 1);
}

#[test]
fn half_closed_client_still_gets_the_whole_response_then_a_fin() {
    // 300 KB exceeds the 256 KiB send buffer: the responder must keep
    // pumping after the client's FIN and close only at the end.
    let (got, w, client) = download(true, 20_000);
    assert_body(&got);
    assert!(
        matches!(client.state(), State::Closed | State::TimeWait),
        "server closed too: {:?}",
        client.state()
    );
    assert_eq!(w.app().requests, 1);
}

#[test]
fn draining_worker_drops_new_syns_but_keeps_serving_existing_connections() {
    let (mut w, mut wire, now) = setup(|_| {});
    wire.send(client_tcp(&syn(40000))).unwrap();
    w.poll(now).unwrap();
    assert_eq!(sent_tcp(&mut wire).len(), 1, "SYN-ACK before draining");
    assert!(w.command(Command::Drain(true), now));
    wire.send(client_tcp(&syn(40002))).unwrap();
    // A retransmitted SYN of the existing half-open connection is still its own.
    wire.send(client_tcp(&syn(40000))).unwrap();
    w.poll(now).unwrap();
    let out = sent_tcp(&mut wire);
    assert!(
        out.iter().all(|s| s.2 == 40000),
        "nothing sent to the new client: {out:?}"
    );
    assert_eq!(w.counters().drop_tcp_draining, 1);
    assert_eq!(w.connections(), 1);
    assert!(w.command(Command::Drain(false), now));
    wire.send(client_tcp(&syn(40002))).unwrap();
    w.poll(now).unwrap();
    assert_eq!(w.connections(), 2, "accepting again");
}

/// Issue 13: spoofed sources used to fill the neighbour cache (learned from
/// any frame, never evicted), after which a new client was never answered.
#[test]
fn a_flood_of_spoofed_sources_does_not_stop_a_new_client_from_being_answered() {
    let (mut w, mut wire, now) = setup(|_| {});
    let cap = baton_dataplane::neighbour::DEFAULT_CAPACITY;
    let n = cap + 1_000;
    let src = |i: usize| {
        let ip = Ipv4Addr::from(0xc613_0000u32 + i as u32); // 198.19/16 on
        let mac = MacAddr([2, 1, (i >> 16) as u8, (i >> 8) as u8, i as u8, 0]);
        (ip, mac)
    };
    // A SYN flood from sources nobody can prove: each is answered (the
    // backlog, then cookies), none is learned.
    for i in 0..n {
        let (ip, mac) = src(i);
        let s = syn(1024 + (i % 60_000) as u16);
        w.handle_frame(&tcp_frame_from(mac, ip, &s), RxMeta::default(), now);
        if i % 64 == 63 {
            w.poll(now).unwrap();
            wire.drain();
        }
    }
    w.poll(now).unwrap();
    wire.drain();
    assert_eq!(w.stats().neighbours, 0, "a bare SYN teaches nothing");
    assert_eq!(w.counters().neighbour_learn_refused, n as u64);
    // An ARP flood addressed to us (learnable: the senders say who they
    // are) past the cache's capacity: the oldest entries make room.
    for i in 0..n {
        let (ip, mac) = src(i);
        w.handle_frame(&arp_request(mac, ip, SERVICE), RxMeta::default(), now);
        if i % 64 == 63 {
            w.poll(now).unwrap();
            wire.drain();
        }
    }
    w.poll(now).unwrap();
    wire.drain();
    assert_eq!(w.stats().neighbours, cap, "bounded");
    assert_eq!(w.counters().neighbour_evicted, (n - cap) as u64);
    // A new, real client: its SYN (the backlog is full of the flood's
    // half-open connections, so a cookie) is answered at its own MAC with
    // no ARP round trip, and the request in its ACK is served.
    let later = now + std::time::Duration::from_secs(1);
    wire.send(client_tcp(&syn(40_000))).unwrap();
    w.poll(later).unwrap();
    let out = wire.drain();
    let synack = out
        .iter()
        .filter_map(|f| tcp_of(f))
        .find(|(eh, s)| eh.dst == CLIENT_MAC && s.flags.syn && s.flags.ack && s.dst_port == 40_000)
        .map(|(_, s)| s.seq)
        .expect("the new client's SYN is answered at its MAC");
    assert!(out.iter().all(|f| arp_request_for(f, CLIENT).is_none()));
    let req = b"GET /obj HTTP/1.1\r\nHost: t\r\n\r\n";
    let ack = OutSegment {
        src_port: 40_000,
        dst_port: 80,
        seq: SeqNum(5001),
        ack: synack + 1,
        flags: Flags {
            ack: true,
            psh: true,
            ..Flags::default()
        },
        window: 65_535,
        payload: vec![Bytes::from_static(req)],
        ..OutSegment::default()
    };
    wire.send(client_tcp(&ack)).unwrap();
    let evicted = w.counters().neighbour_evicted;
    w.poll(later).unwrap();
    w.poll(later).unwrap();
    let out = wire.drain();
    let data: usize = out
        .iter()
        .filter_map(|f| tcp_of(f))
        .filter(|(eh, s)| eh.dst == CLIENT_MAC && s.dst_port == 40_000)
        .map(|(_, s)| s.payload.len())
        .sum();
    assert!(data > 0, "the response goes out to the client");
    assert_eq!(w.counters().tcp_accepted, 1);
    // The completed handshake taught the cache: one flood entry went.
    assert_eq!(w.counters().neighbour_evicted, evicted + 1);
    assert_eq!(w.stats().neighbours, cap);
}

#[test]
fn arp_for_another_address_teaches_the_cache_nothing() {
    let (mut w, mut wire, now) = setup(|_| {});
    let stranger = MacAddr([2, 0, 0, 0, 0, 0x77]);
    let other = Ipv4Addr::new(198, 18, 0, 77);
    w.handle_frame(
        &arp_request(stranger, other, Ipv4Addr::new(198, 18, 0, 12)),
        RxMeta::default(),
        now,
    );
    w.poll(now).unwrap();
    assert!(wire.drain().is_empty(), "not ours: not answered");
    assert_eq!(w.stats().neighbours, 0);
    assert_eq!(w.counters().neighbour_learn_refused, 1);
    // The same sender asking for our address is learned (RFC 826 merge).
    w.handle_frame(
        &arp_request(stranger, other, SERVICE),
        RxMeta::default(),
        now,
    );
    assert_eq!(w.stats().neighbours, 1);
}

/// A forged segment for a live connection, from the client's address but
/// another MAC and outside the window, must not redirect the connection's
/// frames (cache poisoning).
#[test]
fn an_unacceptable_segment_does_not_move_a_clients_mac() {
    let (mut w, mut wire, now) = setup(|_| {});
    wire.send(client_tcp(&syn(40_000))).unwrap();
    w.poll(now).unwrap();
    let synack = wire
        .drain()
        .iter()
        .filter_map(|f| tcp_of(f).map(|(_, s)| s.seq))
        .next()
        .expect("a SYN-ACK");
    let seg = |seq: u32, flags: Flags| OutSegment {
        src_port: 40_000,
        dst_port: 80,
        seq: SeqNum(seq),
        ack: synack + 1,
        flags,
        window: 65_535,
        ..OutSegment::default()
    };
    let ack = Flags {
        ack: true,
        ..Flags::default()
    };
    wire.send(client_tcp(&seg(5001, ack))).unwrap();
    w.poll(now).unwrap();
    wire.drain();
    assert_eq!(w.counters().tcp_accepted, 1);
    assert_eq!(w.stats().neighbours, 1, "the completed handshake taught it");
    let evil = MacAddr([2, 0, 0, 0, 0, 0x66]);
    let forged = tcp_frame_from(evil, CLIENT, &seg(5001 + 10_000_000, ack));
    let later = now + std::time::Duration::from_secs(2);
    w.handle_frame(&forged, RxMeta::default(), later);
    w.poll(later).unwrap();
    let out = wire.drain();
    let replies: Vec<MacAddr> = out
        .iter()
        .filter_map(|f| tcp_of(f))
        .map(|(eh, _)| eh.dst)
        .collect();
    // RFC 9293 §3.10.7.4: an unacceptable segment gets an ACK, to the
    // client's real MAC.
    assert_eq!(replies, vec![CLIENT_MAC]);
}
