//! Commit latency of one proposal, three voters on loopback UDP in one
//! process (each append synced to the state file): from the leader, and
//! from a follower that forwards it.
//!
//! `cargo bench -p baton-raft --bench commit`

use std::cell::RefCell;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use baton_membership::{Member, Reason, ViewStore};
use baton_raft::{RaftConfig, RaftStore, Timings};
use criterion::{criterion_group, criterion_main, Criterion};

/// Three stores on ports the kernel hands out, in a fresh directory.
fn dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("baton-raft-bench-{}", std::process::id()))
}

fn cluster() -> Vec<RaftStore> {
    let dir = dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
    let sockets: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let members: Vec<_> = (1..)
        .zip(&sockets)
        .map(|(id, s)| (id, s.local_addr().unwrap_or_else(|e| panic!("{e}"))))
        .collect();
    drop(sockets);
    (1..=3)
        .map(|me| {
            RaftStore::start(RaftConfig {
                me,
                members: members.clone(),
                key: b"baton-bench-cluster-key".to_vec(),
                path: dir.join(format!("box{me}.raft")),
                timings: Timings::default(),
                boot: baton_raft::boot_from_clock(),
            })
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn leader(stores: &[RaftStore]) -> u16 {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let l = stores[0].leader();
        if l.is_some() && stores.iter().all(|s| s.leader() == l) {
            return l.unwrap_or_default();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no leader within 10 s");
}

fn commit(c: &mut Criterion) {
    let stores = cluster();
    let leader = leader(&stores);
    let follower = if leader == 1 { 2 } else { 1 };
    let mut g = c.benchmark_group("raft_commit");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    for (name, id) in [("from_leader", leader), ("from_follower", follower)] {
        let store = &stores[(id - 1) as usize];
        let view = RefCell::new(store.read().unwrap_or_else(|e| panic!("{e}")));
        let epoch = RefCell::new(0u32);
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut e = epoch.borrow_mut();
                *e += 1;
                let mut v = view.borrow_mut();
                let me = Member { id, epoch: *e };
                let reason = Reason::Joined(me);
                *v = store
                    .propose(id, v.number, &reason.apply(&v.members), reason)
                    .unwrap_or_else(|err| panic!("{err}"));
            })
        });
    }
    g.finish();
    drop(stores);
    let _ = std::fs::remove_dir_all(dir());
}

criterion_group!(benches, commit);
criterion_main!(benches);
