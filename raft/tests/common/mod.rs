//! A cluster of `RaftStore`s on loopback UDP in one process, and polling
//! helpers with generous limits (the suite runs on a loaded 2-core box).

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use baton_membership::{Member, Reason, StoreError, View, ViewStore};
use baton_raft::{RaftConfig, RaftStore, Timings};

pub const KEY: &[u8] = b"baton-test-cluster-key";

pub struct Cluster {
    pub dir: PathBuf,
    pub members: Vec<(u16, SocketAddr)>,
    pub nodes: BTreeMap<u16, RaftStore>,
    pub timings: Timings,
}

impl Cluster {
    /// `n` boxes, ids 1..=n, all started.
    pub fn start(name: &str, n: u16) -> Cluster {
        let dir = std::env::temp_dir().join(format!("baton-raft-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
        // Ports the kernel hands out, released just before the boxes bind them.
        let sockets: Vec<UdpSocket> = (0..n)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}")))
            .collect();
        let members = sockets
            .iter()
            .zip(1..)
            .map(|(s, id)| (id, s.local_addr().unwrap_or_else(|e| panic!("{e}"))))
            .collect();
        drop(sockets);
        let mut c = Cluster {
            dir,
            members,
            nodes: BTreeMap::new(),
            timings: Timings::default(),
        };
        for id in 1..=n {
            c.boot(id);
        }
        c
    }

    pub fn config(&self, id: u16) -> RaftConfig {
        RaftConfig {
            me: id,
            members: self.members.clone(),
            key: KEY.to_vec(),
            path: self.dir.join(format!("box{id}.raft")),
            timings: self.timings,
            boot: baton_raft::boot_from_clock(),
        }
    }

    /// Starts box `id` (again) from its file.
    pub fn boot(&mut self, id: u16) {
        let store = RaftStore::start(self.config(id)).unwrap_or_else(|e| panic!("box {id}: {e}"));
        self.nodes.insert(id, store);
    }

    /// Stops box `id` as a crash would: its thread, socket and runtime go.
    pub fn kill(&mut self, id: u16) {
        self.nodes.remove(&id);
    }

    pub fn node(&self, id: u16) -> &RaftStore {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("box {id} is not running"))
    }

    pub fn addr(&self, id: u16) -> SocketAddr {
        self.members[(id - 1) as usize].1
    }

    /// The leader every running box in `among` agrees on.
    pub fn leader(&self, among: &[u16], within: Duration) -> u16 {
        poll(within, || {
            let leaders: Vec<Option<u16>> =
                among.iter().map(|&id| self.node(id).leader()).collect();
            match leaders[0] {
                Some(l) if among.contains(&l) && leaders.iter().all(|&x| x == Some(l)) => Some(l),
                _ => None,
            }
        })
        .unwrap_or_else(|| panic!("no agreed leader among {among:?} within {within:?}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `f`'s first `Some` within `within`, asking every 20 ms.
pub fn poll<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + within;
    loop {
        if let Some(x) = f() {
            return Some(x);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Box `id`'s incarnation `epoch` joins: a proposal over what `store` reads,
/// retried (reading again) while it conflicts. Returns the committed view.
pub fn join(store: &RaftStore, id: u16, epoch: u32) -> View {
    poll(secs(10), || {
        let view = store.read().ok()?;
        let me = Member { id, epoch };
        let reason = Reason::Joined(me);
        match store.propose(id, view.number, &reason.apply(&view.members), reason) {
            Ok(v) => Some(v),
            Err(StoreError::Conflict { .. } | StoreError::Unavailable) => None,
            Err(e) => panic!("join of {id}: {e}"),
        }
    })
    .unwrap_or_else(|| panic!("box {id} could not join within 10 s"))
}
