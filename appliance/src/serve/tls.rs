//! HTTPS on a worker: the TLS layer between the userspace TCP connection
//! and the HTTP session (issue 14, docs/TLS.md). One [`TlsConns`] per
//! worker holds each HTTPS connection's handshake, then its record layer
//! (`baton_tls::Session`); [`TlsTransport`] wraps the worker's plain
//! [`Transport`] so the HTTP driver reads decrypted requests and its
//! answers go out as records: TCP payload in, `take_output` into the TCP
//! send queue.
//!
//! Body records are cut at fixed 16 KiB plaintext offsets from the body's
//! start (the response checkpoint names where the body starts): the send
//! room offered to HTTP never crosses a body record boundary, so each body
//! record is one `send` (when the object's bytes are there).
//!
//! **Takeover.** Every checkpoint of an HTTPS connection carries its TLS
//! state sealed under `cluster.key` ([`TlsConns::sealed_block`]); the body
//! anchor is in it from the body's first record on. A survivor opens it
//! ([`TlsConns::restore`]), finds the record holding the client's
//! acknowledged byte, and tells HTTP to continue from that record's first
//! plaintext byte: the first record HTTP then sends is re-sealed and
//! emitted from the client's byte, the next ones are the same records the
//! dead box would have sent.
//!
//! HTTP sees "sequence numbers" that count plaintext bytes (wrapping u32,
//! the same on a survivor), never TCP's.
//!
//! It knows TLS and the `Transport` trait; it decides nothing of HTTP or
//! TCP, and holds no socket.

use baton_dataplane::connmap::ConnMap;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use baton_dataplane::flow::ConnId;
use baton_tls::{
    BodyAnchor, Checkpoint, CheckpointSealer, Event, Handshake, Progress, ResumePoint, Session,
    TlsConfig, TlsError, BODY_RECORD_SIZE,
};
use bytes::Bytes;
use tracing::debug;

use super::tls_block::LastSealed;
use crate::http::checkpoint::ResponseCheckpoint;
use crate::http::counters::HttpCounters;
use crate::http::request::Method;
use crate::http::worker::Transport;

/// Decrypted request bytes kept for HTTP beyond what it reads now.
const PLAIN_AHEAD: usize = 64 * 1024;

/// The box's HTTPS settings, built once at start and shared by workers.
#[derive(Debug, Clone)]
pub struct TlsServe {
    /// Handshake settings (certificates, versions, suites).
    pub config: TlsConfig,
    /// The port HTTPS is served on.
    pub port: u16,
    /// Seals and opens the TLS blocks of checkpoints.
    pub cluster_key: Vec<u8>,
}

/// Where checkpoints of HTTPS connections take their TLS block: the
/// worker's checkpoint writer.
pub trait TlsBlockSink {
    /// The sealed block `conn`'s next checkpoints carry.
    fn set_tls_block(&mut self, conn: ConnId, block: Option<Vec<u8>>);
}

