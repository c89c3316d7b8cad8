//! Checkpoint segment micro-benchmarks (issue 4): writing one typical HTTP
//! checkpoint (serialize + seqlock publish), reading and validating it, and
//! the write latency distribution while another thread reads the same
//! slots. Goals: < 300 ns per write, < 200 ns per validated read at p50.
//!
//! Run: `cargo bench -p baton-benches --bench shmem -- --quick`

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_shmem::{
    AppBlock, ConnRecord, Endpoint, Layout, Segment, SlotId, TcpBlock, Transport, APP_PROTOCOL_HTTP,
};
use criterion::{black_box, criterion_group, Criterion};

struct TempSeg(PathBuf);

impl Drop for TempSeg {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_segment(tag: &str, regions: u16, slots: u32) -> (TempSeg, Segment) {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let t = TempSeg(dir.join(format!("baton-bench-{tag}-{}.seg", std::process::id())));
    let _ = std::fs::remove_file(&t.0);
    let seg = Segment::open_or_create(
        &t.0,
        Layout {
            regions,
            slots_per_region: slots,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        },
    )
    .expect("create bench segment");
    (t, seg)
}

/// A checkpoint of a client downloading a 50 MB object, mid-transfer.
fn typical(n: u64) -> ConnRecord<'static> {
    ConnRecord {
        owner: 1,
        worker: 0,
        epoch: 3,
        checkpoint_ms: 1_790_000_000_000 + n,
        local: Endpoint::from("198.18.0.11:80".parse::<std::net::SocketAddr>().unwrap()),
        remote: Endpoint::from(
            "198.18.0.100:41234"
                .parse::<std::net::SocketAddr>()
                .unwrap(),
        ),
        transport: Transport::Tcp,
        app_protocol: APP_PROTOCOL_HTTP,
        tcp: Some(TcpBlock {
            iss: 0x1234_5678,
            irs: 0x0bad_f00d,
            snd_una: 0x1240_0000 + n as u32,
            snd_nxt: 0x1241_0000 + n as u32,
            rcv_nxt: 0x0bad_f0a0,
            snd_wnd: 3_145_728,
            rcv_wnd: 64_240,
            mss: 1460,
            snd_wscale: 7,
            rcv_wscale: 7,
            sack_permitted: true,
            timestamps: true,
            ts_recent: 2_000_000,
            ts_last_sent: 1_500_000,
            tcp_state: 4,
            acks_covered: false,
        }),
        app: Some(AppBlock {
            object_start_seq: 0x1234_5900,
            version: 11,
            method: 1,
            status: 200,
            body_len: Some(50_000_000),
            name: "http://198.19.0.2/50M.bin",
            etag: Some("\"2faf080-5f3a1c2b\""),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT"),
            range_start: None,
            range_end: None,
            persistent: true,
            bytes_sent: n * 100_000,
            request_count: 1,
            upload: None,
        }),
        app_lost: false,
        tls: None,
        app_state: None,
    }
}

fn bench(c: &mut Criterion) {
    let (_t, seg) = temp_segment("crit", 2, 1024);
    let region = seg.region(1).expect("region 1");
    let mut w = region.writer();
    let mut n = 0u64;
    c.bench_function("shmem/serialize_http_record", |b| {
        b.iter(|| {
            n += 1;
            black_box(w.serialize(&[typical(n)]).unwrap())
        })
    });
    c.bench_function("shmem/write_http_record", |b| {
        b.iter(|| {
            n += 1;
            w.write(SlotId((n % 1024) as u32), &[typical(n)]).unwrap()
        })
    });
    w.write(SlotId(7), &[typical(1)]).unwrap();
    c.bench_function("shmem/read_validate_http_record", |b| {
        b.iter(|| {
            let v = region.read(black_box(SlotId(7))).unwrap().unwrap();
            black_box(v.bundle().records[0].tcp.as_ref().map(|t| t.snd_nxt))
        })
    });
}

