//! RTSP over one worker's connections (issue 18): each connection to
//! `rtsp.port` runs a [`baton_rtsp::Conn`]; its responses and interleaved
//! frames go out on the connection, its RTP and RTCP over UDP from the
//! service IP's server ports ([`Ctx::send_datagram`]) when
//! [`RtspConns::poll`] finds them due. The worker blocks no longer than
//! the earliest due time ([`RtspConns::next_deadline`]).
//!
//! Objects come from the cache, whole: a DESCRIBE or SETUP naming an
//! object not complete in the cache is held (its bytes and everything
//! after them) while the fetch runs, then handed to the `Conn`; the bytes
//! are copied once per box into [`RtspServe`]'s table, kept while a
//! connection streams them. RTCP from a client lands on whichever worker
//! the fanout picks (its client port is not the control connection's):
//! the datagram stamps a box-wide activity cell the owning worker reads.
//!
//! It carries bytes, packets and time between the session, TCP, UDP and
//! the cache, and decides nothing of RTSP (the `baton-rtsp` crate's rules).
//! The bundle's checkpoints and its takeover are [`bundle`]'s.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use baton_dataplane::app::Ctx;
use baton_dataplane::flow::ConnId;
use baton_dataplane::tcp::FourTuple;
use baton_rtsp::session::split_url;
use baton_rtsp::{Config, Conn, Counts, Dest, FlowConfig, Limits, Message, Method, Transport};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tracing::{debug, info};

use crate::cache::{Cache, Object};
use crate::http::context::WorkerContext;

mod bundle;

/// Longest a request waits for its object to be complete in the cache;
/// then it is answered as if the object did not exist (404).
const OBJECT_WAIT: Duration = Duration::from_secs(60);

/// How often a worker looks again at objects being fetched for held
/// requests (a fill does not wake RTSP's worker).
const FETCH_LOOK: Duration = Duration::from_millis(10);

/// Interleaved bytes queued beyond TCP's buffer before media waits for
/// room (the flow falls behind and catches up within its lead).
const MAX_QUEUED: usize = 256 * 1024;

/// Received bytes taken from TCP before the `Conn` consumed them: a
/// whole request at the parser's limits (8 KiB head, 4 KiB body) fits.
const MAX_INPUT: usize = 16 * 1024;

/// Packets one connection sends per turn at most, so a stream far behind
/// does not hold the worker.
const BURST: usize = 64;

/// The box's RTSP service, shared by every worker.
pub struct RtspServe {
    /// Control port.
    pub port: u16,
    /// The server's RTP and RTCP ports (the range's first pair).
    server_ports: (u16, u16),
    timeout_ms: u64,
    /// How often a playing session's bundle is written
    /// (`rtsp.checkpoint_interval_ms`).
    checkpoint_every: Duration,
    flow: FlowConfig,
    limits: Limits,
    /// The workers' common clock origin: activity stamps cross workers.
    epoch: Instant,
    /// Key of session ids and SSRCs (unguessable, RFC 2326 §12.37).
    key: [u8; 16],
    next_id: AtomicU64,
    /// Whole objects streamed now, by URL path.
    objects: Mutex<HashMap<String, Arc<[u8]>>>,
    /// Last datagram from a client's RTP or RTCP address.
    activity: Activity,
}

/// The box's activity cells: the last datagram from a session's client
/// RTP or RTCP address (µs since the epoch, plus one: zero is never),
/// stamped by whichever worker the datagram landed on, read by the
/// session's.
#[derive(Default)]
struct Activity(Mutex<HashMap<SocketAddr, Arc<AtomicU64>>>);

impl Activity {
    /// A new cell for `addrs` (replacing any other session's there).
    fn register(&self, addrs: [SocketAddr; 2]) -> Arc<AtomicU64> {
        let cell = Arc::new(AtomicU64::new(0));
        let mut t = lock(&self.0);
        for addr in addrs {
            t.insert(addr, Arc::clone(&cell));
        }
        cell
    }

    /// Forgets `addrs` where they still lead to `cell`.
    fn unregister(&self, addrs: &[SocketAddr; 2], cell: &Arc<AtomicU64>) {
        let mut t = lock(&self.0);
        for addr in addrs {
            if t.get(addr).is_some_and(|x| Arc::ptr_eq(x, cell)) {
                t.remove(addr);
            }
        }
    }