/// Why a survivor cannot continue an HTTPS connection.
#[derive(Debug, thiserror::Error)]
pub enum NotResumed {
    /// The checkpoint has no TLS block (taken during the handshake).
    #[error("no TLS state in the checkpoint (handshake not done)")]
    NoBlock,
    /// This box does not serve HTTPS.
    #[error("HTTPS is off on this box")]
    Off,
    /// The block does not open, parse or restore.
    #[error("TLS block: {0}")]
    Block(#[from] TlsError),
    /// The client lacks bytes that were not body records (they cannot be
    /// regenerated).
    #[error("the client lacks bytes outside a body")]
    Position,
}

/// Where one connection's TLS is.
#[derive(Debug)]
enum Stage {
    Handshake(Box<Handshake>),
    Open(Box<Session>),
    /// A fatal alert (or nothing) went out; only the flush remains.
    Failed,
}

/// One HTTPS connection.
#[derive(Debug)]
struct TlsConn {
    stage: Stage,
    /// Decrypted bytes the HTTP session has not read yet.
    plain: VecDeque<u8>,
    /// Requests HTTP read but has not answered (pipelined), as it last
    /// gave them; `None`: it could not write them back.
    unanswered: Option<Vec<u8>>,
    /// Sealed bytes TCP had no room for yet.
    out: VecDeque<Bytes>,
    out_len: usize,
    /// Plaintext bytes handed to the record layer (the "sequence numbers"
    /// the HTTP session sees).
    plain_sent: u32,
    /// Plaintext position of the current body's first byte, and its length.
    body: Option<(u32, Option<u64>)>,
    /// The connection's name for its sealed block (both ends).
    aad: Vec<u8>,
    /// The body's plaintext not yet a whole record.
    body_buf: Vec<u8>,
    /// The record layer's body anchor is set for the current body.
    body_started: bool,
    /// The last body's anchor, kept once its records are all sealed: until
    /// the client has them, a survivor regenerates its tail from it.
    anchor: Option<BodyAnchor>,
    /// The response whose body has not started (its head went in pieces):
    /// checkpointed again when it does.
    body_cp: Option<ResponseCheckpoint>,
    /// On a survivor: the record to re-seal first, emitted from the
    /// client's byte.
    resume: Option<ResumePoint>,
    /// The record layer's state changed outside a response (KeyUpdate,
    /// close_notify either way): checkpoint now.
    commit_due: bool,
    /// FIN once the sealed bytes are out.
    fin_after_flush: bool,
    fin_sent: bool,
    /// close_notify came: tell HTTP once.
    peer_closed: bool,
    peer_closed_told: bool,
    /// The last block sealed (reused while the state is unchanged).
    last_sealed: LastSealed,
}

impl TlsConn {
    fn new(stage: Stage, name: String) -> TlsConn {
        TlsConn {
            stage,
            plain: VecDeque::new(),
            unanswered: Some(Vec::new()),
            out: VecDeque::new(),
            out_len: 0,
            plain_sent: 0,
            body: None,
            aad: name.into_bytes(),
            body_buf: Vec::new(),
            body_started: false,
            anchor: None,
            body_cp: None,
            resume: None,
            commit_due: false,
            fin_after_flush: false,
            fin_sent: false,
            peer_closed: false,
            peer_closed_told: false,
            last_sealed: LastSealed::default(),
        }
    }

    /// True while `plain_sent` is inside the current body.
    fn in_body(&self) -> bool {
        self.body.is_some_and(|(start, len)| {
            len.is_none_or(|l| u64::from(self.plain_sent.wrapping_sub(start)) < l)
        })
    }

    fn queue(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.out_len += bytes.len();
            self.out.push_back(Bytes::from(bytes));
        }
    }
}

/// One worker's HTTPS connections.
#[derive(Debug)]
pub struct TlsConns {
    serve: Arc<TlsServe>,
    /// This worker's sealer of TLS blocks (its own key id and counter).
    sealer: Option<CheckpointSealer>,
    conns: ConnMap<ConnId, TlsConn>,
    buf: Vec<u8>,
}

impl TlsConns {
    /// No connections yet.
    pub fn new(serve: Arc<TlsServe>) -> TlsConns {
        let sealer = CheckpointSealer::new(&serve.cluster_key)
            .map_err(|e| tracing::warn!("cannot seal TLS checkpoints: {e}"))
            .ok();
        TlsConns {
            serve,
            sealer,
            conns: ConnMap::default(),
            buf: vec![0; 16 * 1024],
        }
    }

    /// The HTTPS port.
    pub fn port(&self) -> u16 {
        self.serve.port
    }

