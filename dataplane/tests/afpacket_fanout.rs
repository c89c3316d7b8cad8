//! The kernel runs our fanout program: frames of a flow reach the socket
//! `worker_for` names. Needs root (namespaces); fails loudly otherwise.

mod common;

use baton_dataplane::port::afpacket::{AfPacketConfig, AfPacketPort, RxRing};
use baton_dataplane::port::{worker_for_remote, Port, TxBatch};
use baton_dataplane::wire::{ethernet, ipv4};
use common::wire::{arp_request, syn, tcp_frame_between, CLIENT, SERVICE};
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[test]
fn kernel_fanout_delivers_each_flow_to_the_worker_rust_computes() {
    fanout_matches_worker_for(RxRing::V3, "fo");
}

#[test]
fn kernel_fanout_with_tpacket_v2_rings_delivers_the_same_way() {
    fanout_matches_worker_for(RxRing::V2, "f2");
}

fn fanout_matches_worker_for(ring: RxRing, tag: &str) {
    let lab = common::Lab::new(tag);
    const N: usize = 3;
    let client_ns = lab.client.path();
    let result = lab.boxns.run(move || {
        let mut cfg = AfPacketConfig::new("front0");
        cfg.ring = ring;
        let mut workers = AfPacketPort::open_group(&cfg, N).expect("open fanout group");
        let box_mac = workers[0].mac();
        // Open the sender in the client namespace from this same thread.
        common::enter(&client_ns);
        let mut sender =
            AfPacketPort::open(&AfPacketConfig::new("eth0")).expect("open client port");
        let mut tx = TxBatch::new();
        let ports: Vec<u16> = (0..60).map(|i| 40000 + i * 7).collect();
        for &p in &ports {
            tx.push(&tcp_frame_between(
                sender.mac(),
                box_mac,
                &syn(p, 1000, 1000),
            ));
        }
        // A broadcast ARP request: not TCP, so worker 0.
        tx.push(&arp_request(sender.mac(), CLIENT, SERVICE));
        assert_eq!(sender.tx_burst(&mut tx).unwrap(), ports.len() + 1);

        let mut seen: Vec<(usize, Option<u16>, bool)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        while seen.len() < ports.len() + 1 && Instant::now() < deadline {
            for (w, port) in workers.iter_mut().enumerate() {
                port.wait(Some(Duration::from_millis(5)), None).unwrap();
                port.rx_burst(64, |frame, meta| {
                    let (eh, rest) = ethernet::parse(frame).unwrap();
                    if eh.ethertype == ethernet::ETHERTYPE_ARP {
                        seen.push((w, None, meta.checksum_trusted));
                    } else if let Ok((ih, l4)) = ipv4::parse(rest) {
                        if ih.protocol == ipv4::PROTO_TCP && l4.len() >= 2 {
                            seen.push((
                                w,
                                Some(u16::from_be_bytes([l4[0], l4[1]])),
                                meta.checksum_trusted,
                            ));
                        }
                    }
                })
                .unwrap();
            }
        }
        seen
    });
    assert_eq!(
        result.len(),
        61,
        "every frame arrives exactly once: {result:?}"
    );
    for (w, sport, _) in &result {
        let want = match sport {
            Some(p) => worker_for_remote(IpAddr::V4(CLIENT), *p, N),
            None => 0,
        };
        assert_eq!(*w, want, "frame from port {sport:?}");
    }
    let used: std::collections::BTreeSet<usize> = result.iter().map(|r| r.0).collect();
    assert_eq!(used.len(), N, "flows spread over every worker");
}