/// Write latency per checkpoint while another thread keeps reading and
/// validating the same slots (the takeover scan racing a busy worker).
fn contended_histogram() {
    let (_t, seg) = temp_segment("hist", 2, 64);
    let region = seg.region(1).expect("region 1");
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (region, stop) = (region.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for s in 0..64 {
                    if let Ok(Some(v)) = region.read(SlotId(s)) {
                        black_box(v.seq());
                        reads += 1;
                    }
                }
            }
            reads
        })
    };
    let mut w = region.writer();
    let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    let end = Instant::now() + Duration::from_secs(2);
    let mut n = 0u64;
    while Instant::now() < end {
        for _ in 0..1000 {
            n += 1;
            let rec = typical(n);
            let t0 = Instant::now();
            w.write(SlotId((n % 64) as u32), &[rec]).unwrap();
            let _ = h.record(t0.elapsed().as_nanos() as u64);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap_or(0);
    println!(
        "shmem/write_while_reading: {} writes, {} concurrent validated reads; write ns p50 {} p90 {} p99 {} p99.9 {} max {} (includes ~20 ns of Instant::now)",
        h.len(),
        reads,
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

/// What takeover costs: validating every record of a full 300,000-slot
/// region, and a lazy-takeover lookup by 4-tuple that scans it.
fn takeover_scan() {
    const SLOTS: u32 = 300_000;
    let t0 = Instant::now();
    let (_t, seg) = temp_segment("scan", 2, SLOTS);
    let created = t0.elapsed();
    let region = seg.region(1).expect("region 1");
    let mut w = region.writer();
    for s in 0..SLOTS {
        let mut rec = typical(s as u64);
        rec.remote.port = (s % 60_000) as u16 + 1024;
        rec.remote.addr[3] = (s / 60_000) as u8 + 100;
        w.write(SlotId(s), &[rec]).expect("write");
    }
    let t1 = Instant::now();
    let valid = region.records().filter(|r| r.is_ok()).count();
    let scan = t1.elapsed();
    let t2 = Instant::now();
    let hit = region.find(
        "198.18.0.11:80".parse().unwrap(),
        "198.18.0.104:1024".parse().unwrap(),
    );
    let find = t2.elapsed();
    println!(
        "shmem/takeover_scan: region of {SLOTS} slots = {:.1} MiB (segment file of 2 regions {:.1} MiB, created in {created:?}); validated {valid} records in {scan:?} ({:.0} ns each); find by 4-tuple (slot {:?}, near the end) in {find:?}",
        seg.layout().region_stride() as f64 / 1048576.0,
        seg.layout().file_len() as f64 / 1048576.0,
        scan.as_nanos() as f64 / valid.max(1) as f64,
        hit.map(|(v, _)| v.slot().0),
    );
}

/// A socket that discards what it is given (measures the replicator, not
/// the kernel).
struct Sink;

impl baton_shmem::DatagramSocket for Sink {
    fn send_to(&self, buf: &[u8], _to: std::net::SocketAddr) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn recv_from(&self, _buf: &mut [u8]) -> std::io::Result<(usize, std::net::SocketAddr)> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
    fn set_read_timeout(&self, _t: Option<Duration>) -> std::io::Result<()> {
        Ok(())
    }
}

/// Replication tick cost on a 300,000-slot region: idle (dirty bitmap
/// scan and heartbeat) and with 1,000 checkpoints written since the last
/// tick (read, pack, HMAC, send to two peers).
fn replication_tick() {
    const SLOTS: u32 = 300_000;
    let (_t, seg) = temp_segment("repl", 3, SLOTS);
    let cfg = baton_shmem::ReplicationConfig {
        me: 1,
        key: vec![7u8; 32],
        peers: vec![
            (0, "198.19.0.10:7400".parse().unwrap()),
            (2, "198.19.0.12:7400".parse().unwrap()),
        ],
    };
    let mut r = baton_shmem::Replicator::new(&seg, cfg, Sink).expect("replicator");
    let region = seg.region(1).expect("region 1");
    let mut w = region.writer();
    r.tick(0).expect("tick");
    let rounds = 200u32;
    let t0 = Instant::now();
    for i in 0..rounds {
        r.tick(i as u64).expect("tick");
    }
    let idle = t0.elapsed() / rounds;
    let mut busy = Duration::ZERO;
    for round in 0..20u32 {
        for k in 0..1000u32 {
            let s = (round * 7919 + k * 293) % SLOTS;
            w.write(SlotId(s), &[typical(s as u64)]).expect("write");
        }
        let t = Instant::now();
        r.tick(round as u64).expect("tick");
        busy += t.elapsed();
    }
    let sent = r.stats().sent.load(Ordering::Relaxed);
    println!(
        "shmem/replication_tick: 300,000-slot region, 2 peers: idle tick {idle:?}; tick shipping 1,000 dirty slots {:?} ({sent} datagrams sent in all)",
        busy / 20
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    contended_histogram();
    takeover_scan();
    replication_tick();
}