    /// True for a connection served over TLS.
    pub fn has(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// A client connected to the HTTPS port: wait for its ClientHello.
    /// `name` names both ends (the sealed block is bound to it). False
    /// when no handshake could be set up (then reset it).
    pub fn accept(&mut self, conn: ConnId, name: String) -> bool {
        match Handshake::new(&self.serve.config) {
            Ok(h) => {
                self.conns
                    .insert(conn, TlsConn::new(Stage::Handshake(Box::new(h)), name));
                true
            }
            Err(e) => {
                tracing::warn!("cannot start a TLS handshake: {e}");
                false
            }
        }
    }

    /// The block `conn`'s next checkpoint carries: its record layer's
    /// state sealed under the cluster key, bound to its name. `None`
    /// during the handshake, after a failure, and on a survivor until the
    /// resumed record is out (the restored block stays in force then).
    pub fn sealed_block(&self, conn: ConnId) -> Option<Vec<u8>> {
        let c = self.conns.get(&conn)?;
        let Stage::Open(s) = &c.stage else {
            return None;
        };
        if c.resume.is_some() {
            return None;
        }
        let mut cp = s.checkpoint();
        if cp.body.is_none() {
            // The body is all sealed but maybe not all delivered: while
            // nothing followed it but a close_notify, its anchor still says
            // where its records are (a survivor seals the close_notify
            // again after them).
            let follows = if cp.sent_close_notify {
                s.close_notify_len() as u64
            } else {
                0
            };
            if let Some(a) = c
                .anchor
                .filter(|a| a.wire_end(s.overhead()) + follows == cp.write_stream_offset)
            {
                cp.body = Some(a);
                cp.next_body_record = a.record_count();
            }
        }
        (cp.pending_input, cp.pending_lost) =
            super::tls_input::pending_input(c.unanswered.as_deref(), &c.plain);
        if cp.pending_lost {
            // The survivor would wait for requests that are gone: it ends
            // the connection after the response instead (TAKEOVER.md).
            debug!(?conn, "pipelined input not carried by the TLS block");
        }
        match c.last_sealed.seal(self.sealer.as_ref()?, &cp, &c.aad) {
            Ok(sealed) => Some(sealed),
            Err(e) => {
                tracing::warn!(?conn, "cannot seal the TLS checkpoint: {e}");
                None
            }
        }
    }

    /// A survivor restored `conn` (named `name`) from a checkpoint with
    /// TLS block `block` and HTTP response `response`; the client
    /// acknowledged up to TCP sequence `snd_una` of a connection whose ISS
    /// was `iss`. Returns the plaintext position HTTP continues from (its
    /// "acknowledged sequence number"), and whether the dead box had read
    /// requests the block could not carry (then end the connection after
    /// the response).
    pub fn restore(
        &mut self,
        conn: ConnId,
        name: String,
        block: &[u8],
        response: Option<&ResponseCheckpoint>,
        snd_una: u32,
        iss: u32,
    ) -> Result<(u32, bool), NotResumed> {
        let cp = Checkpoint::open(block, &self.serve.cluster_key, name.as_bytes())?;
        let acked = unwrap_near(
            snd_una.wrapping_sub(iss.wrapping_add(1)),
            cp.write_stream_offset,
        );
        let mut s = Session::restore(&cp)?;
        let body = response.and_then(body_of);
        let (at, resume, started) = match (s.body().is_some(), body) {
            (true, Some((start, len))) => match s.resume_at(acked)? {
                Some(p) => (start.wrapping_add(p.plain.start as u32), Some(p), true),
                None => (start.wrapping_add(len as u32), None, false),
            },
            (true, None) => return Err(NotResumed::Position),
            (false, _) if acked != cp.write_stream_offset => return Err(NotResumed::Position),
            // The client has everything: after the response if there was
            // one (HTTP then carries on idle).
            (false, Some((start, len))) => (start.wrapping_add(len as u32), None, false),
            (false, None) => (response.map_or(0, |r| r.object_start_seq.0), None, false),
        };
        let anchor = cp.body;
        // A close_notify the client lacked after a whole body, sealed again.
        let owed = s.take_output();
        let mut c = TlsConn::new(Stage::Open(Box::new(s)), name);
        c.queue(owed);
        // Requests the dead box had read and not answered: HTTP reads them
        // first, as the client sent them before anything it sends now.
        c.plain.extend(cp.pending_input.0);
        let lost = cp.pending_lost;
        c.anchor = anchor;
        c.plain_sent = at;
        c.body = body.map(|(start, len)| (start, Some(len)));
        c.body_started = started;
        c.resume = resume;
        self.conns.insert(conn, c);
        Ok((at, lost))
    }

    /// What HTTP read of `conn`'s requests and has not answered (see
    /// `HttpSession::unanswered_input`): the next sealed blocks carry it.
    pub fn set_unanswered(&mut self, conn: ConnId, input: Option<Vec<u8>>) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.unanswered = input;
        }
    }

    /// The connection is gone.
    pub fn remove(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }

    /// Once after the record layer's state changed outside a response
    /// (KeyUpdate, close_notify): `Some(true)` when HTTP has read every
    /// decrypted byte (the checkpoint may cover all the client sent),
    /// `Some(false)` when some wait.
    pub fn take_commit_due(&mut self, conn: ConnId) -> Option<bool> {
        let c = self.conns.get_mut(&conn)?;
        std::mem::take(&mut c.commit_due).then_some(c.plain.is_empty())
    }

    /// True once after the client's close_notify: the HTTP session is told
    /// as for a FIN.
    pub fn take_peer_closed(&mut self, conn: ConnId) -> bool {
        match self.conns.get_mut(&conn) {
            Some(c) if c.peer_closed && !c.peer_closed_told => {
                c.peer_closed_told = true;
                true
            }
            _ => false,
        }
    }

    /// Moves sealed bytes into TCP as room allows; the FIN follows them
    /// when the connection is closing.
    pub fn flush<T: Transport<Conn = ConnId>>(&mut self, conn: ConnId, t: &mut T) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        flush(c, conn, t);
    }

    /// Reads what TCP holds for `conn` through the handshake or the record
    /// layer: handshake answers and alerts are queued, requests kept for
    /// HTTP.
    fn pump_in<T: Transport<Conn = ConnId>>(
        &mut self,
        conn: ConnId,
        t: &mut T,
        counters: &HttpCounters,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        loop {
            if matches!(c.stage, Stage::Failed) || c.peer_closed {
                return;
            }
            let n = t.recv(conn, &mut self.buf).min(self.buf.len());
            if n == 0 {
                return;
            }
            let input = &self.buf[..n];
            match &mut c.stage {
                Stage::Handshake(h) => {
                    let mut out = Vec::new();
                    let r = h.handle_input(input, &mut out);
                    c.queue(out);
                    match r {
                        Ok(Progress::Continue) => {}
                        Ok(Progress::Established(e)) => {
                            bump(&counters.tls_handshakes);
                            if e.resumed {
                                bump(&counters.tls_sessions_resumed);
                            }
                            debug!(
                                ?conn,
                                sni = ?e.sni,
                                resumed = e.resumed,
                                version = ?e.session.version(),
                                suite = e.session.suite(),
                                "TLS handshake done"
                            );
                            let mut s = Box::new(e.session);
                            let out = s.take_output();
                            c.queue(out);
                            c.stage = Stage::Open(s);
                            take_events(c, counters);
                        }
                        Err(e) => {
                            bump(&counters.tls_handshake_failures);
                            if c.out_len > 0 {
                                bump(&counters.tls_alerts_sent);
                            }
                            debug!(?conn, "TLS handshake failed: {e}");
                            fail(c);
                        }
                    }
                }
                Stage::Open(s) => {
                    let before = s.read_seq();
                    let r = s.handle_input(input);
                    add(&counters.tls_records_in, s.read_seq().wrapping_sub(before));
                    let out = s.take_output();
                    c.queue(out);
                    if let Err(e) = r {
                        note_error(&e, counters);
                        debug!(?conn, "TLS connection failed: {e}");
                        take_events(c, counters);
                        fail(c);
                        return;
                    }
                    take_events(c, counters);
                }
                Stage::Failed => return,
            }
        }
    }

    /// The plaintext room for HTTP: what TCP can take after the queued
    /// sealed bytes, less each record's overhead, and never past the end
    /// of the current body record.
    fn plain_capacity(&self, conn: ConnId, tcp_room: usize) -> usize {
        let Some(c) = self.conns.get(&conn) else {
            return 0;
        };
        let Stage::Open(s) = &c.stage else {
            return 0;
        };
        if c.fin_after_flush {
            return 0;
        }
        let room = tcp_room.saturating_sub(c.out_len);
        let rec = BODY_RECORD_SIZE as usize;
        let full = rec + s.overhead();
        let mut cap = (room / full) * rec + (room % full).saturating_sub(s.overhead());
        if let Some((start, len)) = c.body {
            let into = c.plain_sent.wrapping_sub(start) as u64;
            if len.is_none_or(|l| into < l) {
                // 2^32 is a multiple of the record size: the wrap keeps
                // the boundaries.
                let left = rec - (into % rec as u64) as usize;
                cap = cap.min(left);
            }
        }
        cap
    }
}

