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
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::frame::{Auth, Header, ReplayWindow, KIND_HELLO, MAX_DATAGRAM};
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
    /// Dropped: a counter already seen, or from an older boot of the
    /// sender than the newest heard.
    pub replayed: AtomicU64,
    /// Dropped: addressed to an older boot of this box (captured before it
    /// restarted and replayed, or from a peer that has not heard of the
    /// restart yet: it is sent a hello).
    pub old_incarnation: AtomicU64,
    /// Dropped: from a peer that has heard of no boot of this box yet (it
    /// is sent a hello).
    pub unintroduced: AtomicU64,
    /// Hellos received (each only teaches the sender's boot).
    pub hellos: AtomicU64,
    /// Dropped: authentic but its body did not decode (another version).
    pub undecodable: AtomicU64,
    /// Answers that came after their caller gave up.
    pub late_replies: AtomicU64,
    /// Dropped by the fault-injection hook, either way.
    pub cut: AtomicU64,
    /// Sends the socket refused.
    pub send_failed: AtomicU64,
}

impl TransportStats {
    /// Datagrams dropped, by the check that refused them, in the order the
    /// checks run.
    pub fn drops(&self) -> Vec<(&'static str, u64)> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("oversized", g(&self.oversized)),
            ("malformed", g(&self.malformed)),
            ("forged", g(&self.forged)),
            ("unknown_sender", g(&self.unknown_sender)),
            ("unintroduced", g(&self.unintroduced)),
            ("old_incarnation", g(&self.old_incarnation)),
            ("replayed", g(&self.replayed)),
            ("undecodable", g(&self.undecodable)),
        ]
    }
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

/// The shortest time between two hellos to one peer.
const HELLO_GAP: Duration = Duration::from_millis(20);

