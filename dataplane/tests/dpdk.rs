//! The DPDK port on `net_af_packet` against a real Linux peer: a client
//! namespace pings a box namespace whose `front0` is driven by DPDK; the
//! port sees the client's ARP requests, its crafted ARP reply is learned by
//! the client's kernel (so the pings follow), and with two queue pairs every
//! TCP flow reaches the worker [`worker_for_remote`] names although the
//! PMD's kernel fanout hashes with a key we do not know.
//!
//! One EAL per process, so the phases run in one test, in order. Needs root
//! (namespaces, raw sockets); fails loudly otherwise.
#![cfg(feature = "dpdk")]

mod common;

use baton_dataplane::port::afpacket::{AfPacketConfig, AfPacketPort};
use baton_dataplane::port::dpdk::{DpdkEal, DpdkError, DpdkOptions, DpdkPort};
use baton_dataplane::port::{worker_for_remote, Port, TxBatch};
use baton_dataplane::wire::ethernet::{self, MacAddr};
use baton_dataplane::wire::ipv4;
use common::wire::{arp_reply, arp_request_for, syn, tcp_frame_between, CLIENT, SERVICE};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The client's SYN from `sport`, Ethernet `src` → `dst`.
fn syn_frame(src: MacAddr, dst: MacAddr, sport: u16) -> Vec<u8> {
    tcp_frame_between(src, dst, &syn(sport, 1000, 1000))
}

/// What the box saw of the client, per worker.
#[derive(Debug, Default)]
struct Seen {
    arp_requests: Vec<(usize, MacAddr)>,
    echo_requests: Vec<usize>,
    syns: Vec<(usize, u16)>,
}

fn poll_all(ports: &mut [DpdkPort], seen: &mut Seen) {
    for (w, port) in ports.iter_mut().enumerate() {
        port.wait(Some(Duration::from_millis(1)), None).unwrap();
        port.rx_burst(64, |frame, _meta| {
            if let Some(a) = arp_request_for(frame, SERVICE) {
                seen.arp_requests.push((w, a.sender_mac));
                return;
            }
            let Ok((eh, rest)) = ethernet::parse(frame) else {
                return;
            };
            if eh.ethertype == ethernet::ETHERTYPE_ARP {
                return;
            }
            if let Ok((ih, l4)) = ipv4::parse(rest) {
                if ih.dst == SERVICE && ih.protocol == ipv4::PROTO_ICMP && l4.first() == Some(&8) {
                    seen.echo_requests.push(w);
                } else if ih.dst == SERVICE && ih.protocol == ipv4::PROTO_TCP && l4.len() >= 2 {
                    seen.syns.push((w, u16::from_be_bytes([l4[0], l4[1]])));
                }
            }
        })
        .unwrap();
    }
}

/// The CPUs the calling thread may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size is that of `set`.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(r, 0);
    // SAFETY: reading bits of an initialised set.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