    /// A datagram from `from` at `us`; false when no session knows it.
    fn stamp(&self, from: &SocketAddr, us: u64) -> bool {
        match lock(&self.0).get(from) {
            Some(cell) => {
                cell.fetch_max(us + 1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every mutation under these locks is one insert or remove.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RtspServe {
    /// The service `[rtsp]` describes; `None` when RTSP is off.
    pub fn from_config(config: &baton_config::Config) -> Option<Arc<RtspServe>> {
        let r = &config.rtsp;
        if !r.enabled {
            return None;
        }
        let mut key = [0u8; 16];
        // SAFETY: getrandom writes at most `key.len()` bytes into `key`.
        let n = unsafe { libc::getrandom(key.as_mut_ptr().cast(), key.len(), 0) };
        if n != key.len() as isize {
            // Ids stay distinct (a counter) though guessable: say so.
            tracing::warn!("RTSP: no random key from getrandom: session ids are predictable");
        }
        Some(Arc::new(RtspServe {
            port: r.port,
            server_ports: (r.udp_port_min, r.udp_port_min.saturating_add(1)),
            timeout_ms: r.session_timeout_ms,
            checkpoint_every: Duration::from_millis(r.checkpoint_interval_ms),
            flow: FlowConfig {
                lead_us: r.pacing_lead_ms * 1000,
                fallback_rate: (r.initial_bitrate / 8).max(1),
                sr_interval_us: 5_000_000,
            },
            limits: Limits::default(),
            epoch: Instant::now(),
            key,
            next_id: AtomicU64::new(0),
            objects: Mutex::new(HashMap::new()),
            activity: Activity::default(),
        }))
    }

    /// A fresh session id and SSRC.
    fn ids(&self) -> (u64, u32) {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let h = Sha256::new()
            .chain_update(self.key)
            .chain_update(n.to_le_bytes())
            .finalize();
        let id = u64::from_le_bytes(h[..8].try_into().unwrap_or_default());
        let ssrc = u32::from_le_bytes(h[8..12].try_into().unwrap_or_default());
        (id, ssrc)
    }

    fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    fn instant(&self, us: u64) -> Instant {
        self.epoch + Duration::from_micros(us)
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A request held until its object is complete in the cache.
struct Waiting {
    path: String,
    object: Option<Arc<Object>>,
    since: Instant,
}

/// One control connection.
struct Control {
    conn: Conn,
    tuple: FourTuple,
    /// Received bytes not given to `conn` yet (a held request and after).
    input: Vec<u8>,
    /// Bytes for the connection beyond TCP's send buffer.
    out: Vec<u8>,
    waiting: Option<Waiting>,
    /// The object this connection last asked for, kept while it lives so
    /// the box's table keeps it.
    pinned: Option<Arc<[u8]>>,
    /// The client's addresses registered for RTCP activity, and the cell.
    activity: Option<([SocketAddr; 2], Arc<AtomicU64>)>,
    seen_activity: u64,
    seen: Counts,
    /// The client sent its FIN: close once every request it sent is
    /// answered and `out` is sent.
    closing: bool,
    /// Our FIN is queued.
    closed: bool,
    /// When media, RTCP or the session's expiry is next due (µs).
    due: Option<u64>,
    /// A taken-over session waiting for its object before its `Conn` is
    /// restored from this record (`conn` is a placeholder until then).
    restore: Option<baton_rtsp::BundleRecord>,
    /// A request was answered since the last checkpoint.
    dirty: bool,
    /// When the bundle was last written.
    last_write: Option<Instant>,
    /// Drained or handed off: its last checkpoint is written.
    frozen: bool,
}

impl Control {
    /// A connection's state with nothing read, sent or due yet: a new
    /// session (`restore` None: written at once, so it is recoverable from
    /// its first moment) or a taken-over one waiting for its object.
    fn new(conn: Conn, tuple: FourTuple, restore: Option<baton_rtsp::BundleRecord>) -> Control {
        Control {
            conn,
            tuple,
            input: Vec::new(),
            out: Vec::new(),
            waiting: None,
            pinned: None,
            activity: None,
            seen_activity: 0,
            seen: Counts::default(),
            closing: false,
            closed: false,
            due: None,
            dirty: restore.is_none(),
            restore,
            last_write: None,
            frozen: false,
        }
    }

    /// When the worker must turn this connection: when it is due, or at
    /// `look` while a request waits for its object (a fill wakes no one
    /// here).
    fn wake(&self, look: u64) -> Option<u64> {
        match (self.waiting.is_some(), self.due) {
            (true, Some(d)) => Some(d.min(look)),
            (true, None) => Some(look),
            (false, d) => d,
        }
    }
}

/// One worker's RTSP connections.
pub struct RtspConns {
    serve: Arc<RtspServe>,
    cache: Arc<Cache>,
    context: Arc<WorkerContext>,
    controls: HashMap<ConnId, Control>,
    /// The earliest `due` of the connections (µs), or when to look again
    /// at a held request: the worker turns thousands of times a second,
    /// and scans its connections only when one is due.
    next_due: Option<u64>,
    /// When tables were last swept (objects nobody streams).
    last_sweep: Option<Instant>,
    /// A connection's bundle is due for a write (`Control::dirty`).
    any_dirty: bool,
    /// When a playing session's bundle is next due on the cadence: the
    /// worker polls thousands of times a second and scans its
    /// connections only when one is due.
    next_write: Option<Instant>,
    /// A session streamed from here since the last sweep of the objects
    /// table: one more is owed once none is left.
    sweep_owed: bool,
}

impl RtspConns {
    /// Worker's share of `serve`; counters go with the worker's HTTP ones.
    pub fn new(serve: Arc<RtspServe>, cache: Arc<Cache>, context: Arc<WorkerContext>) -> Self {
        RtspConns {
            serve,
            cache,
            context,
            controls: HashMap::new(),
            next_due: None,
            last_sweep: None,
            any_dirty: false,
            next_write: None,
            sweep_owed: false,
        }
    }

    /// True when a new connection to `local_port` is RTSP's.
    pub fn claims(&self, local_port: u16) -> bool {
        local_port == self.serve.port
    }

    /// True when `conn` is an RTSP connection of this worker.
    pub fn owns(&self, conn: ConnId) -> bool {
        self.controls.contains_key(&conn)
    }

    /// A connection accepted on the RTSP port.
    pub fn on_accept(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let Some(tuple) = ctx.tuple(conn) else {
            ctx.abort(conn);
            return;
        };
        let (session_id, ssrc) = self.serve.ids();
        let cfg = Config {
            client: tuple.remote.ip(),
            server: tuple.local.ip(),
            server_ports: self.serve.server_ports,
            timeout_ms: self.serve.timeout_ms,
            session_id,
            ssrc,
        };
        let serve = Arc::clone(&self.serve);
        let lookup = Box::new(move |path: &str| lock(&serve.objects).get(path).cloned());
        let mut c = Conn::new(cfg, self.serve.flow, self.serve.limits, lookup);
        // RTP over UDP for IPv4 and IPv6 players alike.
        c.set_udp(true);
        add(&self.context.counters.rtsp_connections, 1);
        debug!(?tuple, "RTSP connection");
        self.any_dirty = true;
        self.controls.insert(conn, Control::new(c, tuple, None));
    }

    /// Requests on `conn`.
    pub fn on_readable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        self.turn(conn, ctx);
    }

    /// Room to send on `conn`.
    pub fn on_writable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        self.turn(conn, ctx);
    }

    /// The client closed its side: what is owed goes out, then our FIN.
    pub fn on_peer_closed(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        if let Some(c) = self.controls.get_mut(&conn) {
            c.closing = true;
            // The FIN is acknowledged by a write that covers it.
            c.dirty = true;
        }
        self.turn(conn, ctx);
    }

    /// `conn` is gone.
    pub fn on_closed(&mut self, conn: ConnId) {
        if let Some(c) = self.controls.remove(&conn) {
            self.unregister(&c);
        }
    }

    /// A datagram from a client to a server port: an RTCP receiver report
    /// (or a NAT punch to the RTP port), proof the client is alive.
    pub fn on_datagram(&mut self, tuple: FourTuple, ctx: &mut Ctx<'_>) {
        let (lo, hi) = self.serve.server_ports;
        if !(lo..=hi).contains(&tuple.local.port()) {
            return;
        }
        add(&self.context.counters.rtcp_received, 1);
        if !self
            .serve
            .activity
            .stamp(&tuple.remote, self.serve.us(ctx.now()))
        {
            debug!(?tuple, "RTCP from an address no session knows");
        }
    }

    /// Media and RTCP that are due, held requests whose object came, and
    /// the sweep of objects nobody streams.
    pub fn poll(&mut self, ctx: &mut Ctx<'_>) {
        if self.controls.is_empty() && self.next_due.is_none() {
            // Nothing streams from this worker: the objects table gets one
            // sweep after its last session left, then the turn costs nothing.
            if std::mem::take(&mut self.sweep_owed) {
                lock(&self.serve.objects).retain(|_, o| Arc::strong_count(o) > 1);
            }
            return;
        }
        self.sweep_owed = true;
        let now = ctx.now();
        let now_us = self.serve.us(now);
        if self.next_due.is_some_and(|d| d <= now_us) {
            let due: Vec<ConnId> = self
                .controls
                .iter()
                .filter(|(_, c)| c.waiting.is_some() || c.due.is_some_and(|d| d <= now_us))
                .map(|(id, _)| *id)
                .collect();
            for conn in due {
                self.turn(conn, ctx);
            }
            let look = self.serve.us(now + FETCH_LOOK);
            self.next_due = self.controls.values().filter_map(|c| c.wake(look)).min();
        }
        if self
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            self.last_sweep = Some(now);
            // Only the table holds it: no connection streams it any more.
            lock(&self.serve.objects).retain(|_, o| Arc::strong_count(o) > 1);
        }
    }

    /// When the worker must look again though no packet came.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_due.map(|us| self.serve.instant(us))
    }

    /// Everything one connection can do now: feed requests, send what is
    /// due, flush, count, and note when it is next due.
    fn turn(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let now_us = self.serve.us(ctx.now());
        let Some(mut c) = self.controls.remove(&conn) else {
            return;
        };
        if c.restore.is_some() && !self.finish_restore(conn, &mut c, now_us, ctx) {
            if c.restore.is_some() {
                let look = self.serve.us(ctx.now() + FETCH_LOOK);
                self.next_due = Some(self.next_due.map_or(look, |d| d.min(look)));
                self.controls.insert(conn, c);
            }
            return;
        }
        // Requests while they make progress; what is not taken stays in
        // TCP's buffer (its window closes on a client that floods).
        for _ in 0..8 {
            pull(conn, &mut c, ctx);
            let before = c.input.len();
            self.feed(&mut c, now_us, ctx.now());
            if c.input.len() == before || ctx.recv_available(conn) == 0 {
                break;
            }
        }
        self.register(&mut c);
        self.activity(&mut c);
        self.media(&mut c, now_us, ctx);
        flush(conn, &mut c, ctx);
        self.count(&mut c);
        c.due = match (c.conn.poll_at(), c.conn.rtcp_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let look = self.serve.us(ctx.now() + FETCH_LOOK);
        if let Some(at) = c.wake(look) {
            self.next_due = Some(self.next_due.map_or(at, |d| d.min(at)));
        }
        // A held request, or bytes TCP holds for us, are still owed an
        // answer; an incomplete request after the FIN never will be.
        let owed = !c.conn.closing() && (c.waiting.is_some() || ctx.recv_available(conn) > 0);
        if (c.closing || c.conn.closing()) && !owed && c.out.is_empty() && !c.closed {
            c.closed = true;
            ctx.close(conn);
        }
        self.any_dirty |= c.dirty;
        self.controls.insert(conn, c);
    }

    /// Gives `c`'s `Conn` every complete request whose object is ready;
    /// stops at a DESCRIBE or SETUP whose object is still being fetched.
    fn feed(&self, c: &mut Control, now_us: u64, now: Instant) {
        // Answers wait while the client does not read them.
        while !c.input.is_empty() && c.out.len() <= MAX_QUEUED {
            let take = match baton_rtsp::parse(&c.input, &self.serve.limits) {
                Ok(None) => return,
                Ok(Some(Message::Request(req, len))) => {
                    if matches!(req.method, Method::Describe | Method::Setup) {
                        if let Some((path, _)) = split_url(&req.uri) {
                            if !self.ready(c, path, now) {
                                return;
                            }
                        }
                    }
                    len
                }
                Ok(Some(Message::Interleaved { len, .. })) => {
                    let total = 4 + usize::from(len);
                    if c.input.len() < total {
                        return;
                    }
                    total
                }
                // The Conn answers what does not parse, and closes.
                Err(_) => c.input.len(),
            };
            let take = take.min(c.input.len());
            let bytes: Vec<u8> = c.input.drain(..take).collect();
            let before = c.conn.state();
            c.conn.on_bytes(now_us, &bytes, &mut c.out);
            c.dirty = true;
            if before == baton_rtsp::State::Init && c.conn.state() != before {
                add(&self.context.counters.rtsp_sessions, 1);
            }
            if c.conn.closing() {
                c.input.clear();
            }
        }
    }

    /// Whether `path` can be answered now: complete in the box's table
    /// (pinned for `c`), or known not to be served. Starts the fetch.
    fn ready(&self, c: &mut Control, path: &str, now: Instant) -> bool {
        if let Some(o) = lock(&self.serve.objects).get(path) {
            c.pinned = Some(Arc::clone(o));
            c.waiting = None;
            return true;
        }
        let w = match c.waiting.take() {
            Some(w) if w.path == path => w,
            _ => Waiting {
                path: path.to_string(),
                object: match self.cache.try_lookup(path, now) {
                    Ok(l) => Some(Arc::clone(l.object())),
                    Err(e) => {
                        info!(path, %e, "RTSP: no fetch possible: answered as not found");
                        None
                    }
                },
                since: now,
            },
        };
        let Some(object) = w.object.as_ref() else {
            return true;
        };
        if let Some(body) = object.body() {
            if object.meta().is_some_and(|m| m.status == 200) {
                let mut whole = Vec::with_capacity(body.len() as usize);
                for chunk in body.chunks() {
                    whole.extend_from_slice(chunk);
                }
                let whole: Arc<[u8]> = whole.into();
                lock(&self.serve.objects)
                    .entry(path.to_string())
                    .or_insert_with(|| Arc::clone(&whole));
                c.pinned = Some(whole);
            }
            return true;
        }
        if let Some(e) = object.failure() {
            info!(path, %e, "RTSP: the origin fetch failed: answered as not found");
            return true;
        }
        if now.saturating_duration_since(w.since) >= OBJECT_WAIT {
            info!(
                path,
                "RTSP: the object is not complete in time: answered as not found"
            );
            return true;
        }
        c.waiting = Some(w);
        false
    }

    /// Keeps the box's activity cells in step with `c`'s UDP transport.
    fn register(&self, c: &mut Control) {
        let addrs = match c.conn.transport() {
            Some(Transport::Udp {
                client_rtp,
                client_rtcp,
            }) => {
                let ip = c.tuple.remote.ip();
                Some([
                    SocketAddr::new(ip, client_rtp),
                    SocketAddr::new(ip, client_rtcp),
                ])
            }
            _ => None,
        };
        if c.activity.as_ref().map(|(a, _)| *a) == addrs {
            return;
        }
        self.unregister(c);
        c.activity = addrs.map(|a| (a, self.serve.activity.register(a)));
    }

    fn unregister(&self, c: &Control) {
        if let Some((addrs, cell)) = &c.activity {
            self.serve.activity.unregister(addrs, cell);
        }
    }

    /// An RTCP report seen by any worker restarts the session's timeout.
    fn activity(&self, c: &mut Control) {
        let Some((_, cell)) = &c.activity else {
            return;
        };
        let at = cell.load(Ordering::Relaxed);
        if at > c.seen_activity {
            c.seen_activity = at;
            c.conn.on_activity(at - 1);
        }
    }

    /// Sends the RTP and RTCP packets due at `now_us`; ends an expired
    /// session.
    fn media(&self, c: &mut Control, now_us: u64, ctx: &mut Ctx<'_>) {
        let k = &self.context.counters;
        let local = c.tuple.local.ip();
        let client = c.tuple.remote.ip();
        let (rtp_port, rtcp_port) = self.serve.server_ports;
        for _ in 0..BURST {
            if c.conn.poll_at().is_none_or(|at| at > now_us) || c.out.len() > MAX_QUEUED {
                break;
            }
            let mut pkt = Vec::with_capacity(1400);
            match c.conn.poll_media(now_us, &mut pkt) {
                Some(Dest::Udp(port)) => {
                    add(&k.rtp_packets_udp, 1);
                    add(&k.rtp_bytes, pkt.len() as u64);
                    ctx.send_datagram(udp(local, rtp_port, client, port), Bytes::from(pkt));
                }
                Some(Dest::Tcp) => {
                    add(&k.rtp_packets_tcp, 1);
                    add(&k.rtp_bytes, pkt.len().saturating_sub(4) as u64);
                    c.out.extend_from_slice(&pkt);
                }
                None => {
                    // Due but no packet: the session's expiry.
                    if c.conn.handle_timeout(now_us) {
                        add(&k.rtsp_sessions_expired, 1);
                        info!(tuple = ?c.tuple, "RTSP session expired");
                    }
                    break;
                }
            }
        }
        while c.conn.rtcp_at().is_some_and(|at| at <= now_us) {
            let mut pkt = Vec::new();
            let cname = format!("baton@{local}");
            match c.conn.poll_rtcp(now_us, ntp_now(), &cname, &mut pkt) {
                Some(Dest::Udp(port)) => {
                    ctx.send_datagram(udp(local, rtcp_port, client, port), Bytes::from(pkt));
                }
                Some(Dest::Tcp) => c.out.extend_from_slice(&pkt),
                None => break,
            }
            add(&k.rtcp_sent, 1);
        }
    }

    /// Adds what `c` answered since last time to the worker's counters.
    fn count(&self, c: &mut Control) {
        let now = c.conn.counts();
        let k = &self.context.counters;
        add(&k.rtsp_requests, now.requests - c.seen.requests);
        add(&k.rtsp_refused, now.refused - c.seen.refused);
        c.seen = now;
    }
}

/// Takes `conn`'s received bytes into `c.input`, up to [`MAX_INPUT`];
/// after a refused parse they are read and dropped.
fn pull(conn: ConnId, c: &mut Control, ctx: &mut Ctx<'_>) {
    let mut buf = [0u8; 4096];
    while c.input.len() < MAX_INPUT {
        let n = ctx.recv(conn, &mut buf).unwrap_or(0);
        if n == 0 {
            return;
        }
        if !c.conn.closing() {
            c.input.extend_from_slice(&buf[..n]);
        }
    }
}

/// Sends what fits of `c`'s queued bytes.
fn flush(conn: ConnId, c: &mut Control, ctx: &mut Ctx<'_>) {
    while !c.out.is_empty() {
        let n = ctx.send_capacity(conn).min(c.out.len());
        if n == 0 {
            return;
        }
        if ctx.send(conn, Bytes::copy_from_slice(&c.out[..n])).is_err() {
            // Gone or closed for sending: nothing more will go.
            c.out.clear();
            return;
        }
        c.out.drain(..n);
    }
}

fn udp(local: IpAddr, local_port: u16, remote: IpAddr, remote_port: u16) -> FourTuple {
    FourTuple {
        local: SocketAddr::new(local, local_port),
        remote: SocketAddr::new(remote, remote_port),
    }
}

/// The wallclock in NTP format (seconds since 1900 << 32 | fraction), for
/// sender reports.
fn ntp_now() -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() + UNIX_TO_NTP;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_on_any_worker_reaches_the_session_that_registered_its_address() {
        let table = Activity::default();
        let ip = IpAddr::from([198, 18, 0, 100]);
        let (rtp, rtcp) = (SocketAddr::new(ip, 5000), SocketAddr::new(ip, 5001));
        let cell = table.register([rtp, rtcp]);
        assert_eq!(cell.load(Ordering::Relaxed), 0, "no report yet");
        // Another worker's datagram from the client's RTCP port.
        assert!(table.stamp(&rtcp, 7_000));
        assert_eq!(cell.load(Ordering::Relaxed), 7_001);
        // A late datagram never moves the stamp back.
        assert!(table.stamp(&rtp, 5_000));
        assert_eq!(cell.load(Ordering::Relaxed), 7_001);
        assert!(!table.stamp(&SocketAddr::new(ip, 6000), 8_000));
        // A newer session on the same addresses takes them; the old one's
        // unregistering leaves them to it.
        let newer = table.register([rtp, rtcp]);
        table.unregister(&[rtp, rtcp], &cell);
        assert!(table.stamp(&rtcp, 9_000));
        assert_eq!(newer.load(Ordering::Relaxed), 9_001);
        assert_eq!(cell.load(Ordering::Relaxed), 7_001);
        table.unregister(&[rtp, rtcp], &newer);
        assert!(!table.stamp(&rtcp, 10_000));
    }

    #[test]
    fn ntp_time_is_past_2020_and_its_fraction_fits_32_bits() {
        let t = ntp_now();
        // 2020-01-01 is 3,786,825,600 s after 1900.
        assert!(t >> 32 > 3_786_825_600);
    }
}
