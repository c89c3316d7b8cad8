//! The per-worker driver of HTTP sessions: everything the worker glue
//! would otherwise repeat for each connection event — reading requests,
//! pumping responses into the send queue within its capacity, handing
//! checkpoints out, waking sessions when their object progresses, firing
//! timeouts, closing.
//!
//! Each worker has a spool writer thread ([`super::spool_writer`]): the
//! driver hands it the sessions' upload file operations after each event
//! and gives its answers back to the sessions in [`HttpWorker::poll`], so
//! no file I/O happens on the worker thread (except a bounded wait for it
//! in [`HttpWorker::absorb_input`], before a handoff).
//!
//! It talks to connections through the [`Transport`] trait, so the same
//! driver runs over the userspace TCP stack (the integrator implements
//! `Transport` over the dataplane's `Ctx`, and forwards `App` callbacks to
//! the `on_*` methods here) and over kernel sockets in the tests.
//!
//! The glue over the dataplane is `crate::serve::CacheApp`: one per
//! worker, it holds an `HttpWorker<ConnId>`, implements [`Transport`] over
//! the dataplane's per-callback `Ctx` (checkpoints go to the segment), and
//! forwards the dataplane's `App` callbacks to the `on_*` methods here
//! (`on_ready` with the restored record's [`ResponseCheckpoint`] and the
//! client's acknowledged sequence number); its periodic checkpoints read
//! [`HttpSession::checkpoint`] through [`HttpWorker::session`]. The
//! fetchers wake the worker through the `Waker` given to
//! [`HttpWorker::with_spool`] (the dataplane's `worker::Waker` implements
//! [`crate::cache::Waker`]).
//!
//! This module knows nothing of the dataplane or the segment: only
//! [`Transport`].

use baton_dataplane::connmap::{ConnSlab, DenseKey};
use baton_dataplane::timer::TimerWheel;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_dataplane::tcp::SeqNum;
use bytes::Bytes;
use crossbeam_channel::Receiver;

use super::checkpoint::ResponseCheckpoint;
use super::context::WorkerContext;
use super::request::Limits;
use super::session::{Close, HttpSession};
use super::spool_writer::SpoolWriter;
use crate::cache::{Cache, FetchProgress, Notifier, ObjectId, Waker};

/// The connection operations the driver needs (one worker's view).
pub trait Transport {
    /// Names one connection.
    type Conn: Copy + Eq + Hash + Debug;
    /// Copies received bytes into `buf`; 0 when none are waiting.
    fn recv(&mut self, conn: Self::Conn, buf: &mut [u8]) -> usize;
    /// Bytes `send` accepts now.
    fn send_capacity(&self, conn: Self::Conn) -> usize;
    /// Queues `data` (at most `send_capacity` bytes); returns the TCP
    /// sequence number of its first byte, `None` if the connection is gone.
    fn send(&mut self, conn: Self::Conn, data: Bytes) -> Option<u32>;
    /// FIN after the queued data.
    fn close(&mut self, conn: Self::Conn);
    /// Reset now.
    fn abort(&mut self, conn: Self::Conn);
    /// A response started: write its application block with the next
    /// checkpoint of `conn` (issue 6 item 1: "always at a new request").
    fn checkpoint(&mut self, conn: Self::Conn, cp: &ResponseCheckpoint) {
        let _ = (conn, cp);
    }
    /// The session's requests read but not answered yet, given before each
    /// `checkpoint` (`HttpSession::unanswered_input`): a transport that
    /// has no place for them in its checkpoint (plain TCP) ignores them;
    /// HTTPS seals them into the TLS block.
    fn unanswered_input(&mut self, conn: Self::Conn, input: Option<Vec<u8>>) {
        let _ = (conn, input);
    }
    /// The TCP sequence number of the next byte `recv` returns, if the
    /// transport knows it (an upload's checkpoint records where its body
    /// sits in the client's byte stream).
    fn recv_seq(&self, conn: Self::Conn) -> Option<u32> {
        let _ = conn;
        None
    }
    /// A name for the connection that a survivor's restored connection
    /// has too (it names the connection's upload spool file).
    fn conn_name(&self, conn: Self::Conn) -> Option<String> {
        let _ = conn;
        None
    }
}

#[derive(Debug)]
struct Entry {
    session: HttpSession,
    closed: bool,
}

