//! One box's UDP endpoint on the back LAN: sends messages, matches answers
//! to their callers, and hands requests to the Raft's server.
//!
//! One message per datagram, sealed and opened by `frame`. What arrives is
//! checked in order of cost: size, then the tag, then the header's target
//! and sender (a configured peer, from its configured address), then the
//! replay window, then the body's decoding. A datagram failing any check is
//! dropped and counted in [`TransportStats`], never believed and never a
//! panic. A lost datagram is a lost message: Raft retries on its own
//! timers, so the endpoint never retransmits.
//!
//! [`Faults`] is the fault-injection hook for tests and the lab: datagrams
//! to and from a cut peer are dropped here, as a partition would.
//!
//! This module knows nothing of openraft's core: requests go out on a
//! channel, answers come in through [`Endpoint::call`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::frame::{Auth, Header, ReplayWindow, MAX_DATAGRAM};
use super::message::Message;
use crate::codec::Writer;

/// Counters of one endpoint, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Datagrams sent.
    pub sent: AtomicU64,
    /// Datagrams accepted (every check passed).
    pub received: AtomicU64,
    /// Dropped: larger than a datagram may be.
    pub oversized: AtomicU64,
    /// Dropped: too short, bad magic or version, inconsistent lengths.
    pub malformed: AtomicU64,
    /// Dropped: the tag did not verify.
    pub forged: AtomicU64,
    /// Dropped: not for this box, or from an id or address not configured.
    pub unknown_sender: AtomicU64,
    /// Dropped: a counter already seen, or from an older boot.
    pub replayed: AtomicU64,
    /// Dropped: authentic but its body did not decode (another version).
    pub undecodable: AtomicU64,
    /// Answers that came after their caller gave up.
    pub late_replies: AtomicU64,
    /// Dropped by the fault-injection hook, either way.
    pub cut: AtomicU64,
    /// Sends the socket refused.
    pub send_failed: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The fault-injection hook: peers whose datagrams are dropped both ways.
#[derive(Debug, Default)]
pub struct Faults {
    cut: Mutex<BTreeSet<u16>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u16>> {
        self.cut.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops every datagram to and from `peers` from now on.
    pub fn cut(&self, peers: &[u16]) {
        self.lock().extend(peers.iter().copied());
    }

    /// Lets every datagram through again.
    pub fn heal(&self) {
        self.lock().clear();
    }

    /// Whether `peer` is cut off.
    pub fn is_cut(&self, peer: u16) -> bool {
        self.lock().contains(&peer)
    }
}

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No answer within the time allowed.
    #[error("no answer in time")]
    Timeout,
    /// The message does not fit one datagram.
    #[error("message too large for one datagram")]
    TooLarge,
    /// Not a configured peer.
    #[error("box {0} is not a configured peer")]
    UnknownPeer(u64),
}

type Pending = Mutex<HashMap<(u16, u64), oneshot::Sender<Message>>>;

/// A request received: the sending box and the message.
pub type Incoming = (u16, Message);

/// One box's endpoint.
#[derive(Debug)]
pub struct Endpoint {
    me: u16,
    socket: UdpSocket,
    peers: BTreeMap<u16, SocketAddr>,
    auth: Auth,
    boot: u64,
    counter: AtomicU64,
    next_rid: AtomicU64,
    pending: Pending,
    stats: Arc<TransportStats>,
    faults: Arc<Faults>,
}

/// Removes a caller's slot however its future ends (answered, timed out,
/// or dropped).
struct Slot<'a> {
    pending: &'a Pending,
    key: (u16, u64),
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(&self.key);
    }
}

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, HashMap<(u16, u64), oneshot::Sender<Message>>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

impl Endpoint {
    /// Box `me`'s endpoint on `socket` (bound to its back-LAN address),
    /// talking to `peers` (id and address; `me` is skipped).
    pub fn new(
        me: u16,
        socket: UdpSocket,
        peers: &[(u16, SocketAddr)],
        auth: Auth,
        stats: Arc<TransportStats>,
        faults: Arc<Faults>,
    ) -> Endpoint {
        // A restart must look newer to every peer's replay window; the
        // wall clock in ns is that, unless it steps back across a restart.
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Endpoint {
            me,
            socket,
            peers: peers.iter().copied().filter(|&(id, _)| id != me).collect(),
            auth,
            boot,
            counter: AtomicU64::new(1),
            next_rid: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            stats,
            faults,
        }
    }

