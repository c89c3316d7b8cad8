//! Timer-wheel cost at 300,000 armed connections: the worker re-arms a
//! TCB's timer after every segment, so arm/re-arm must stay O(1) and cheap
//! however many connections a worker holds.
//!
//! Run: `cargo bench -p baton-benches --bench timer`

use baton_dataplane::timer::TimerWheel;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use std::time::{Duration, Instant};

const N: usize = 300_000;

/// A wheel with N timers spread over the next 0–60 s (RTO, delayed ACK,
/// keepalive and idle deadlines all mixed).
fn full_wheel(t0: Instant) -> TimerWheel {
    let mut w = TimerWheel::new(t0, Duration::from_millis(1));
    let mut x = 0x9e3779b97f4a7c15u64;
    for k in 0..N {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.arm(k, t0 + Duration::from_millis(1 + x % 60_000));
    }
    w
}

fn bench(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut g = c.benchmark_group("timer_wheel_300k");

    g.bench_function("insert_300k", |b| {
        b.iter_batched(
            || (),
            |_| black_box(full_wheel(t0)).len(),
            BatchSize::PerIteration,
        )
    });

    let mut w = full_wheel(t0);
    let mut k = 0usize;
    let mut d = 0u64;
    g.bench_function("rearm_one_of_300k", |b| {
        b.iter(|| {
            k = (k + 7919) % N;
            d = (d + 37) % 60_000;
            w.arm(black_box(k), t0 + Duration::from_millis(200 + d));
        })
    });

    g.bench_function("cancel_and_rearm_one_of_300k", |b| {
        b.iter(|| {
            k = (k + 7919) % N;
            w.cancel(black_box(k));
            w.arm(k, t0 + Duration::from_millis(500));
        })
    });

    // Expiry: advance 1 ms at a time through a full wheel, re-arming each
    // fired timer 60 s ahead, as a worker does; reports the cost per tick
    // (about N / 60,000 = 5 timers fire per ms).
    let mut w = full_wheel(t0);
    let mut now = t0;
    let mut fired = Vec::new();
    g.bench_function("expire_tick_300k", |b| {
        b.iter(|| {
            now += Duration::from_millis(1);
            fired.clear();
            w.expire(now, &mut fired);
            for &key in &fired {
                w.arm(key, now + Duration::from_secs(60));
            }
            black_box(fired.len())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
