//! A takeover's routes at 300,000 orphans (issue 19): what
//! `Control::take_over` does between the split and the restore thread, and
//! how long the orphan table's write lock is held meanwhile — every
//! worker's lookup of a connection it does not know (right after a
//! takeover: the orphans' own clients) waits for it.
//!
//! Side by side: session 20's way (each orphan deep-copied into a boxed
//! route, the routes hashed into the table under its lock) and the table's
//! (each orphan shared by an `Arc`, the routes hashed into a map of their
//! own, swapped in under the lock, or merged when the table already holds
//! routes). The orphans are an established connection's TCP block with a
//! response checkpoint (URL and validators on the heap), no TLS.
//!
//! Run: `cargo bench -p baton --bench orphans -- --quick`

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use baton::http::request::Method;
use baton::http::ResponseCheckpoint;
use baton::orphans::{NewRoutes, Orphan, OrphanRoute, OrphanTable};
use baton_dataplane::tcp::{FourTuple, SeqNum, State, TcbExport};
use baton_dataplane::wire::ethernet::MacAddr;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode};

const N: usize = 300_000;
/// Routes a table holds already in the merge case (an earlier takeover's
/// forwarded connections).
const HELD: usize = 10_000;

/// Connection `i` of the dead box: a client port of one of many clients
/// to its service address.
fn tuple(i: usize) -> FourTuple {
    let client = Ipv4Addr::from(0xc612_0000 + (i / 50_000) as u32 * 256 + (i % 200) as u32);
    FourTuple {
        local: SocketAddr::new(IpAddr::from([198, 51, 100, 10]), 80),
        remote: SocketAddr::new(IpAddr::V4(client), 10_000 + (i % 50_000) as u16),
    }
}

/// `n` orphans as a takeover reads them: established, a response recorded.
fn plan(n: usize) -> Vec<Orphan> {
    (0..n)
        .map(|i| {
            let iss = (i as u32).wrapping_mul(2_654_435_761);
            Orphan {
                export: TcbExport {
                    tuple: tuple(i),
                    state: State::Established,
                    iss,
                    irs: iss ^ 0x5555_5555,
                    snd_una: iss.wrapping_add(70_001),
                    snd_nxt: iss.wrapping_add(70_001),
                    rcv_nxt: (iss ^ 0x5555_5555).wrapping_add(241),
                    snd_wnd: 64_240,
                    rcv_wnd: 65_535,
                    mss: 1_460,
                    snd_wscale: 7,
                    rcv_wscale: 7,
                    sack_permitted: true,
                    timestamps: true,
                    ts_recent: 4_000_000 + i as u32,
                    ts_last_sent: 9_000_000 + i as u32,
                    acks_covered: false,
                },
                response: Some(ResponseCheckpoint {
                    object_start_seq: SeqNum(iss.wrapping_add(1 + 310)),
                    status: 200,
                    method: Method::Get,
                    minor: 1,
                    url: format!("/static/objects/{:06}.bin", i % 5_000),
                    etag: Some(format!("\"5f3a-{:x}\"", i % 5_000)),
                    last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
                    range: None,
                    persistent: true,
                    request_count: 3,
                    body_offset: 0,
                    body_len: Some(65_536),
                    upload: None,
                }),
                tls: None,
                app_state: None,
            }
        })
        .collect()
}

/// Session 20's route: a boxed copy of the orphan the restore thread keeps.
#[allow(dead_code)]
enum OldRoute {
    Mine(Box<Orphan>),
    Elsewhere(MacAddr),
}

type OldTable = RwLock<HashMap<FourTuple, OldRoute>>;

/// Session 20's `take_over` and `OrphanTable::extend`: each orphan cloned
/// into a route, the routes hashed into the table under its write lock.
/// Returns how long the lock was held.
fn old_way(table: &OldTable, mine: &[Orphan]) -> Duration {
    let mut routes = Vec::with_capacity(mine.len());
    routes.extend(
        mine.iter()
            .cloned()
            .map(|o| (o.export.tuple, OldRoute::Mine(Box::new(o)))),
    );
    let mut held = table.write().unwrap_or_else(|p| p.into_inner());
    let locked = Instant::now();
    held.extend(routes);
    let took = locked.elapsed();
    drop(held);
    took
}

/// `take_over`'s way: the orphans shared, their routes built outside the
/// lock and installed. Returns the shares the restore thread gets and how
/// long `install` took: the lock is held within it (with a read of the
/// table's size before, the free of the map swapped out after).
fn new_way(table: &OrphanTable, mine: Vec<Orphan>) -> (Vec<Arc<Orphan>>, Duration) {
    let mine: Vec<Arc<Orphan>> = mine.into_iter().map(Arc::new).collect();
    let mut routes = NewRoutes::with_capacity(mine.len());
    for orphan in &mine {
        let (key, route) = Arc::clone(orphan).route_here();
        routes.insert(key, route);
    }
    let installing = Instant::now();
    table.install(routes);
    (mine, installing.elapsed())
}

/// A table holding [`HELD`] forwarded routes, none of them the orphans'.
fn held_routes() -> impl Iterator<Item = (FourTuple, MacAddr)> {
    (N..N + HELD).map(|i| (tuple(i), MacAddr([2, 0, 0, 0, 0, 3])))
}

fn old_table(held: usize) -> OldTable {
    RwLock::new(
        held_routes()
            .take(held)
            .map(|(t, mac)| (t, OldRoute::Elsewhere(mac)))
            .collect(),
    )
}

fn new_table(held: usize) -> OrphanTable {
    let table = OrphanTable::default();
    table.extend(
        held_routes()
            .take(held)
            .map(|(t, mac)| (t, OrphanRoute::Elsewhere(mac))),
    );
    table
}

/// The median, least and most of `times`, for the lock's line.
fn spread(times: &mut [Duration]) -> String {
    times.sort();
    match (times.first(), times.get(times.len() / 2), times.last()) {
        (Some(least), Some(median), Some(most)) => format!(
            "median {median:.2?} (least {least:.2?}, most {most:.2?}) over {} takeovers",
            times.len()
        ),
        _ => "not run".into(),
    }
}

fn routes(c: &mut Criterion) {
    let mut g = c.benchmark_group("takeover_routes_300k");
    // Each iteration is a whole takeover's routes (tenths of a second):
    // ten of them, not criterion's growing series.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1));
    // How long the write lock was held, iteration by iteration (printed
    // after the group: criterion times the whole routine).
    let mut lock_held: Vec<(String, Vec<Duration>)> = Vec::new();
    for held in [0, HELD] {
        let into = if held == 0 { "empty" } else { "10k" };
        let mut times = Vec::new();
        g.bench_function(format!("old_clone_and_extend_into_{into}"), |b| {
            b.iter_batched(
                || (old_table(held), plan(N)),
                |(table, mine)| {
                    times.push(old_way(&table, &mine));
                    (table, mine)
                },
                BatchSize::PerIteration,
            )
        });
        lock_held.push((format!("old into {into}"), times));
        let mut times = Vec::new();
        g.bench_function(format!("new_share_build_and_install_into_{into}"), |b| {
            b.iter_batched(
                || (new_table(held), plan(N)),
                |(table, mine)| {
                    let (shares, took) = new_way(&table, mine);
                    times.push(took);
                    (table, shares)
                },
                BatchSize::PerIteration,
            )
        });
        lock_held.push((format!("new into {into}"), times));
    }
    g.finish();
    for (way, mut times) in lock_held {
        println!("write lock held, {way}: {}", spread(&mut times));
    }
}

criterion_group!(benches, routes);
criterion_main!(benches);