    /// Sends `make(rid)` to `to` and waits at most `ttl` for its answer.
    pub async fn call(
        &self,
        to: u64,
        make: impl FnOnce(u64) -> Message,
        ttl: Duration,
    ) -> Result<Message, CallError> {
        let to16 = u16::try_from(to).map_err(|_| CallError::UnknownPeer(to))?;
        let rid = self.next_rid.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let key = (to16, rid);
        lock(&self.pending).insert(key, tx);
        let _slot = Slot {
            pending: &self.pending,
            key,
        };
        self.send(to16, &make(rid)).await?;
        match tokio::time::timeout(ttl, rx).await {
            Ok(Ok(m)) => Ok(m),
            _ => Err(CallError::Timeout),
        }
    }

    /// Sends one message to `to`. A datagram the network loses is not an
    /// error, and neither is one the socket refuses (a peer that is down
    /// makes the kernel report its ICMP unreachable on a later call).
    pub async fn send(&self, to: u16, m: &Message) -> Result<(), CallError> {
        let addr = *self
            .peers
            .get(&to)
            .ok_or(CallError::UnknownPeer(to as u64))?;
        let mut w = Writer::default();
        m.encode_body(&mut w);
        let h = Header {
            kind: m.kind(),
            sender: self.me,
            target: to,
            boot: self.boot,
            counter: self.counter.fetch_add(1, Ordering::Relaxed),
        };
        let d = self
            .auth
            .seal(&h, &w.into_inner())
            .ok_or(CallError::TooLarge)?;
        if self.faults.is_cut(to) {
            bump(&self.stats.cut);
            return Ok(());
        }
        match self.socket.send_to(&d, addr).await {
            Ok(_) => bump(&self.stats.sent),
            Err(_) => bump(&self.stats.send_failed),
        }
        Ok(())
    }

    /// Receives until the runtime stops: answers go to their callers,
    /// requests to `requests`.
    pub async fn run(self: Arc<Self>, requests: mpsc::UnboundedSender<Incoming>) {
        let mut buf = vec![0u8; 65_536];
        let mut windows: HashMap<u16, ReplayWindow> = HashMap::new();
        loop {
            let (n, from) = match self.socket.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(_) => {
                    // ICMP errors of earlier sends surface here; a socket
                    // that fails for good must not make this loop spin.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            let d = &buf[..n.min(buf.len())];
            if let Some((h, m)) = self.check(d, from, &mut windows) {
                if m.is_reply() {
                    match lock(&self.pending).remove(&(h.sender, m.rid())) {
                        Some(tx) => {
                            let _ = tx.send(m);
                        }
                        None => bump(&self.stats.late_replies),
                    }
                } else if requests.send((h.sender, m)).is_err() {
                    return;
                }
            }
        }
    }

    /// The header and message of `d` if every check passes.
    fn check(
        &self,
        d: &[u8],
        from: SocketAddr,
        windows: &mut HashMap<u16, ReplayWindow>,
    ) -> Option<(Header, Message)> {
        if d.len() > MAX_DATAGRAM {
            bump(&self.stats.oversized);
            return None;
        }
        let (h, body) = match self.auth.open(d) {
            Ok(x) => x,
            Err(super::frame::Rejected::Malformed) => {
                bump(&self.stats.malformed);
                return None;
            }
            Err(super::frame::Rejected::Forged) => {
                bump(&self.stats.forged);
                return None;
            }
        };
        if h.target != self.me || self.peers.get(&h.sender) != Some(&from) {
            bump(&self.stats.unknown_sender);
            return None;
        }
        if self.faults.is_cut(h.sender) {
            bump(&self.stats.cut);
            return None;
        }
        if !windows
            .entry(h.sender)
            .or_default()
            .accept(h.boot, h.counter)
        {
            bump(&self.stats.replayed);
            return None;
        }
        match Message::decode(h.kind, body) {
            Ok(m) => {
                bump(&self.stats.received);
                Some((h, m))
            }
            Err(_) => {
                bump(&self.stats.undecodable);
                None
            }
        }
    }
}
