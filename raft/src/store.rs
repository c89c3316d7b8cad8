//! [`RaftStore`]: the replicated mode's `ViewStore`, a synchronous face on
//! an embedded openraft node.
//!
//! The node runs on a tokio current-thread runtime on a thread of its own
//! (`baton-raft-<id>`): openraft's core, its replication tasks, the endpoint's
//! receive loop and the server. The store's methods hand a future to that
//! runtime and wait for its answer at most `deadline`; when no leader
//! answers in time they return `StoreError::Unavailable`. They must not be
//! called from the Raft's own thread.
//!
//! A box that is not the leader forwards proposals and reads to the leader
//! it knows (one datagram each way); a read is linearizable
//! (`ensure_linearizable` at the leader), since fencing by view must not
//! act on a stale follower's copy.
//!
//! This module knows nothing of the appliance: it is given its id, the
//! voters and their back-LAN addresses, the cluster key, the state file's
//! path and the timings.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use baton_membership::{ChangeLoads, Member, Reason, StoreError, View, ViewNumber, ViewStore};
use baton_shmem::view::check_proposal;
use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{Config, Raft, ServerState, SnapshotPolicy};
use tokio::sync::{mpsc, oneshot};

use crate::lease::Lease;
use crate::server::Server;
use crate::storage::{BadSnapshot, FileError, LogStore, StateFile, StateMachineStore};
use crate::transport::frame::Auth;
use crate::transport::{
    ClientRequest, ClientResponse, Endpoint, Faults, Message, Network, TransportStats,
};
use crate::types::{NodeId, Outcome, Propose, TypeConfig};

/// The Raft's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// Leader heartbeat interval.
    pub heartbeat: Duration,
    /// Election timeout, lower bound (randomised per election).
    pub election_min: Duration,
    /// Election timeout, upper bound.
    pub election_max: Duration,
    /// How long a box keeps serving without a quorum proof
    /// ([`RaftStore::has_quorum_lease`]).
    pub lease: Duration,
    /// How long `read` and `propose` wait for an answer.
    pub deadline: Duration,
}

impl Default for Timings {
    /// Heartbeat 50 ms, election 300–600 ms (above the 80–120 ms machine
    /// stalls the soak saw), lease = the election timeout's upper bound,
    /// deadline 2 s.
    fn default() -> Timings {
        Timings {
            heartbeat: Duration::from_millis(50),
            election_min: Duration::from_millis(300),
            election_max: Duration::from_millis(600),
            lease: Duration::from_millis(600),
            deadline: Duration::from_secs(2),
        }
    }
}

/// What a box's Raft needs to start.
#[derive(Clone)]
pub struct RaftConfig {
    /// This box's id (its node id).
    pub me: u16,
    /// Every voter, this box included: box id and back-LAN Raft address.
    pub members: Vec<(u16, SocketAddr)>,
    /// The cluster key; at least 16 bytes.
    pub key: Vec<u8>,
    /// The state file (beside the segment: `<segment>.raft`).
    pub path: PathBuf,
    /// The timings.
    pub timings: Timings,
    /// This start's incarnation, greater than every earlier start's of this
    /// box (the appliance passes its durable epoch; [`boot_from_clock`]
    /// for tests): peers refuse datagrams from an older boot, and this box
    /// refuses datagrams addressed to another boot of its own, so nothing
    /// captured before a restart is believed after it.
    pub boot: u64,
}

/// A boot from the wall clock (ns since 1970), for tests and tools whose
/// restarts are not remembered otherwise. A box uses its durable epoch: a
/// clock stepped back across a restart would make its peers refuse it.
pub fn boot_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

impl std::fmt::Debug for RaftConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftConfig")
            .field("me", &self.me)
            .field("members", &self.members)
            .field("key", &"<redacted>")
            .field("path", &self.path)
            .field("timings", &self.timings)
            .field("boot", &self.boot)
            .finish()
    }
}

/// Why a Raft store did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// This box is not among the members.
    #[error("raft: box {0} is not among the members")]
    NotAMember(u16),
    /// A member id listed twice.
    #[error("raft: member {0} is listed twice")]
    DuplicateMember(u16),
    /// The key is too short to be a secret.
    #[error("raft: cluster key must be at least 16 bytes, got {0}")]
    WeakKey(usize),
    /// openraft refused the timings.
    #[error("raft: timings: {0}")]
    Timings(String),
    /// The state file could not be read.
    #[error(transparent)]
    File(#[from] FileError),
    /// The state file's snapshot does not hold a view.
    #[error("raft state {path}: {source}")]
    Snapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: BadSnapshot,
    },
    /// The socket or the runtime could not be set up.
    #[error("raft: {what}: {source}")]
    Io {
        /// What was being set up.
        what: &'static str,
        /// What the system said.
        source: std::io::Error,
    },
    /// openraft stopped while starting.
    #[error("raft: the node stopped while starting: {0}")]
    Stopped(String),
}

