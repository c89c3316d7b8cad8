//! Per-segment cost of the sans-IO TCP state machine (issue 3, benchmarks):
//! - `receive_in_order_segment`: one full in-order data segment into an
//!   ESTABLISHED TCB, the application's read, and the ACK it owes (one per
//!   two segments, RFC 5681 §4.2) taken with `poll_transmit`;
//! - `send_full_segment`: one `poll_transmit` of a full MSS segment sliced
//!   from queued `Bytes` (zero-copy), plus the amortized cost of the ACK
//!   that frees it.
//!
//! Run: `cargo bench -p baton-benches --bench tcp`

use baton_dataplane::tcp::{
    Bytes, Flags, FourTuple, Listener, Options, Segment, SeqNum, SynOutcome, Tcb, TcpConfig,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

const CISN: u32 = 1_000;
const MSS: usize = 1448;

fn tuple() -> FourTuple {
    FourTuple {
        local: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 11), 80)),
        remote: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 100), 40_000)),
    }
}

fn seg(seq: SeqNum, ack: SeqNum, ts: (u32, u32), payload: &[u8]) -> Segment<'_> {
    Segment {
        src_port: 40_000,
        dst_port: 80,
        seq,
        ack,
        flags: Flags {
            ack: true,
            ..Flags::default()
        },
        window: u16::MAX,
        options: Options {
            timestamps: Some(ts),
            ..Options::default()
        },
        payload,
    }
}

/// An ESTABLISHED server TCB with every option (MSS 1460, scale 7,
/// timestamps, SACK), as a Linux client would negotiate it. Returns the
/// TCB and our ISS.
fn established(t0: Instant) -> (Tcb, SeqNum) {
    let mut l = Listener::new(TcpConfig::default(), [7; 16]);
    let syn = Segment {
        flags: Flags {
            syn: true,
            ..Flags::default()
        },
        options: Options {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((1, 0)),
            ..Options::default()
        },
        ..seg(SeqNum(CISN), SeqNum(0), (1, 0), &[])
    };
    let SynOutcome::Tcb(mut tcb) = l.on_syn(t0, tuple(), &syn, 0, 128) else {
        panic!("listener refused the SYN");
    };
    let synack = tcb.poll_transmit(t0).expect("SYN-ACK");
    tcb.on_segment(t0, &seg(SeqNum(CISN + 1), synack.seq + 1, (2, 0), &[]));
    while tcb.poll_event().is_some() {}
    (tcb, synack.seq)
}

fn bench(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut g = c.benchmark_group("tcp");
    g.throughput(Throughput::Bytes(MSS as u64));

    // Receive: in-order data, read by the application, ACKed.
    {
        let (mut tcb, iss) = established(t0);
        let data = vec![0x5au8; MSS];
        let mut buf = vec![0u8; 64 * 1024];
        let mut seq = SeqNum(CISN + 1);
        let mut tick = 0u64;
        g.bench_function("receive_in_order_segment", |b| {
            b.iter(|| {
                tick += 1;
                let now = t0 + Duration::from_micros(tick);
                let ts = (3 + (tick / 1000) as u32, 0);
                tcb.on_segment(now, &seg(seq, iss + 1, ts, black_box(&data)));
                seq += MSS as u32;
                black_box(tcb.recv(&mut buf));
                while let Some(out) = tcb.poll_transmit(now) {
                    black_box(out);
                }
                while tcb.poll_event().is_some() {}
            })
        });
        // The segments were taken, not dropped (a benchmark of the drop
        // path would flatter us).
        let st = tcb.stats();
        assert_eq!(st.dropped, 0);
        // Modulo 2^32: a long run wraps the sequence space many times.
        assert_eq!(st.bytes_received as u32, seq.0.wrapping_sub(CISN + 1));
    }

    // Send: a full segment from queued Bytes, the ACK every 10 segments.
    {
        let (mut tcb, iss) = established(t0);
        let chunk = Bytes::from(vec![0xa5u8; 64 * 1024]);
        let mut acked = iss + 1;
        let mut sent = iss + 1;
        let mut tick = 0u64;
        let mut in_flight = 0;
        g.bench_function("send_full_segment", |b| {
            b.iter(|| {
                tick += 1;
                let now = t0 + Duration::from_micros(tick);
                if tcb.send_capacity() >= chunk.len() {
                    tcb.send(chunk.clone()).expect("capacity checked");
                }
                let out = tcb
                    .poll_transmit(now)
                    .expect("window and cwnd allow a segment");
                debug_assert_eq!(out.payload_len(), MSS);
                sent = out.seq + out.payload_len() as u32;
                black_box(out);
                in_flight += 1;
                if in_flight == 10 {
                    in_flight = 0;
                    acked = sent;
                    let ts = (3 + (tick / 1000) as u32, 0);
                    tcb.on_segment(now, &seg(SeqNum(CISN + 1), acked, ts, &[]));
                    while tcb.poll_event().is_some() {}
                }
            })
        });
        let st = tcb.stats();
        assert_eq!(st.retransmits, 0);
        assert!(st.bytes_acked > 0);
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
