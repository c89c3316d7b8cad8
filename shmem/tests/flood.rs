//! Replication under a hostile back LAN (issue 13): datagrams are checked
//! for source, size, magic and channel before any HMAC, each drop counted
//! by reason; heartbeats on their own socket keep arriving on time while
//! random datagrams of 64 B to 60 KB flood both ports; receive errors are
//! outlived, and only an unbroken run of them ends replication.

mod common;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton_shmem::{
    heartbeat_addr, DatagramSocket, Layout, ReplicationConfig, ReplicationStats, Replicator,
    Segment, FATAL_ERROR_RUN, MAX_DATAGRAM,
};
use common::TempSeg;

const KEY: &[u8] = b"baton-lab-cluster-key-0123456789";
const L: Layout = Layout {
    regions: 2,
    slots_per_region: 64,
    slot_size: baton_shmem::SLOT_SIZE as u32,
};

fn cfg(me: u16, peers: Vec<(u16, SocketAddr)>) -> ReplicationConfig {
    ReplicationConfig {
        me,
        key: KEY.to_vec(),
        peers,
    }
}

/// A datagram and where it was sent.
type Sent = (Vec<u8>, SocketAddr);

/// Records what is sent instead of sending it.
#[derive(Clone, Default)]
struct Tap(Arc<Mutex<Vec<Sent>>>);