/// One box's replicated view store. Dropping it stops the node (its
/// socket closes with its runtime).
pub struct RaftStore {
    me: u16,
    voters: usize,
    timings: Timings,
    raft: Raft<TypeConfig>,
    runtime: tokio::runtime::Handle,
    endpoint: Arc<Endpoint>,
    machine: StateMachineStore,
    lease: Arc<Lease>,
    stats: Arc<TransportStats>,
    faults: Arc<Faults>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct Started {
    raft: Raft<TypeConfig>,
    runtime: tokio::runtime::Handle,
    endpoint: Arc<Endpoint>,
}

impl RaftStore {
    /// Starts box `cfg.me`'s node: opens its state file, binds its address,
    /// and on a pristine file initialises the cluster with the configured
    /// voters (every box may, with the same voters; openraft makes that
    /// safe). Returns once the node runs; a leader is elected in the
    /// background.
    pub fn start(cfg: RaftConfig) -> Result<RaftStore, StartError> {
        let my_addr = check(&cfg)?;
        let t = cfg.timings;
        let raft_config = Config {
            cluster_name: "baton-view".into(),
            heartbeat_interval: ms(t.heartbeat),
            election_timeout_min: ms(t.election_min),
            election_timeout_max: ms(t.election_max),
            // A view snapshot is one datagram each way: a lost one is
            // sent again after an election timeout, not after the deadline.
            install_snapshot_timeout: ms(t.election_max),
            // Each AppendEntries must fit one datagram: a proposal entry
            // is at most ~300 bytes with its committed loads (issue 20;
            // ~130 without), and proposals are a few per incident.
            max_payload_entries: 24,
            snapshot_max_chunk_size: 4096,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(64),
            max_in_snapshot_log_to_keep: 16,
            purge_batch_size: 1,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Timings(e.to_string()))?;
        let file = Arc::new(Mutex::new(StateFile::open(&cfg.path)?));
        let machine =
            StateMachineStore::new(file.clone()).map_err(|source| StartError::Snapshot {
                path: cfg.path.clone(),
                source,
            })?;
        let socket = std::net::UdpSocket::bind(my_addr).map_err(|source| StartError::Io {
            what: "bind",
            source,
        })?;
        socket
            .set_nonblocking(true)
            .map_err(|source| StartError::Io {
                what: "socket",
                source,
            })?;
        let auth = Auth::new(&cfg.key).ok_or(StartError::WeakKey(cfg.key.len()))?;
        let voters: BTreeSet<NodeId> = cfg.members.iter().map(|&(id, _)| id as NodeId).collect();
        let lease = Arc::new(Lease::new(voters.len()));
        let stats = Arc::new(TransportStats::default());
        let faults = Arc::new(Faults::default());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel();

        let node = Node {
            me: cfg.me,
            members: cfg.members.clone(),
            voters,
            raft_config: Arc::new(raft_config),
            log: LogStore::new(file),
            machine: machine.clone(),
            lease: lease.clone(),
            stats: stats.clone(),
            faults: faults.clone(),
            auth,
            boot: cfg.boot,
            deadline: t.deadline,
        };
        let thread = std::thread::Builder::new()
            .name(format!("baton-raft-{}", cfg.me))
            .spawn(move || node.run(socket, started_tx, stop_rx))
            .map_err(|source| StartError::Io {
                what: "thread",
                source,
            })?;
        let started = match started_rx.recv() {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(StartError::Stopped("the raft thread ended".into()));
            }
        };
        Ok(RaftStore {
            me: cfg.me,
            voters: cfg.members.len(),
            timings: t,
            raft: started.raft,
            runtime: started.runtime,
            endpoint: started.endpoint,
            machine,
            lease,
            stats,
            faults,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    // Getters.

    /// This box's id.
    pub fn id(&self) -> u16 {
        self.me
    }

    /// The leader this box knows, if any.
    pub fn leader(&self) -> Option<u16> {
        let m = self.raft.metrics();
        let leader = m.borrow().current_leader;
        leader.and_then(|l| u16::try_from(l).ok())
    }

    /// The vote this box holds (saved in its file before it was granted).
    pub fn vote(&self) -> openraft::Vote<NodeId> {
        self.raft.metrics().borrow().vote
    }

    /// The term this box is in.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// Whether this box leads its term.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// How old this box's newest quorum proof is at `now` (`None`: it
    /// never had one). A lone voter holds its quorum by itself: age zero
    /// while it leads.
    pub fn lease_age(&self, now: Instant) -> Option<Duration> {
        if self.voters == 1 {
            return self.is_leader().then_some(Duration::ZERO);
        }
        self.lease.age(now)
    }

    /// The timings this store runs with.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// The view this box has applied, without asking the leader (not
    /// linearizable: for logs and status, never for fencing).
    pub fn local_view(&self) -> View {
        self.machine.view()
    }

    /// Whether a quorum backed this box's leader (or this box as leader)
    /// less than `lease` before `now`. A box for which this is false must
    /// stop serving: it can no longer learn that it was removed.
    pub fn has_quorum_lease(&self, now: Instant) -> bool {
        self.lease_age(now)
            .is_some_and(|age| age < self.timings.lease)
    }

    /// The transport's counters (datagrams sent, received, dropped by cause).
    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }

    // Fault injection (tests and the lab).

    /// Drops every datagram to and from `peers`, as a partition would.
    pub fn cut(&self, peers: &[u16]) {
        self.faults.cut(peers);
    }

    /// Ends every cut.
    pub fn heal(&self) {
        self.faults.heal();
    }

    /// Runs `fut` on the Raft's runtime and waits for it at most the
    /// deadline.
    fn block<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let deadline = self.timings.deadline;
        self.runtime.spawn(async move {
            let r = tokio::time::timeout(deadline, fut)
                .await
                .unwrap_or(Err(StoreError::Unavailable));
            let _ = tx.send(r);
        });
        // The task answers by the deadline unless the runtime is stuck or
        // gone; then the store is unavailable too.
        rx.recv_timeout(deadline + Duration::from_secs(1))
            .unwrap_or(Err(StoreError::Unavailable))
    }

