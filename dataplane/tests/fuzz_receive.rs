//! The whole receive path (parse → dispatch → TCP → app → transmit) fed
//! arbitrary and mutated frames: it must never panic, must count every
//! frame, and everything it sends must be a well-formed frame. Bounded so
//! it runs in every `cargo test` (PROPTEST_CASES raises it for a longer
//! fuzzing run).

mod common;

use baton_dataplane::port::memory::MemoryPort;
use baton_dataplane::port::RxMeta;
use baton_dataplane::responder::Responder;
use baton_dataplane::tcp::{Flags, OutSegment, SeqNum};
use baton_dataplane::wire::ethernet;
use baton_dataplane::wire::{arp, checksum, icmp, ipv4, tcp};
use baton_dataplane::worker::Worker;
use bytes::Bytes;
use common::memnet::responder_net;
use common::wire::{arp_request, client_ipv4, client_tcp, BOX_MAC, CLIENT, CLIENT_MAC, SERVICE};
use proptest::prelude::*;
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn tcp_frame(sport: u16, seq: u32, ack: u32, flags: Flags, payload: &[u8]) -> Vec<u8> {
    client_tcp(&OutSegment {
        src_port: sport,
        dst_port: 80,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags,
        window: 65535,
        payload: vec![Bytes::copy_from_slice(payload)],
        ..OutSegment::default()
    })
}

/// Valid frames of every kind the worker handles, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let mut echo = vec![icmp::TYPE_ECHO_REQUEST, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3];
    let c = checksum::checksum(&echo);
    echo[2..4].copy_from_slice(&c.to_be_bytes());
    let syn = Flags {
        syn: true,
        ..Flags::default()
    };
    let ack = Flags {
        ack: true,
        ..Flags::default()
    };
    let psh = Flags {
        ack: true,
        psh: true,
        ..Flags::default()
    };
    let fin = Flags {
        ack: true,
        fin: true,
        ..Flags::default()
    };
    let rst = Flags {
        rst: true,
        ..Flags::default()
    };
    vec![
        arp_request(CLIENT_MAC, CLIENT, SERVICE),
        client_ipv4(ipv4::PROTO_ICMP, &echo),
        tcp_frame(40000, 1000, 0, syn, b""),
        tcp_frame(40000, 1001, 1, ack, b""),
        tcp_frame(40000, 1001, 1, psh, b"GET /o HTTP/1.1\r\n\r\n"),
        tcp_frame(40000, 1001, 1, fin, b""),
        tcp_frame(40000, 1001, 0, rst, b""),
    ]
}

fn worker() -> (Worker<MemoryPort, Responder>, MemoryPort) {
    let net = responder_net("o", Bytes::from(vec![7u8; 5000]), |_| {});
    (net.worker, net.wire)
}

/// Every frame the worker sends parses back with verified checksums.
fn assert_well_formed(out: Vec<Vec<u8>>) {
    for f in out {
        let (eh, p) = ethernet::parse(&f).expect("ethernet");
        assert_eq!(eh.src, BOX_MAC);
        match eh.ethertype {
            ethernet::ETHERTYPE_ARP => {
                arp::parse(p).expect("arp");
            }
            ethernet::ETHERTYPE_IPV4 => {
                let (ih, l4) = ipv4::parse(p).expect("ipv4");
                assert_eq!(ih.src, SERVICE);
                match ih.protocol {
                    ipv4::PROTO_TCP => {
                        tcp::parse(IpAddr::V4(ih.src), IpAddr::V4(ih.dst), l4, false).expect("tcp");
                    }
                    ipv4::PROTO_ICMP => {
                        icmp::parse(l4).expect("icmp");
                    }
                    p => panic!("unexpected protocol {p}"),
                }
            }
            t => panic!("unexpected ethertype {t:#x}"),
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Truncate(usize),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Mutation::Extend),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic_and_are_counted(
        frames in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..1600), any::<bool>()), 1..8)
    ) {
        let (mut w, mut wire) = worker();
        let now = Instant::now();
        for (f, trusted) in &frames {
            w.handle_frame(f, RxMeta { checksum_trusted: *trusted }, now);
        }
        w.poll(now).unwrap();
        prop_assert_eq!(w.counters().rx_frames, frames.len() as u64);
        assert_well_formed(wire.drain());
    }

    #[test]
    fn mutated_valid_frames_never_panic_and_replies_are_well_formed(
        picks in proptest::collection::vec((0usize..7, proptest::collection::vec(mutation(), 0..4), any::<bool>()), 1..24),
        tick_ms in 0u64..3000,
    ) {
        let seeds = seeds();
        let (mut w, mut wire) = worker();
        let t0 = Instant::now();
        let mut now = t0;
        for (i, (seed, muts, trusted)) in picks.iter().enumerate() {
            let mut f = seeds[*seed].clone();
            for m in muts {
                match m {
                    Mutation::Flip { at, xor } => {
                        if !f.is_empty() {
                            let n = f.len();
                            f[at % n] ^= xor;
                        }
                    }
                    Mutation::Truncate(n) => f.truncate(n % (f.len() + 1)),
                    Mutation::Extend(tail) => f.extend_from_slice(tail),
                }
            }
            // Trusted checksums let mutated TCP headers reach the state machine.
            w.handle_frame(&f, RxMeta { checksum_trusted: *trusted }, now);
            if i % 3 == 0 {
                w.poll(now).unwrap();
            }
            now += Duration::from_millis(tick_ms / 8);
        }
        w.poll(now).unwrap();
        // Let every timer of what was created run out.
        w.poll(t0 + Duration::from_secs(200)).unwrap();
        prop_assert_eq!(w.counters().rx_frames, picks.len() as u64);
        assert_well_formed(wire.drain());
    }
}