impl Tap {
    fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl DatagramSocket for Tap {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.0.lock().unwrap().push((buf.to_vec(), to));
        Ok(buf.len())
    }
    fn recv_from(&self, _buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn set_read_timeout(&self, _t: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

fn count(stats: &ReplicationStats, name: &str) -> u64 {
    stats
        .snapshot()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map_or_else(|| panic!("no counter {name}"), |(_, v)| v)
}

/// A deterministic byte stream (xorshift), so a failure replays.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// Box 0 and box 1 at their lab back-LAN addresses (198.19.0.11 and .12,
/// port 7400), segments of layout `L`; their replicators record what they
/// send (box 0's data and heartbeat sockets are kept to look at) and are
/// driven by hand.
struct Tapped {
    b: Segment,
    aa: SocketAddr,
    ab: SocketAddr,
    ra: Replicator<Tap>,
    rb: Replicator<Tap>,
    data_a: Tap,
    beat_a: Tap,
    _files: (TempSeg, TempSeg, Segment),
}

impl Tapped {
    fn new(names: (&str, &str)) -> Tapped {
        let files = (TempSeg::new(names.0), TempSeg::new(names.1));
        let a = Segment::open_or_create(files.0.path(), L).unwrap();
        let b = Segment::open_or_create(files.1.path(), L).unwrap();
        let (aa, ab): (SocketAddr, SocketAddr) = (
            "198.19.0.11:7400".parse().unwrap(),
            "198.19.0.12:7400".parse().unwrap(),
        );
        a.region(0).unwrap().begin_epoch();
        let (data_a, beat_a) = (Tap::default(), Tap::default());
        let ra = Replicator::new(&a, cfg(0, vec![(1, ab)]), data_a.clone())
            .unwrap()
            .with_heartbeat_socket(beat_a.clone())
            .unwrap();
        let rb = Replicator::new(&b, cfg(1, vec![(0, aa)]), Tap::default())
            .unwrap()
            .with_heartbeat_socket(Tap::default())
            .unwrap();
        Tapped {
            b,
            aa,
            ab,
            ra,
            rb,
            data_a,
            beat_a,
            _files: (files.0, files.1, a),
        }
    }
}

#[test]
fn datagrams_are_checked_for_source_size_magic_and_channel_before_the_tag() {
    let Tapped {
        b,
        aa,
        ab,
        mut ra,
        mut rb,
        data_a,
        beat_a,
        _files,
    } = Tapped::new(("flood-a", "flood-b"));
    let (ha, hb) = (heartbeat_addr(aa).unwrap(), heartbeat_addr(ab).unwrap());
    assert_eq!(ha, "198.19.0.11:7401".parse::<SocketAddr>().unwrap());
    let stats = rb.stats();

    // The heartbeat goes to the peer's heartbeat address, on its socket.
    ra.tick(1_000).unwrap();
    let beats = beat_a.take();
    assert_eq!(beats.len(), 1);
    assert_eq!(beats[0].1, hb);
    assert!(beats[0].0.len() <= baton_shmem::MAX_HEARTBEAT);
    assert!(data_a.take().is_empty(), "nothing dirty, no update");
    let beat = beats[0].0.clone();

    // From an address that is no peer's: dropped first, whatever it holds.
    let stranger: SocketAddr = "198.19.0.99:7401".parse().unwrap();
    rb.handle_heartbeat(&beat, stranger, 1_000).unwrap();
    assert_eq!(count(&stats, "unknown_source"), 1);
    // The peer's replication address is not its heartbeat address.
    rb.handle_heartbeat(&beat, aa, 1_000).unwrap();
    assert_eq!(count(&stats, "unknown_source"), 2);
    // A heartbeat on the replication socket, once they have their own.
    rb.handle(&beat, aa, 1_000).unwrap();
    assert_eq!(count(&stats, "wrong_channel"), 1);
    assert_eq!(count(&stats, "heartbeats"), 0);
    // Where it belongs, it is believed.
    rb.handle_heartbeat(&beat, ha, 1_000).unwrap();
    assert_eq!(count(&stats, "heartbeats"), 1);
    assert_eq!(b.box_info(0).unwrap().epoch, 1);

    // Garbage from a peer's address (a spoofer): cut to the receive buffer
    // (one byte over the largest datagram) it is oversized; shorter, it
    // fails the magic; on the heartbeat socket anything longer than a
    // heartbeat is oversized.
    let mut noise = Noise(0x5eed);
    let mut big = vec![0u8; MAX_DATAGRAM + 1];
    noise.fill(&mut big);
    rb.handle(&big, aa, 1_001).unwrap();
    assert_eq!(count(&stats, "oversized"), 1);
    rb.handle(&big[..300], aa, 1_001).unwrap();
    assert_eq!(count(&stats, "bad_magic"), 1);
    rb.handle_heartbeat(&big[..300], ha, 1_001).unwrap();
    assert_eq!(count(&stats, "oversized"), 2);
    rb.handle_heartbeat(&big[..100], ha, 1_001).unwrap();
    assert_eq!(count(&stats, "bad_magic"), 2);
    // Our magic and version, forged tag: only now is an HMAC computed.
    let mut forged = beat.clone();
    forged[40] ^= 1;
    rb.handle_heartbeat(&forged, ha, 1_001).unwrap();
    assert_eq!(count(&stats, "forged"), 1);
    // A replayed heartbeat on the replication socket is refused for its
    // channel, and a replayed one on its own socket by the window.
    rb.handle_heartbeat(&beat, ha, 1_002).unwrap();
    assert_eq!(count(&stats, "replayed"), 1);

    let drops: u64 = stats.drops().iter().map(|(_, n)| n).sum();
    assert_eq!(drops, 9, "{:?}", stats.drops());
    assert_eq!(count(&stats, "accepted"), 1);
}

/// Binds a data socket and, on the next port, a heartbeat socket on
/// 127.0.0.1 (retrying while the next port is taken).
fn bind_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..50 {
        let data = UdpSocket::bind("127.0.0.1:0").unwrap();
        let hb = heartbeat_addr(data.local_addr().unwrap()).unwrap();
        if let Ok(beat) = UdpSocket::bind(hb) {
            return (data, beat);
        }
    }
    panic!("no two consecutive free UDP ports on 127.0.0.1");
}

/// Box 0 and box 1, segments of layout `l`, replicating to each other over
/// loopback UDP (a data and a heartbeat socket each), each replicator on a
/// thread of its own with the lab's 30 ms tick until [`Running::finish`].
struct Running {
    a: Segment,
    b: Segment,
    /// Box 0's and box 1's replication counters.
    stats_a: Arc<ReplicationStats>,
    stats_b: Arc<ReplicationStats>,
    /// Box 1's data and heartbeat addresses.
    data_b: SocketAddr,
    beat_b: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<io::Result<()>>>,
    _files: (TempSeg, TempSeg),
}

impl Running {
    /// Starts the pair; `receive_buffer` sizes every socket's kernel
    /// buffer first, if given.
    fn start(l: Layout, names: (&str, &str), receive_buffer: Option<usize>) -> Running {
        let files = (TempSeg::new(names.0), TempSeg::new(names.1));
        let a = Segment::open_or_create(files.0.path(), l).unwrap();
        let b = Segment::open_or_create(files.1.path(), l).unwrap();
        let ((da, ha), (db, hb)) = (bind_pair(), bind_pair());
        let (aa, ab) = (da.local_addr().unwrap(), db.local_addr().unwrap());
        let beat_b = hb.local_addr().unwrap();
        if let Some(bytes) = receive_buffer {
            for s in [&da, &ha, &db, &hb] {
                baton_shmem::size_receive_buffer(s, bytes).unwrap();
            }
        }
        a.region(0).unwrap().begin_epoch();
        b.region(1).unwrap().begin_epoch();
        let mut ra = Replicator::new(&a, cfg(0, vec![(1, ab)]), da)
            .unwrap()
            .with_heartbeat_socket(ha)
            .unwrap();
        let mut rb = Replicator::new(&b, cfg(1, vec![(0, aa)]), db)
            .unwrap()
            .with_heartbeat_socket(hb)
            .unwrap();
        let stats_a = ra.stats();
        let stats_b = rb.stats();
        let stop = Arc::new(AtomicBool::new(false));
        let tick = Duration::from_millis(30);
        let threads = vec![
            std::thread::spawn({
                let stop = stop.clone();
                move || ra.run(&stop, tick)
            }),
            std::thread::spawn({
                let stop = stop.clone();
                move || rb.run(&stop, tick)
            }),
        ];
        Running {
            a,
            b,
            stats_a,
            stats_b,
            data_b: ab,
            beat_b,
            stop,
            threads,
            _files: files,
        }
    }

    /// Stops both replicators; fails if either ended with an error.
    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap().unwrap();
        }
    }
}