    fn client(&self) -> Client {
        Client {
            raft: self.raft.clone(),
            endpoint: self.endpoint.clone(),
            machine: self.machine.clone(),
            // One forward may wait no longer than a leader takes to be
            // replaced, so a call made during a failover tries the new one.
            attempt: self.timings.election_max,
        }
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

/// The own address, if the configuration can be started.
fn check(cfg: &RaftConfig) -> Result<SocketAddr, StartError> {
    if cfg.key.len() < 16 {
        return Err(StartError::WeakKey(cfg.key.len()));
    }
    let mut seen = BTreeSet::new();
    for &(id, _) in &cfg.members {
        if !seen.insert(id) {
            return Err(StartError::DuplicateMember(id));
        }
    }
    cfg.members
        .iter()
        .find(|&&(id, _)| id == cfg.me)
        .map(|&(_, addr)| addr)
        .ok_or(StartError::NotAMember(cfg.me))
}

impl ViewStore for RaftStore {
    fn read(&self) -> Result<View, StoreError> {
        let c = self.client();
        self.block(async move { c.read().await })
    }

    fn propose(
        &self,
        proposer: u16,
        expected: ViewNumber,
        members: &[Member],
        reason: Reason,
    ) -> Result<View, StoreError> {
        self.propose_with_loads(proposer, expected, members, reason, None)
    }

    fn propose_with_loads(
        &self,
        proposer: u16,
        expected: ViewNumber,
        members: &[Member],
        reason: Reason,
        loads: Option<&ChangeLoads>,
    ) -> Result<View, StoreError> {
        check_proposal(proposer, expected, members)?;
        let p = Propose {
            proposer,
            expected,
            members: members.to_vec(),
            reason: reason.code(),
            loads: loads.cloned(),
        };
        let c = self.client();
        self.block(async move { c.propose(p).await })
    }
}

impl Drop for RaftStore {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How long to wait before asking again when no leader is known.
const RETRY: Duration = Duration::from_millis(20);

/// A read or a proposal in flight, on the Raft's runtime.
struct Client {
    raft: Raft<TypeConfig>,
    endpoint: Arc<Endpoint>,
    machine: StateMachineStore,
    attempt: Duration,
}

impl Client {
    async fn read(&self) -> Result<View, StoreError> {
        loop {
            match self.raft.ensure_linearizable().await {
                Ok(_) => return Ok(self.machine.view()),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                    if let Some(ClientResponse::View(v)) =
                        self.forward(f.leader_id, ClientRequest::Read).await
                    {
                        return Ok(v);
                    }
                }
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {}
                Err(RaftError::Fatal(_)) => return Err(StoreError::Unavailable),
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    async fn propose(&self, p: Propose) -> Result<View, StoreError> {
        loop {
            let outcome = match self.raft.client_write(p.clone()).await {
                Ok(r) => Some(r.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    match self
                        .forward(f.leader_id, ClientRequest::Propose(p.clone()))
                        .await
                    {
                        Some(ClientResponse::Outcome(o)) => Some(o),
                        _ => None,
                    }
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(_))) => None,
                Err(RaftError::Fatal(_)) => return Err(StoreError::Unavailable),
            };
            match outcome {
                Some(Outcome::Committed(v)) => return Ok(v),
                Some(Outcome::Conflict(v)) if is_own(&p, &v) => return Ok(v),
                Some(Outcome::Conflict(current)) => return Err(StoreError::Conflict { current }),
                Some(Outcome::Invalid(e)) => return Err(StoreError::Invalid(e)),
                Some(Outcome::NotAProposal) | None => {}
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// `req` answered by `leader`, if it is known and answers in time.
    async fn forward(&self, leader: Option<NodeId>, req: ClientRequest) -> Option<ClientResponse> {
        let leader = leader?;
        match self
            .endpoint
            .call(leader, |rid| Message::Client(rid, req), self.attempt)
            .await
        {
            Ok(Message::ClientReply(_, r)) => Some(r),
            _ => None,
        }
    }
}

/// Whether `v` is the view `p` proposes: a proposal retried after its
/// answer was lost finds its own view committed, and that is a success,
/// not a conflict.
fn is_own(p: &Propose, v: &View) -> bool {
    let mut members = p.members.clone();
    members.sort();
    p.expected.next() == Some(v.number)
        && v.proposer == p.proposer
        && v.reason() == p.reason
        && v.members == members
}

/// What the Raft's thread needs to run the node.
struct Node {
    me: u16,
    members: Vec<(u16, SocketAddr)>,
    voters: BTreeSet<NodeId>,
    raft_config: Arc<Config>,
    log: LogStore,
    machine: StateMachineStore,
    lease: Arc<Lease>,
    stats: Arc<TransportStats>,
    faults: Arc<Faults>,
    auth: Auth,
    boot: u64,
    deadline: Duration,
}

impl Node {
    /// The Raft's thread: runs the node until `stop`, then shuts it down;
    /// dropping the runtime ends every task and closes the socket.
    fn run(
        self,
        socket: std::net::UdpSocket,
        started: std::sync::mpsc::Sender<Result<Started, StartError>>,
        stop: oneshot::Receiver<()>,
    ) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(source) => {
                let _ = started.send(Err(StartError::Io {
                    what: "runtime",
                    source,
                }));
                return;
            }
        };
        rt.block_on(async move {
            let raft = match self.start(socket).await {
                Ok(s) => {
                    let raft = s.raft.clone();
                    let _ = started.send(Ok(s));
                    raft
                }
                Err(e) => {
                    let _ = started.send(Err(e));
                    return;
                }
            };
            let _ = stop.await;
            let _ = raft.shutdown().await;
        });
    }

    async fn start(self, socket: std::net::UdpSocket) -> Result<Started, StartError> {
        let socket = tokio::net::UdpSocket::from_std(socket).map_err(|source| StartError::Io {
            what: "socket",
            source,
        })?;
        let endpoint = Arc::new(Endpoint::new(
            self.me,
            socket,
            &self.members,
            self.auth,
            self.boot,
            self.stats,
            self.faults,
        ));
        let (req_tx, req_rx) = mpsc::unbounded_channel();
        tokio::spawn(endpoint.clone().run(req_tx));
        let network = Network::new(self.me as NodeId, endpoint.clone(), self.lease.clone());
        let raft = Raft::new(
            self.me as NodeId,
            self.raft_config,
            network,
            self.log,
            self.machine.clone(),
        )
        .await
        .map_err(|e| StartError::Stopped(e.to_string()))?;
        let pristine = !raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Stopped(e.to_string()))?;
        if pristine {
            match raft.initialize(self.voters).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(StartError::Stopped(e.to_string())),
            }
        }
        let server = Server {
            raft: raft.clone(),
            endpoint: endpoint.clone(),
            lease: self.lease,
            machine: self.machine,
            deadline: self.deadline,
        };
        tokio::spawn(server.run(req_rx));
        Ok(Started {
            raft,
            runtime: tokio::runtime::Handle::current(),
            endpoint,
        })
    }
}

impl std::fmt::Debug for RaftStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStore")
            .field("me", &self.me)
            .field("leader", &self.leader())
            .field("sent", &self.stats.sent.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