/// Where a response's body sits in the plaintext stream (start, length),
/// when it has one that goes out as body records.
fn body_of(cp: &ResponseCheckpoint) -> Option<(u32, u64)> {
    if cp.upload.is_some() || cp.method == Method::Head || matches!(cp.status, 204 | 304) {
        return None;
    }
    let len = cp.body_len.filter(|&l| l > 0)?;
    Some((cp.object_start_seq.0, len))
}

/// The stream offset whose low 32 bits are `low`, nearest `near`.
fn unwrap_near(low: u32, near: u64) -> u64 {
    let base = (near & !0xffff_ffff) | u64::from(low);
    [base.wrapping_sub(1 << 32), base, base.wrapping_add(1 << 32)]
        .into_iter()
        .min_by_key(|&v| v.abs_diff(near))
        .unwrap_or(base)
}

fn bump(c: &std::sync::atomic::AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn add(c: &std::sync::atomic::AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Counts what a record-layer error sent or received.
fn note_error(e: &TlsError, counters: &HttpCounters) {
    match e {
        TlsError::PeerAlert(_) => bump(&counters.tls_alerts_received),
        _ if e.alert().is_some() => bump(&counters.tls_alerts_sent),
        _ => {}
    }
}

/// Keeps the session's events: requests for HTTP, close_notify as EOF.
fn take_events(c: &mut TlsConn, counters: &HttpCounters) {
    let Stage::Open(s) = &mut c.stage else {
        return;
    };
    while let Some(ev) = s.poll_event() {
        match ev {
            Event::Data(d) => c.plain.extend(d),
            Event::PeerClosed => {
                bump(&counters.tls_close_notify_received);
                c.peer_closed = true;
                c.commit_due = true;
            }
            Event::PeerKeyUpdate { .. } => {
                // New read key (and write key, if asked): a survivor
                // needs them before the client's next record or ours.
                bump(&counters.tls_key_updates);
                c.commit_due = true;
            }
        }
    }
}

/// Seals the body records `buf` completes: the resumed record first (on a
/// survivor), then the next body record each time one is whole.
fn seal_body(
    s: &mut Session,
    buf: &mut Vec<u8>,
    resume: &mut Option<ResumePoint>,
) -> Result<(), TlsError> {
    loop {
        let need = match resume {
            Some(p) => (p.plain.end - p.plain.start) as usize,
            None => s.body_record_len(),
        };
        if need == 0 || buf.len() < need {
            return Ok(());
        }
        match resume.take() {
            Some(p) => s.resume_record(&p, &buf[..need])?,
            None => s.send_body_record(&buf[..need])?,
        }
        buf.drain(..need);
    }
}

/// The connection cannot go on: what is queued (an alert) goes, then FIN.
fn fail(c: &mut TlsConn) {
    c.stage = Stage::Failed;
    c.plain.clear();
    c.fin_after_flush = true;
}

fn flush<T: Transport<Conn = ConnId>>(c: &mut TlsConn, conn: ConnId, t: &mut T) {
    while let Some(front) = c.out.front_mut() {
        let room = t.send_capacity(conn);
        if room == 0 {
            return;
        }
        let piece = if front.len() <= room {
            c.out.pop_front().unwrap_or_default()
        } else {
            front.split_to(room)
        };
        c.out_len -= piece.len();
        if t.send(conn, piece).is_none() {
            c.out.clear();
            c.out_len = 0;
            return;
        }
    }
    if c.fin_after_flush && !c.fin_sent {
        c.fin_sent = true;
        t.close(conn);
    }
}

/// The worker's transport as HTTP sees it, with HTTPS connections
/// decrypted and encrypted on the way.
pub struct TlsTransport<'a, T> {
    /// The plain transport (TCP).
    pub inner: T,
    /// This worker's HTTPS connections (`None`: HTTPS is off).
    pub tls: Option<&'a mut TlsConns>,
    /// Where TLS counts go (the worker's HTTP counters).
    pub counters: &'a HttpCounters,
}

impl<T: Transport<Conn = ConnId> + TlsBlockSink> TlsTransport<'_, T> {
    /// Sends what `conn`'s TLS layer has queued.
    pub fn flush(&mut self, conn: ConnId) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.flush(conn, &mut self.inner);
        }
    }

    /// Reads what the client sent on `conn` through its record layer even
    /// when HTTP reads nothing now (a response under way): KeyUpdate,
    /// close_notify and alerts are handled as they come. Decrypted
    /// requests wait for HTTP, up to [`PLAIN_AHEAD`] bytes; beyond that TCP
    /// keeps them (its window pushes back on the client).
    pub fn pump(&mut self, conn: ConnId) {
        let Some(tls) = self.tls.as_deref_mut() else {
            return;
        };
        if tls
            .conns
            .get(&conn)
            .is_some_and(|c| c.plain.len() < PLAIN_AHEAD)
        {
            tls.pump_in(conn, &mut self.inner, self.counters);
            tls.flush(conn, &mut self.inner);
        }
    }

    /// True once after `conn`'s client sent close_notify.
    pub fn take_peer_closed(&mut self, conn: ConnId) -> bool {
        self.tls
            .as_deref_mut()
            .is_some_and(|t| t.take_peer_closed(conn))
    }
}