#[test]
fn dpdk_port_receives_the_client_and_the_client_learns_its_arp_reply() {
    let lab = common::Lab::new("dk");
    let client_ns = lab.client.name.clone();
    let client_ns_path = lab.client.path();
    let front_mac = lab.boxns.mac_of("front0");
    let client_mac = lab.client.mac_of("eth0");
    let (seen, box_mac, steered) = lab.boxns.run(move || {
        let mut opts = DpdkOptions::af_packet("front0", 2);
        opts.file_prefix = format!("btdk{}", std::process::id());
        let started = Instant::now();
        let cpus_before = allowed_cpus();
        let mut ports = DpdkPort::open_with(&opts).expect("EAL and net_af_packet0 on front0");
        eprintln!("EAL init + device start: {:?}", started.elapsed());
        assert_eq!(
            allowed_cpus(),
            cpus_before,
            "rte_eal_init pins its caller to the main lcore; the caller's CPUs come back"
        );
        assert_eq!(ports.len(), 2, "one port per queue pair");
        assert_eq!(ports[1].queue(), 1);
        let box_mac = ports[0].mac();
        assert_eq!(box_mac, ports[1].mac(), "queues share the device's MAC");

        // Phase 1: the client's kernel resolves 198.18.0.11 by ARP; we
        // answer from the DPDK port, and its pings follow.
        let mut ping = common::spawn_quiet_in(
            &client_ns,
            &[
                "ping",
                "-c",
                "3",
                "-i",
                "0.2",
                "-W",
                "1",
                &SERVICE.to_string(),
            ],
        );
        let mut seen = Seen::default();
        let mut answered = 0;
        let deadline = Instant::now() + Duration::from_secs(8);
        while seen.echo_requests.len() < 3 && Instant::now() < deadline {
            poll_all(&mut ports, &mut seen);
            while answered < seen.arp_requests.len() {
                let (_, mac) = seen.arp_requests[answered];
                let mut tx = TxBatch::new();
                tx.push(&arp_reply(box_mac, SERVICE, mac, CLIENT));
                assert_eq!(
                    ports[0].tx_burst(&mut tx).unwrap(),
                    1,
                    "the device takes the reply"
                );
                assert!(tx.is_empty(), "tx_burst clears the batch");
                answered += 1;
            }
        }
        let _ = ping.kill();
        let _ = ping.wait();

        // Phase 2: 60 TCP flows from the client; each must reach the
        // worker the dataplane's rule names, whatever queue the kernel's
        // fanout hash put it on.
        let mut sender = common::run_in(client_ns_path, || {
            AfPacketPort::open(&AfPacketConfig::new("eth0")).expect("client AF_PACKET socket")
        });
        let mut tx = TxBatch::new();
        let sports: Vec<u16> = (0..60).map(|i| 41000 + i * 11).collect();
        for &p in &sports {
            tx.push(&syn_frame(sender.mac(), box_mac, p));
        }
        assert_eq!(sender.tx_burst(&mut tx).unwrap(), sports.len());
        let deadline = Instant::now() + Duration::from_secs(3);
        while seen.syns.len() < sports.len() && Instant::now() < deadline {
            poll_all(&mut ports, &mut seen);
        }
        let steered: u64 = ports.iter().map(|p| p.stats().steered_out).sum();

        // Phase 2b: a worker asleep in wait() is woken when another queue
        // steers frames to it, not at the end of its sleep. Worker 1 sleeps
        // (up to 3 s) on its eventfd; the client opens 40 flows that worker
        // 1 owns; those the kernel hashes to queue 0 are steered and must
        // wake it.
        let mine: Vec<u16> = (0..2000u16)
            .map(|i| 43000 + i)
            .filter(|&p| worker_for_remote(IpAddr::V4(CLIENT), p, 2) == 1)
            .take(40)
            .collect();
        let (p0, p1) = ports.split_at_mut(1);
        let (p0, p1) = (&mut p0[0], &mut p1[0]);
        p1.set_idle_sleep(Duration::from_secs(3));
        let steered_before = p0.stats().steered_out;
        let (slept, signalled, got_after_wake) = std::thread::scope(|sc| {
            let sleeper = sc.spawn(move || {
                // SAFETY: a fresh eventfd, closed below.
                let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
                assert!(efd >= 0);
                let t = Instant::now();
                p1.wait(Some(Duration::from_secs(3)), Some(efd)).unwrap();
                let slept = t.elapsed();
                // What the steering queue wrote to our eventfd: a readable
                // eventfd ends the wait at once, so a count here proves
                // the wait was cut short by the steering, clock aside.
                let mut signalled = 0u64;
                // SAFETY: reading 8 bytes into a u64 from our non-blocking eventfd.
                unsafe { libc::read(efd, (&mut signalled as *mut u64).cast(), 8) };
                let mut n = 0;
                p1.rx_burst(64, |_, _| n += 1).unwrap();
                // SAFETY: ours.
                unsafe { libc::close(efd) };
                (slept, signalled, n)
            });
            // Let the sleeper get into its sleep first.
            std::thread::sleep(Duration::from_millis(200));
            let mut tx = TxBatch::new();
            for &p in &mine {
                tx.push(&syn_frame(sender.mac(), box_mac, p));
            }
            assert_eq!(sender.tx_burst(&mut tx).unwrap(), mine.len());
            let deadline = Instant::now() + Duration::from_secs(2);
            while p0.stats().steered_out == steered_before && Instant::now() < deadline {
                p0.rx_burst(64, |_, _| {}).unwrap();
            }
            sleeper.join().unwrap()
        });
        assert!(
            p0.stats().steered_out > steered_before,
            "some of worker 1's flows were hashed to queue 0 and steered"
        );
        assert!(
            signalled > 0,
            "the steering did not signal the sleeping worker's eventfd (it slept {slept:?} of 3 s)"
        );
        assert!(
            got_after_wake > 0,
            "the woken worker found the steered frames"
        );

        // Phase 3: the EAL is per process: the same arguments join it,
        // other arguments are refused with a clear error.
        let again = DpdkEal::init(&opts.eal_args()).expect("same arguments join the running EAL");
        assert_eq!(again.args(), opts.eal_args().as_slice());
        let mut other = opts.clone();
        other.file_prefix = "btother".into();
        match DpdkEal::from_options(&other) {
            Err(DpdkError::EalArgsDiffer { .. }) => {}
            r => panic!("a second EAL with other arguments must be refused, got {r:?}"),
        }

        // Phase 4: closing the device and opening it again works (the
        // vdev is unplugged on close and plugged again from the EAL's
        // --vdev argument).
        drop(ports);
        let ports = DpdkPort::open_with(&opts).expect("reopen after close");
        assert_eq!(ports[0].mac(), box_mac);
        (seen, box_mac, steered)
    });

    assert_eq!(
        box_mac.to_string().to_lowercase(),
        front_mac,
        "the port's MAC is front0's (rte_eth_macaddr_get)"
    );
    assert!(
        seen.arp_requests
            .iter()
            .any(|(_, m)| m.to_string().to_lowercase() == client_mac),
        "the client's ARP request for {SERVICE} arrived: {seen:?}"
    );
    assert!(
        seen.arp_requests.iter().all(|(w, _)| *w == 0)
            && seen.echo_requests.iter().all(|w| *w == 0),
        "ARP and ICMP go to worker 0 (the fanout rule): {seen:?}"
    );
    let neigh = lab.client.neigh(&SERVICE.to_string());
    assert!(
        neigh.contains(&front_mac),
        "the client learned our ARP reply: `ip neigh` says {neigh:?}"
    );
    assert!(
        !seen.echo_requests.is_empty(),
        "the client's pings followed the ARP reply: {seen:?}"
    );
    assert_eq!(
        seen.syns.len(),
        60,
        "every SYN arrives exactly once: {seen:?}"
    );
    for (w, p) in &seen.syns {
        assert_eq!(
            *w,
            worker_for_remote(IpAddr::V4(CLIENT), *p, 2),
            "flow from port {p} reached its owner"
        );
    }
    let used: std::collections::BTreeSet<usize> = seen.syns.iter().map(|s| s.0).collect();
    assert_eq!(used.len(), 2, "flows spread over both workers");
    assert!(
        steered > 0,
        "the kernel's hash put some flows on the other queue and the port steered them"
    );
}