/// One worker's HTTP sessions (see the module doc).
pub struct HttpWorker<C> {
    ctx: Arc<WorkerContext>,
    /// Does the sessions' spool file operations off this thread.
    spool: SpoolWriter<C>,
    /// Sessions whose spool writes were answered while another waited
    /// (see `absorb_input`): driven at the next `poll`.
    redrive: Vec<C>,
    progress: Receiver<FetchProgress>,
    /// Boxed: a slab keeps a value in every slot, so a value costs 8
    /// bytes there (16 with its key) for connections that are not HTTP.
    sessions: ConnSlab<C, Box<Entry>>,
    waiting: HashMap<ObjectId, Vec<C>>,
    /// Each session's next deadline, keyed by its connection's slab index
    /// (O(1) re-arms, 24 bytes a connection; a B-tree cost ~50 and a
    /// key in every session).
    timers: TimerWheel,
    /// The keys `timers` fired (reused).
    fired: Vec<usize>,
    buf: Vec<u8>,
}

impl<C: DenseKey + Hash + Debug + Send + 'static> HttpWorker<C> {
    /// The driver for worker `worker`; fetchers wake it through `waker`.
    #[cfg(test)]
    pub fn new(
        cache: Arc<Cache>,
        worker: usize,
        waker: Arc<dyn Waker>,
        limits: Limits,
        max_sessions: usize,
    ) -> HttpWorker<C> {
        HttpWorker::with_spool(
            cache,
            worker,
            waker,
            limits,
            max_sessions,
            crate::spool::Spool::shared_private(),
        )
    }

    /// [`Self::new`] with the box's upload spool (beside the segment, where
    /// survivors find it).
    pub fn with_spool(
        cache: Arc<Cache>,
        worker: usize,
        waker: Arc<dyn Waker>,
        limits: Limits,
        max_sessions: usize,
        spool: Arc<super::upload::Spool>,
    ) -> HttpWorker<C> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let writer = SpoolWriter::spawn(
            Arc::clone(&spool),
            Arc::clone(&waker),
            format!("spool{worker}"),
        );
        let notifier = Arc::new(Notifier::new(worker, tx, waker));
        HttpWorker {
            ctx: WorkerContext::with_spool(cache, notifier, limits, max_sessions, spool),
            spool: writer,
            redrive: Vec::new(),
            progress: rx,
            sessions: ConnSlab::default(),
            waiting: HashMap::new(),
            timers: TimerWheel::new(Instant::now(), Duration::from_millis(1)),
            fired: Vec::new(),
            buf: vec![0; 16 * 1024],
        }
    }

    /// The shared context (counters, cache).
    pub fn context(&self) -> &Arc<WorkerContext> {
        &self.ctx
    }

    /// The session of `conn`, e.g. to read its checkpoint for a periodic
    /// checkpoint write.
    pub fn session(&self, conn: C) -> Option<&HttpSession> {
        self.sessions.get(&conn).map(|e| &e.session)
    }

    /// Sessions held now.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// When `conn`'s session came to rest, if it may be dropped and
    /// served later by a new idle one ([`HttpSession::rest_since`]).
    pub fn rest_since(&self, conn: C) -> Option<Instant> {
        let e = self.sessions.get(&conn)?;
        if e.closed {
            return None;
        }
        e.session.rest_since()
    }

    /// The client acknowledged every byte of `conn` before `acked`: a last
    /// response it has whole is kept as a marker (see
    /// [`HttpSession::settle`]). True when it was.
    pub fn settle(&mut self, conn: C, acked: SeqNum) -> bool {
        self.sessions
            .get_mut(&conn)
            .is_some_and(|e| e.session.settle(acked))
    }

    /// A client connected.
    pub fn on_accept<T: Transport<Conn = C>>(&mut self, conn: C, t: &mut T, now: Instant) {
        match HttpSession::accept(&self.ctx, now) {
            Ok(mut session) => {
                session.set_conn_name(t.conn_name(conn));
                session.set_input_seq(t.recv_seq(conn).map(SeqNum));
                self.sessions.insert(
                    conn,
                    Box::new(Entry {
                        session,
                        closed: false,
                    }),
                );
                self.drive(conn, t, now);
            }
            Err(refusal) => {
                let _ = t.send(conn, refusal);
                t.close(conn);
            }
        }
    }

    /// A restored connection is ready (seed Fig. 6): continue its response
    /// after `acked_seq` (the client's acknowledgement), or serve it as an
    /// idle connection when its checkpoint had no response block; then
    /// answer `pending`, the requests its record carried (read by the dead
    /// box behind that response).
    pub fn on_ready<T: Transport<Conn = C>>(
        &mut self,
        conn: C,
        cp: Option<&ResponseCheckpoint>,
        acked_seq: u32,
        pending: &[u8],
        t: &mut T,
        now: Instant,
    ) {
        let name = t.conn_name(conn);
        let mut session = match cp {
            Some(cp) => {
                HttpSession::resume(Arc::clone(&self.ctx), cp, SeqNum(acked_seq), name, now)
            }
            None => {
                let mut s = HttpSession::new(Arc::clone(&self.ctx), now);
                s.set_conn_name(name);
                s
            }
        };
        let next_seq = t.recv_seq(conn).map(SeqNum);
        // The requests the dead box had read come before TCP's next byte.
        session.set_input_seq(next_seq.map(|s| s - pending.len() as u32));
        if !pending.is_empty() {
            session.on_bytes(pending, now);
        }
        self.sessions.insert(
            conn,
            Box::new(Entry {
                session,
                closed: false,
            }),
        );
        self.drive(conn, t, now);
    }

    /// Moves what the client sent from TCP into its session without
    /// answering anything: before a connection's final checkpoint (drain,
    /// migrate), so that the checkpoint covers every byte TCP has already
    /// acknowledged (an upload's body goes to its spool). The caller writes
    /// the checkpoint.
    ///
    /// This waits for the spool writer (a bounded wait, on a handoff only):
    /// the final checkpoint must cover every body byte TCP took.
    pub fn absorb_input<T: Transport<Conn = C>>(&mut self, conn: C, t: &mut T, now: Instant) {
        let mut waits = 0;
        loop {
            let Some(e) = self.sessions.get_mut(&conn) else {
                return;
            };
            let read = read_input(&mut e.session, t, conn, &mut self.buf, now);
            let pending = e.session.spool_pending();
            self.flush_spool(conn);
            if !pending {
                if read {
                    continue;
                }
                break;
            }
            match self.spool.wait_done(SPOOL_WAIT) {
                Some((c, done)) => self.spooled(c, &done, now),
                None if waits < SPOOL_WAITS => waits += 1,
                None => {
                    tracing::warn!("spool writer too slow: a handoff checkpoint covers less");
                    break;
                }
            }
        }
        if let Some(e) = self.sessions.get_mut(&conn) {
            let _ = e.session.take_commit_due();
        }
    }

    /// Hands the session's spool file operations to the writer.
    fn flush_spool(&mut self, conn: C) {
        if let Some(e) = self.sessions.get_mut(&conn) {
            for w in e.session.spool_writes() {
                self.spool.submit(conn, w);
            }
        }
    }

    /// The spool writer answered for `conn`: tell its session, drive it at
    /// the next `poll`.
    fn spooled(&mut self, conn: C, done: &super::upload::SpoolDone, now: Instant) {
        if let Some(e) = self.sessions.get_mut(&conn) {
            e.session.on_spooled(done, now);
            if !self.redrive.contains(&conn) {
                self.redrive.push(conn);
            }
        }
    }

    /// Request bytes are waiting.
    pub fn on_readable<T: Transport<Conn = C>>(&mut self, conn: C, t: &mut T, now: Instant) {
        self.drive(conn, t, now);
    }

    /// Send space grew.
    pub fn on_writable<T: Transport<Conn = C>>(&mut self, conn: C, t: &mut T, now: Instant) {
        self.drive(conn, t, now);
    }

    /// The client sent FIN.
    pub fn on_peer_closed<T: Transport<Conn = C>>(&mut self, conn: C, t: &mut T, now: Instant) {
        // Bytes that came before the FIN are requests too.
        self.drive(conn, t, now);
        if let Some(e) = self.sessions.get_mut(&conn) {
            e.session.on_eof();
        }
        self.drive(conn, t, now);
    }

    /// The connection is gone.
    pub fn on_closed(&mut self, conn: C) {
        if let Some(mut e) = self.sessions.remove(&conn) {
            e.session.discard_upload();
            for w in e.session.spool_writes() {
                self.spool.submit(conn, w);
            }
            self.timers.cancel(conn.index());
        }
    }

    /// The connection moved to another box (drain, migrate): forget it
    /// but leave its upload's spool file to the adopter.
    pub fn on_handed_off(&mut self, conn: C) {
        if self.sessions.remove(&conn).is_some() {
            self.timers.cancel(conn.index());
        }
    }

    /// Work not driven by packets: fetch progress and due timers. Call once
    /// per worker iteration (the dataplane's `App::poll`).
    pub fn poll<T: Transport<Conn = C>>(&mut self, t: &mut T, now: Instant) {
        while let Some((conn, done)) = self.spool.try_done() {
            self.spooled(conn, &done, now);
        }
        for conn in std::mem::take(&mut self.redrive) {
            self.drive(conn, t, now);
        }
        while let Ok(p) = self.progress.try_recv() {
            for conn in self.waiting.remove(&p.object).unwrap_or_default() {
                let waits = self
                    .sessions
                    .get_mut(&conn)
                    .is_some_and(|e| e.session.on_object_progress(p.object));
                if waits {
                    self.drive(conn, t, now);
                }
            }
        }
        let mut fired = std::mem::take(&mut self.fired);
        self.timers.expire(now, &mut fired);
        for key in fired.drain(..) {
            let Some(conn) = self.sessions.key_at(key) else {
                continue;
            };
            if let Some(e) = self.sessions.get_mut(&conn) {
                e.session.on_timeout(now);
            }
            self.drive(conn, t, now);
        }
        self.fired = fired;
    }

    /// Reads what the session wants, sends what it has, and settles its
    /// waits, timer, closing and spool writes.
    fn drive<T: Transport<Conn = C>>(&mut self, conn: C, t: &mut T, now: Instant) {
        let Some(e) = self.sessions.get_mut(&conn) else {
            return;
        };
        if e.closed {
            return;
        }
        let s = &mut e.session;
        loop {
            let mut progressed = read_input(s, t, conn, &mut self.buf, now);
            // An upload's spooled bytes are checkpointed before anything
            // else happens to them (and, with ack_after_commit, that
            // acknowledges them).
            progressed |= commit_if_due(s, t, conn);
            loop {
                let cap = t.send_capacity(conn);
                if cap == 0 {
                    break;
                }
                let Some(data) = s.poll_send(cap, now) else {
                    break;
                };
                match t.send(conn, data) {
                    Some(seq) => {
                        if s.on_sent(SeqNum(seq)).is_some() {
                            t.unanswered_input(conn, s.unanswered_input());
                            if let Some(cp) = s.recorded() {
                                t.checkpoint(conn, cp);
                            }
                        }
                        progressed = true;
                    }
                    None => {
                        e.closed = true;
                        for w in s.spool_writes() {
                            self.spool.submit(conn, w);
                        }
                        return;
                    }
                }
            }
            progressed |= commit_if_due(s, t, conn);
            if !progressed {
                break;
            }
        }
        for w in s.spool_writes() {
            self.spool.submit(conn, w);
        }
        if let Some(o) = s.waiting_on() {
            let list = self.waiting.entry(o).or_default();
            if !list.contains(&conn) {
                list.push(conn);
            }
        }
        match s.should_close() {
            Some(Close::Graceful) => {
                e.closed = true;
                t.close(conn);
            }
            Some(Close::Reset) => {
                e.closed = true;
                t.abort(conn);
            }
            None => {}
        }
        match (!e.closed).then(|| s.poll_timeout()).flatten() {
            Some(at) => self.timers.arm(conn.index(), at),
            None => self.timers.cancel(conn.index()),
        }
    }
}

/// How long `absorb_input` waits for one spool answer, and how many
/// such waits it allows in a row.
const SPOOL_WAIT: std::time::Duration = std::time::Duration::from_millis(100);
const SPOOL_WAITS: u32 = 50;

/// Gives the session what the client sent, as long as it wants input;
/// true if anything was read.
fn read_input<T: Transport>(
    s: &mut HttpSession,
    t: &mut T,
    conn: T::Conn,
    buf: &mut [u8],
    now: Instant,
) -> bool {
    let mut read = false;
    while s.wants_input() {
        let n = t.recv(conn, buf).min(buf.len());
        if n == 0 {
            break;
        }
        s.on_bytes(&buf[..n], now);
        read = true;
    }
    read
}

/// Writes the session's checkpoint when it asks for one; true if it did.
fn commit_if_due<T: Transport>(s: &mut HttpSession, t: &mut T, conn: T::Conn) -> bool {
    if !s.take_commit_due() {
        return false;
    }
    if let Some(cp) = s.checkpoint() {
        t.unanswered_input(conn, s.unanswered_input());
        t.checkpoint(conn, &cp);
    }
    true
}