impl<T: Transport<Conn = ConnId> + TlsBlockSink> Transport for TlsTransport<'_, T> {
    type Conn = ConnId;

    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> usize {
        let Some(tls) = self.tls.as_deref_mut().filter(|t| t.has(conn)) else {
            return self.inner.recv(conn, buf);
        };
        tls.pump_in(conn, &mut self.inner, self.counters);
        tls.flush(conn, &mut self.inner);
        let Some(c) = tls.conns.get_mut(&conn) else {
            return 0;
        };
        let n = buf.len().min(c.plain.len());
        // Two slice copies, not a byte at a time through the iterator.
        let (a, b) = c.plain.as_slices();
        let na = n.min(a.len());
        buf[..na].copy_from_slice(&a[..na]);
        buf[na..n].copy_from_slice(&b[..n - na]);
        c.plain.drain(..n);
        n
    }

    fn send_capacity(&self, conn: ConnId) -> usize {
        let room = self.inner.send_capacity(conn);
        match self.tls.as_deref().filter(|t| t.has(conn)) {
            Some(tls) => tls.plain_capacity(conn, room),
            None => room,
        }
    }

    fn send(&mut self, conn: ConnId, data: Bytes) -> Option<u32> {
        let Some(c) = self.tls.as_deref_mut().and_then(|t| t.conns.get_mut(&conn)) else {
            return self.inner.send(conn, data);
        };
        let in_body = c.in_body();
        let Stage::Open(s) = &mut c.stage else {
            return None;
        };
        let before = s.write_seq();
        let mut started = false;
        if in_body && !c.body_started {
            // The body's first byte: its records are anchored here.
            if let Some((_, Some(len))) = c.body {
                if s.start_body(len).is_ok() {
                    c.body_started = true;
                    c.anchor = s.body().copied();
                    started = true;
                }
            }
        }
        let sealed = if in_body && c.body_started {
            c.body_buf.extend_from_slice(&data);
            seal_body(s, &mut c.body_buf, &mut c.resume)
        } else {
            s.send(&data)
        };
        if let Err(e) = sealed {
            debug!(?conn, "cannot seal: {e}");
            return None;
        }
        if let Some(a) = s.body() {
            c.anchor = Some(*a);
        }
        add(
            &self.counters.tls_records_out,
            s.write_seq().wrapping_sub(before),
        );
        let out = s.take_output();
        c.queue(out);
        let at = c.plain_sent;
        c.plain_sent = c.plain_sent.wrapping_add(data.len() as u32);
        let recommit = started.then(|| c.body_cp.take()).flatten();
        flush(c, conn, &mut self.inner);
        if let Some(cp) = recommit {
            // The anchor exists now: the checkpoint says so.
            self.checkpoint(conn, &cp);
        }
        Some(at)
    }

    fn close(&mut self, conn: ConnId) {
        let Some(c) = self.tls.as_deref_mut().and_then(|t| t.conns.get_mut(&conn)) else {
            return self.inner.close(conn);
        };
        if let Stage::Open(s) = &mut c.stage {
            if s.close().is_ok() {
                bump(&self.counters.tls_close_notify_sent);
                c.commit_due = true;
            }
            let out = s.take_output();
            c.queue(out);
        }
        c.fin_after_flush = true;
        flush(c, conn, &mut self.inner);
    }

    fn abort(&mut self, conn: ConnId) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.remove(conn);
        }
        self.inner.abort(conn);
    }

    fn unanswered_input(&mut self, conn: ConnId, input: Option<Vec<u8>>) {
        match self.tls.as_deref_mut() {
            Some(tls) if tls.conns.contains_key(&conn) => tls.set_unanswered(conn, input),
            // A plain connection: its own record carries them.
            _ => self.inner.unanswered_input(conn, input),
        }
    }

    fn checkpoint(&mut self, conn: ConnId, cp: &ResponseCheckpoint) {
        let Some(c) = self.tls.as_deref_mut().and_then(|t| t.conns.get_mut(&conn)) else {
            return self.inner.checkpoint(conn, cp);
        };
        // A response started: its body's records start at its first byte.
        if c.body
            .is_none_or(|(start, _)| start != cp.object_start_seq.0)
        {
            c.body = body_of(cp).map(|(start, len)| (start, Some(len)));
            c.body_started = false;
            c.body_buf.clear();
            c.body_cp = None;
            if c.in_body() {
                if let Stage::Open(s) = &mut c.stage {
                    if let Some((_, Some(len))) = c.body {
                        c.body_started = s.start_body(len).is_ok();
                        c.anchor = s.body().copied();
                    }
                }
                if !c.body_started {
                    // The head is still going out in pieces.
                    c.body_cp = Some(cp.clone());
                }
            }
        }
        let block = self.tls.as_deref().and_then(|t| t.sealed_block(conn));
        self.inner.set_tls_block(conn, block);
        self.inner.checkpoint(conn, cp);
    }

    fn recv_seq(&self, conn: ConnId) -> Option<u32> {
        if self.tls.as_deref().is_some_and(|t| t.has(conn)) {
            return None;
        }
        self.inner.recv_seq(conn)
    }

    fn conn_name(&self, conn: ConnId) -> Option<String> {
        self.inner.conn_name(conn)
    }
}