#[test]
fn no_heartbeat_is_lost_while_garbage_floods_both_ports() {
    let r = Running::start(L, ("flood-run-a", "flood-run-b"), Some(4 << 20));
    let (b, stats_b, ab, hb_b) = (&r.b, r.stats_b.clone(), r.data_b, r.beat_b);
    let box0 = r.a.region(0).unwrap();
    let stop = r.stop.clone();
    // The box's own heartbeat thread: a new beat every 10 ms, shipped by
    // the replicator (tick 30 ms, the lab's interval: a heartbeat every
    // 10 ms).
    let beater = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut ms = 1_000;
            while !stop.load(Ordering::Relaxed) {
                box0.heartbeat(ms);
                ms += 10;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    // Wait until box 1 hears box 0.
    let t0 = Instant::now();
    while b.box_info(0).map_or(0, |i| i.heartbeat) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(5), "no heartbeat at all");
        std::thread::sleep(Duration::from_millis(1));
    }

    // Box 0 writes no slot: all it sends are heartbeats.
    let (sent_before, beats_before) = (count(&r.stats_a, "sent"), count(&stats_b, "heartbeats"));
    // The flood: random datagrams of 64 B to 60 KB at both of box 1's
    // ports for 2 s, from an address that is no peer's.
    let flooded = Arc::new(AtomicUsize::new(0));
    let flood = std::thread::spawn({
        let stop = stop.clone();
        let flooded = flooded.clone();
        move || {
            // A real flood comes from another machine and costs the box no
            // CPU; here it shares the box's cores, so it runs at the lowest
            // priority lest it starve the receiver it is meant to test.
            lowest_priority_for_this_thread();
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut noise = Noise(0xf100d);
            let mut buf = vec![0u8; 60 * 1024];
            let end = Instant::now() + Duration::from_secs(2);
            while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                let len = 64 + (noise.next() % (60 * 1024 - 64) as u64) as usize;
                noise.fill(&mut buf[..len]);
                let to = if noise.next().is_multiple_of(2) {
                    ab
                } else {
                    hb_b
                };
                if s.send_to(&buf[..len], to).is_ok() {
                    flooded.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    // Watch box 1's view of box 0's heartbeat as a detector does: the
    // longest time it stayed unchanged.
    let mut last = (b.box_info(0).unwrap().heartbeat, Instant::now());
    let mut worst = Duration::ZERO;
    while !flood.is_finished() {
        let beat = b.box_info(0).unwrap().heartbeat;
        if beat != last.0 {
            last = (beat, Instant::now());
        }
        worst = worst.max(last.1.elapsed());
        std::thread::sleep(Duration::from_millis(1));
    }
    flood.join().unwrap();
    let beats_sent = count(&r.stats_a, "sent") - sent_before;
    let beats_applied = count(&stats_b, "heartbeats") - beats_before;
    stop.store(true, Ordering::Relaxed);
    beater.join().unwrap();
    let stats_a = r.stats_a.clone();
    r.finish();
    let sent = flooded.load(Ordering::Relaxed) as u64;
    let dropped = count(&stats_b, "unknown_source");
    eprintln!(
        "flood: {sent} datagrams sent, {dropped} dropped as unknown source, {} dropped by the kernel, \
         longest silence {worst:?}, {} heartbeats",
        count(&stats_b, "kernel_drops"),
        count(&stats_b, "heartbeats"),
    );
    assert!(
        sent > 1_000,
        "the flood was too weak to prove anything: {sent}"
    );
    assert!(
        dropped > sent / 2,
        "the flood was seen: {dropped} of {sent}"
    );
    assert_eq!(count(&stats_b, "forged"), 0, "no HMAC was spent on it");
    // Every heartbeat sent during the flood was received and applied: the
    // garbage took none of their room (counted, not timed: a loaded
    // machine pauses the beater and the watcher alike).
    assert_eq!(count(&stats_a, "send_errors"), 0);
    assert!(beats_sent > 10, "box 0 sent {beats_sent} heartbeats in 2 s");
    // Those of the last tick may still be in flight when counted.
    let in_flight = baton_shmem::HEARTBEATS_PER_TICK as u64;
    assert!(
        beats_applied + in_flight >= beats_sent,
        "heartbeats lost under the flood: {beats_applied} applied of {beats_sent} sent \
         (longest silence {worst:?})"
    );
}

/// Fails the first `fail` receives with an error that is not a timeout,
/// then has nothing to read (a short sleep stands for the wait).
struct Flaky {
    fail: u64,
    calls: AtomicU64,
}

impl DatagramSocket for Flaky {
    fn send_to(&self, buf: &[u8], _to: SocketAddr) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn recv_from(&self, _buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        if self.calls.fetch_add(1, Ordering::Relaxed) < self.fail {
            return Err(io::Error::from_raw_os_error(libc_enobufs()));
        }
        std::thread::sleep(Duration::from_millis(1));
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn set_read_timeout(&self, _t: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

/// Renices the calling thread (Linux: a thread id is a process id to
/// `setpriority`) to 19.
fn lowest_priority_for_this_thread() {
    // SAFETY: gettid and setpriority take no pointers.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19)
    };
    assert_eq!(rc, 0, "setpriority: {}", io::Error::last_os_error());
}

/// ENOBUFS on Linux: a receive that fails for want of kernel memory.
fn libc_enobufs() -> i32 {
    105
}

#[test]
fn receive_errors_are_outlived_and_only_an_unbroken_run_of_them_ends_replication() {
    let t = TempSeg::new("flaky");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    s.region(0).unwrap().begin_epoch();
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    // Ten errors in a row, then quiet: it goes on and counts them.
    let flaky = Flaky {
        fail: 10,
        calls: AtomicU64::new(0),
    };
    let mut r = Replicator::new(&s, cfg(0, vec![(1, peer)]), flaky).unwrap();
    let stats = r.stats();
    let th = std::thread::spawn({
        let stop = stop.clone();
        move || r.run(&stop, Duration::from_millis(10))
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!th.is_finished(), "replication ended on a transient error");
    stop.store(true, Ordering::Relaxed);
    th.join().unwrap().unwrap();
    assert_eq!(count(&stats, "recv_errors"), 10);

    // Nothing but errors: it gives up after FATAL_ERROR_RUN, with the error.
    let broken = Flaky {
        fail: u64::MAX,
        calls: AtomicU64::new(0),
    };
    let mut r = Replicator::new(&s, cfg(0, vec![(1, peer)]), broken).unwrap();
    let started = Instant::now();
    let never = AtomicBool::new(false);
    let err = r
        .run(&never, Duration::from_millis(10))
        .expect_err("replication went on without a socket");
    let took = started.elapsed();
    assert_eq!(err.raw_os_error(), Some(libc_enobufs()));
    assert!(
        took >= FATAL_ERROR_RUN && took < FATAL_ERROR_RUN * 3,
        "gave up after {took:?}"
    );
}

/// With heartbeats on their own socket, a heartbeat may be read before the
/// updates sent just before it; that must not be taken for a loss. Over a
/// loss-free loopback, a box writing 2,000 checkpoints while heartbeats
/// run at 10 ms is replicated exactly with no gap and no resync but the
/// first (the initial sweep of a new peer).
#[test]
fn split_heartbeats_never_fake_a_gap_and_the_replica_converges() {
    use baton_shmem::SlotId;
    let l = Layout {
        regions: 2,
        slots_per_region: 4_000,
        slot_size: baton_shmem::SLOT_SIZE as u32,
    };
    let r = Running::start(l, ("split-a", "split-b"), None);
    let (b, stats_b) = (&r.b, r.stats_b.clone());
    let box0 = r.a.region(0).unwrap();
    // Let the first sweep (a new peer) finish before writing.
    let t0 = Instant::now();
    while count(&stats_b, "resyncs_completed") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(5), "no first resync");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut w = box0.writer();
    for i in 0..2_000u32 {
        w.write(
            SlotId(i * 2),
            &[common::http_record(0, i as u16, "/objects/split.bin", None)],
        )
        .unwrap();
        if i % 50 == 49 {
            box0.heartbeat(u64::from(i));
            std::thread::sleep(Duration::from_millis(7));
        }
    }
    let replica = b.region(0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while common::same(&box0, &replica).is_err() {
        assert!(
            Instant::now() < deadline,
            "replica did not converge: {:?}",
            stats_b.snapshot()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    r.finish();
    eprintln!("B {:?}", stats_b.snapshot());
    assert_eq!(
        count(&stats_b, "kernel_drops"),
        0,
        "the test needs a loss-free path"
    );
    assert_eq!(
        count(&stats_b, "gaps"),
        0,
        "a heartbeat read early was taken for a loss"
    );
    assert_eq!(count(&stats_b, "resyncs_completed"), 1);
    assert!(count(&stats_b, "heartbeats") > 20);
}

/// What each drop costs the receiving thread, per datagram (the figures in
/// docs/SECURITY.md): `cargo test --release -p baton-shmem --test flood
/// -- --ignored --nocapture cost`.
#[test]
#[ignore = "a measurement, run by hand in release"]
fn cost_of_each_drop_per_datagram() {
    let Tapped {
        aa,
        mut ra,
        mut rb,
        beat_a,
        b: _b,
        _files,
        ..
    } = Tapped::new(("cost-a", "cost-b"));
    ra.tick(0).unwrap();
    let beat = beat_a.take().remove(0).0;
    let ha = heartbeat_addr(aa).unwrap();
    let stranger: SocketAddr = "198.19.0.99:7400".parse().unwrap();
    let mut noise = Noise(7);
    let mut big = vec![0u8; MAX_DATAGRAM + 1];
    noise.fill(&mut big);
    let mut framed = big[..1400].to_vec();
    framed[..6].copy_from_slice(b"BTR1\x02\x01");
    framed[14..16].copy_from_slice(&(1400u16 - 68).to_le_bytes());
    let mut forged_beat = beat.clone();
    forged_beat[40] ^= 1;
    let n = 200_000u32;
    let time = |what: &str, f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        eprintln!("{what}: {:?} per datagram", t.elapsed() / n);
    };
    time("unknown source", &mut || {
        rb.handle(&big, stranger, 1).unwrap()
    });
    time("oversized (peer's address)", &mut || {
        rb.handle(&big, aa, 1).unwrap()
    });
    time("bad magic (1400 B)", &mut || {
        rb.handle(&big[..1400], aa, 1).unwrap()
    });
    time("forged, framed 1400 B (HMAC)", &mut || {
        rb.handle(&framed, aa, 1).unwrap()
    });
    time("forged heartbeat (HMAC)", &mut || {
        rb.handle_heartbeat(&forged_beat, ha, 1).unwrap()
    });
    time("genuine heartbeat, replayed (HMAC)", &mut || {
        rb.handle_heartbeat(&beat, ha, 1).unwrap()
    });
}