/// What [`Endpoint::check`] makes of a datagram.
// Returned once per datagram and matched at once, as the `Option` of a
// message was before: boxing the message would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Checked {
    /// Every check passed.
    Accepted(Header, Message),
    /// Dropped, and its sender should hear this box's boot.
    HelloTo(u16),
    /// Dropped.
    Dropped,
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
    /// Newest boot heard from each peer in any authentic datagram: what
    /// this box's datagrams to it name as their target's boot. Replays can
    /// only show older boots, so it is the peer's current one as soon as
    /// the peer itself was heard.
    learned: BTreeMap<u16, AtomicU64>,
    /// When each peer was last sent a hello: at most one per
    /// [`HELLO_GAP`], however many datagrams call for one.
    hellos: Mutex<HashMap<u16, Instant>>,
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
    /// talking to `peers` (id and address; `me` is skipped). `boot` is
    /// this start's incarnation, greater than any earlier start's of this
    /// box (`RaftConfig::boot`).
    pub fn new(
        me: u16,
        socket: UdpSocket,
        peers: &[(u16, SocketAddr)],
        auth: Auth,
        boot: u64,
        stats: Arc<TransportStats>,
        faults: Arc<Faults>,
    ) -> Endpoint {
        let peers: BTreeMap<u16, SocketAddr> =
            peers.iter().copied().filter(|&(id, _)| id != me).collect();
        Endpoint {
            me,
            learned: peers.keys().map(|&id| (id, AtomicU64::new(0))).collect(),
            hellos: Mutex::new(HashMap::new()),
            socket,
            peers,
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
        let mut w = Writer::default();
        m.encode_body(&mut w);
        self.send_datagram(to, m.kind(), &w.into_inner()).await
    }

    /// Sends a hello to `to` unless one went to it less than
    /// [`HELLO_GAP`] ago.
    async fn send_hello(&self, to: u16) {
        {
            let mut last = self.hellos.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if last
                .get(&to)
                .is_some_and(|&t| now.duration_since(t) < HELLO_GAP)
            {
                return;
            }
            last.insert(to, now);
        }
        let _ = self.send_datagram(to, KIND_HELLO, &[]).await;
    }

    async fn send_datagram(&self, to: u16, kind: u8, body: &[u8]) -> Result<(), CallError> {
        let addr = *self
            .peers
            .get(&to)
            .ok_or(CallError::UnknownPeer(to as u64))?;
        let h = Header {
            kind,
            sender: self.me,
            target: to,
            boot: self.boot,
            counter: self.counter.fetch_add(1, Ordering::Relaxed),
            target_boot: self
                .learned
                .get(&to)
                .map_or(0, |b| b.load(Ordering::Relaxed)),
        };
        let d = self.auth.seal(&h, body).ok_or(CallError::TooLarge)?;
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
        // Every peer learns this boot at once, and answers with its own.
        let peers: Vec<u16> = self.peers.keys().copied().collect();
        for p in peers {
            self.send_hello(p).await;
        }
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
            let (h, m) = match self.check(d, from, &mut windows) {
                Checked::Accepted(h, m) => (h, m),
                Checked::HelloTo(peer) => {
                    self.send_hello(peer).await;
                    continue;
                }
                Checked::Dropped => continue,
            };
            {
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

    /// The header and message of `d` if every check passes, in order:
    /// size, framing and tag, target and sender (its configured address),
    /// the target's boot (this box's current one), the sender's boot (not
    /// older than the newest heard), the replay window, the body.
    fn check(
        &self,
        d: &[u8],
        from: SocketAddr,
        windows: &mut HashMap<u16, ReplayWindow>,
    ) -> Checked {
        if d.len() > MAX_DATAGRAM {
            bump(&self.stats.oversized);
            return Checked::Dropped;
        }
        let (h, body) = match self.auth.open(d) {
            Ok(x) => x,
            Err(super::frame::Rejected::Malformed) => {
                bump(&self.stats.malformed);
                return Checked::Dropped;
            }
            Err(super::frame::Rejected::Forged) => {
                bump(&self.stats.forged);
                return Checked::Dropped;
            }
        };
        if h.target != self.me || self.peers.get(&h.sender) != Some(&from) {
            bump(&self.stats.unknown_sender);
            return Checked::Dropped;
        }
        if self.faults.is_cut(h.sender) {
            bump(&self.stats.cut);
            return Checked::Dropped;
        }
        // Authentic: the sender really ran this boot.
        let newest = match self.learned.get(&h.sender) {
            Some(b) => b.fetch_max(h.boot, Ordering::Relaxed).max(h.boot),
            None => h.boot,
        };
        if h.kind == KIND_HELLO {
            bump(&self.stats.hellos);
            return if h.target_boot == self.boot {
                Checked::Dropped
            } else {
                Checked::HelloTo(h.sender)
            };
        }
        if h.target_boot != self.boot {
            bump(if h.target_boot == 0 {
                &self.stats.unintroduced
            } else {
                &self.stats.old_incarnation
            });
            return Checked::HelloTo(h.sender);
        }
        if h.boot < newest
            || !windows
                .entry(h.sender)
                .or_default()
                .accept(h.boot, h.counter)
        {
            bump(&self.stats.replayed);
            return Checked::Dropped;
        }
        match Message::decode(h.kind, body) {
            Ok(m) => {
                bump(&self.stats.received);
                Checked::Accepted(h, m)
            }
            Err(_) => {
                bump(&self.stats.undecodable);
                Checked::Dropped
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// What box 1 (boot `boot`) would send box 2, believing box 2 runs
    /// `target_boot`: a forwarded read, or a hello.
    fn from_box1(boot: u64, counter: u64, target_boot: u64, hello: bool) -> Vec<u8> {
        let auth = Auth::new(KEY).unwrap_or_else(|| unreachable!());
        let m = Message::Client(counter, super::super::message::ClientRequest::Read);
        let mut w = Writer::default();
        m.encode_body(&mut w);
        let (kind, body) = if hello {
            (KIND_HELLO, Vec::new())
        } else {
            (m.kind(), w.into_inner())
        };
        let h = Header {
            kind,
            sender: 1,
            target: 2,
            boot,
            counter,
            target_boot,
        };
        auth.seal(&h, &body).unwrap_or_else(|| unreachable!())
    }

    /// Box 2's endpoint at `boot`, box 1 configured at `peer`: what its
    /// receive loop would make of each datagram, and its counters.
    fn box2(boot: u64, peer: SocketAddr, datagrams: &[Vec<u8>]) -> (Vec<&'static str>, Endpoint) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(async {
            let socket = UdpSocket::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let e = Endpoint::new(
                2,
                socket,
                &[(1, peer)],
                Auth::new(KEY).unwrap_or_else(|| unreachable!()),
                boot,
                Arc::default(),
                Arc::default(),
            );
            let mut windows = HashMap::new();
            let verdicts = datagrams
                .iter()
                .map(|d| match e.check(d, peer, &mut windows) {
                    Checked::Accepted(..) => "accepted",
                    Checked::HelloTo(1) => "hello",
                    Checked::HelloTo(_) => "hello to someone else",
                    Checked::Dropped => "dropped",
                })
                .collect();
            (verdicts, e)
        })
    }

    fn count(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    #[test]
    fn a_datagram_captured_before_its_receiver_restarted_is_refused_after_it() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap_or_else(|_| unreachable!());
        let captured = [from_box1(3, 1, 5, false), from_box1(3, 2, 5, false)];
        // Box 2 at boot 5 takes each once.
        let (v, e) = box2(
            5,
            peer,
            &[
                captured[0].clone(),
                captured[1].clone(),
                captured[0].clone(),
            ],
        );
        assert_eq!(v, ["accepted", "accepted", "dropped"]);
        assert_eq!(count(&e.stats.replayed), 1);
        // Box 2 restarted (boot 6, fresh windows): refused, and box 1 is
        // told the new boot.
        let (v, e) = box2(6, peer, &captured);
        assert_eq!(v, ["hello", "hello"]);
        assert_eq!(count(&e.stats.old_incarnation), 2);
        assert_eq!(count(&e.stats.received), 0);
        assert_eq!(e.learned[&1].load(Ordering::Relaxed), 3);
        // Once box 1 heard it, its datagrams are taken again.
        let (v, _) = box2(6, peer, &[from_box1(3, 3, 6, false)]);
        assert_eq!(v, ["accepted"]);
    }

    #[test]
    fn a_datagram_of_an_older_boot_of_its_sender_is_refused_once_a_newer_was_heard() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap_or_else(|_| unreachable!());
        let (v, e) = box2(
            6,
            peer,
            &[
                from_box1(4, 1, 6, false),
                from_box1(3, 9, 6, false),
                from_box1(4, 2, 6, false),
            ],
        );
        assert_eq!(v, ["accepted", "dropped", "accepted"]);
        assert_eq!(count(&e.stats.replayed), 1);
    }

    #[test]
    fn hellos_teach_boots_and_are_answered_only_when_they_name_another() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap_or_else(|_| unreachable!());
        let (v, e) = box2(
            6,
            peer,
            &[
                from_box1(4, 1, 0, true),
                from_box1(4, 2, 6, true),
                from_box1(4, 3, 0, false),
            ],
        );
        assert_eq!(v, ["hello", "dropped", "hello"]);
        assert_eq!(count(&e.stats.hellos), 2);
        assert_eq!(count(&e.stats.unintroduced), 1);
        assert_eq!(e.learned[&1].load(Ordering::Relaxed), 4);
    }
}
