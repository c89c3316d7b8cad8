//! Replication between two network namespaces joined by a veth pair, with
//! nftables dropping 10 % of the UDP datagrams in each direction: the same
//! kernel path the lab's back LAN uses, without the rest of the lab.
//!
//! Needs root (namespaces, nftables); fails loudly without it. Namespaces
//! are named `bt-shm-*` and removed by a drop guard even when the test
//! fails. Addresses come from 198.19.200.0/24 (RFC 2544 benchmarking range)
//! and exist only inside those namespaces.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_shmem::{Layout, ReplicationConfig, Replicator, Segment, SlotId};
use common::{http_record, same, TempSeg};

const KEY: &[u8] = b"baton-lab-cluster-key-0123456789";

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces `bt-shm-{a,b}-PID`, deleted on drop.
struct Namespaces {
    a: String,
    b: String,
}

impl Namespaces {
    fn new() -> Namespaces {
        let pid = std::process::id();
        let ns = Namespaces {
            a: format!("bt-shm-a-{pid}"),
            b: format!("bt-shm-b-{pid}"),
        };
        run(&["ip", "netns", "add", &ns.a]);
        run(&["ip", "netns", "add", &ns.b]);
        // The veth pair is created inside namespace a and its peer moved
        // straight into b: nothing ever appears in the root namespace.
        run(&[
            "ip", "-n", &ns.a, "link", "add", "back0", "type", "veth", "peer", "name", "back0",
            "netns", &ns.b,
        ]);
        for (n, addr) in [(&ns.a, "198.19.200.1/24"), (&ns.b, "198.19.200.2/24")] {
            run(&["ip", "-n", n, "addr", "add", addr, "dev", "back0"]);
            run(&["ip", "-n", n, "link", "set", "back0", "up"]);
            run(&["ip", "-n", n, "link", "set", "lo", "up"]);
            // 10 % loss of replication datagrams leaving this namespace.
            run(&[
                "ip", "netns", "exec", n, "nft",
                "add table inet btloss; add chain inet btloss out { type filter hook output priority 0; }; add rule inet btloss out udp dport 7400 numgen random mod 100 < 10 drop",
            ]);
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Binds a UDP socket inside namespace `ns` (setns on a helper thread, so
/// the test thread stays where it is).
fn bind_in(ns: &str, addr: SocketAddr) -> UdpSocket {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        // SAFETY: plain syscall on a valid fd; affects this thread only.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        UdpSocket::bind(addr).unwrap()
    })
    .join()
    .unwrap()
}

#[test]
fn replica_converges_between_namespaces_with_ten_percent_loss() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (network namespaces, nftables)"
    );
    let ns = Namespaces::new();
    let l = Layout {
        regions: 2,
        slots_per_region: 2_000,
        slot_size: baton_shmem::SLOT_SIZE as u32,
    };
    let (ta, tb) = (TempSeg::new("ns-a"), TempSeg::new("ns-b"));
    let (a, b) = (
        Segment::open_or_create(ta.path(), l).unwrap(),
        Segment::open_or_create(tb.path(), l).unwrap(),
    );
    let (aa, ab): (SocketAddr, SocketAddr) = (
        "198.19.200.1:7400".parse().unwrap(),
        "198.19.200.2:7400".parse().unwrap(),
    );
    let (sa, sb) = (bind_in(&ns.a, aa), bind_in(&ns.b, ab));
    let box0 = a.region(0).unwrap();
    box0.begin_epoch();
    b.region(1).unwrap().begin_epoch();
    let cfg = |me, peers| ReplicationConfig {
        me,
        key: KEY.to_vec(),
        peers,
    };
    let mut ra = Replicator::new(&a, cfg(0, vec![(1, ab)]), sa).unwrap();
    let mut rb = Replicator::new(&b, cfg(1, vec![(0, aa)]), sb).unwrap();
    let stats_b = rb.stats();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = [
        std::thread::spawn({
            let stop = stop.clone();
            move || ra.run(&stop, Duration::from_millis(10))
        }),
        std::thread::spawn({
            let stop = stop.clone();
            move || rb.run(&stop, Duration::from_millis(10))
        }),
    ]
    .into();

    let mut slots = box0.worker_slots(0, 1).unwrap();
    let mut w = slots.writer();
    let urls: Vec<String> = (0..1500).map(|i| format!("/objects/{i}.bin")).collect();
    for (i, u) in urls.iter().enumerate() {
        let s = slots.alloc().unwrap();
        w.write(s, &[http_record(0, i as u16 + 1, u, Some("\"v1\""))])
            .unwrap();
        if i % 100 == 0 {
            box0.heartbeat(i as u64);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    for i in (0..1500u32).step_by(9) {
        slots.free(SlotId(i)).unwrap();
    }
    box0.heartbeat(77_777);

    let replica = b.region(0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        let r = same(&box0, &replica);
        if r.is_ok() && stats_b.resyncs_completed.load(Ordering::Relaxed) > 0 {
            break r;
        }
        if Instant::now() > deadline {
            break r.and(Err("no resync completed".into()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap().unwrap();
    }
    eprintln!("receiver: {:?}", stats_b.snapshot());
    result.unwrap();
    assert!(
        stats_b.gaps.load(Ordering::Relaxed) > 0,
        "10 % loss went unnoticed"
    );
    assert_eq!(replica.records().filter(|r| r.is_ok()).count(), 1500 - 167);
}
