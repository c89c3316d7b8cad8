//! The glue between the userspace TCP stack and the HTTP cache: one
//! [`CacheApp`] per dataplane worker forwards the worker's connection events
//! to the HTTP driver ([`crate::http::worker::HttpWorker`]) and gives that
//! driver the worker's connections through [`Transport`]. Checkpoints go
//! through [`checkpoint::Checkpointer`], which appends the TCP block to the
//! application's block (seed Fig. 4: each layer adds its own state).
//!
//! It carries events and bytes between the two and decides nothing of
//! either: HTTP's rules are the sessions', TCP's the dataplane's, and which
//! orphan is whose the control core's (`crate::orphans`).
pub(crate) mod checkpoint;
pub mod ftp;
pub mod ftp_hub;
mod ftp_index;
mod http_pending;
mod parking;
pub mod rtsp;
pub mod tls;
mod tls_block;
mod tls_input;
mod unresumed;

use baton_dataplane::connmap::ConnMap;
use std::any::Any;
use std::sync::{Arc, OnceLock};

use baton_dataplane::app::{App, CloseReason, Ctx, UnknownAction};
use baton_dataplane::flow::ConnId;
use baton_dataplane::tcp::{FourTuple, SeqNum, State};
use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::cache::Cache;
use crate::http::checkpoint::ResponseCheckpoint;
use crate::http::request::Limits;
use crate::http::worker::{HttpWorker, Transport};
use crate::orphans::{OrphanRoute, OrphanTable, Restore};
use crate::record::seqs;
use crate::spool::Spool;
use crate::strays::{StrayRoute, Strays};
use checkpoint::Checkpointer;
use http_pending::PendingRequests;
use tls::{TlsBlockSink, TlsConns, TlsServe, TlsTransport};

/// A waker that exists before the worker does: the HTTP driver is built by
/// the app factory, the worker's eventfd becomes known at its first
/// callback. Until then progress waits in the channel, which the worker
/// polls every iteration anyway.
#[derive(Default)]
struct LateWaker(OnceLock<baton_dataplane::worker::Waker>);

impl crate::cache::Waker for LateWaker {
    fn wake(&self) {
        if let Some(w) = self.0.get() {
            w.wake();
        }
    }
}

/// One worker's application: HTTP sessions over the worker's connections.
pub struct CacheApp {
    http: HttpWorker<ConnId>,
    waker: Arc<LateWaker>,
    checkpoints: Option<Checkpointer>,
    orphans: Arc<OrphanTable>,
    strays: Arc<Strays>,
    /// Restored connections waiting for "ready", with their state.
    restoring: ConnMap<ConnId, Restore>,
    /// Restored connections that could not resume, told once a second.
    unresumed: unresumed::Unresumed,
    /// The test hook that panics this worker on purpose (`crate::fatal`).
    test_panic: Option<crate::fatal::TestPanic>,
    /// HTTPS connections (none when `[tls]` is off).
    tls: Option<TlsConns>,
    /// The HTTP driver's context (TLS counts go with HTTP's).
    counters: Arc<crate::http::context::WorkerContext>,
    /// FTP connections (none when `[ftp]` is off).
    ftp: Option<ftp::FtpConns>,
    /// RTSP connections (none when `[rtsp]` is off).
    rtsp: Option<rtsp::RtspConns>,
    /// Idle connections kept as their checkpoints alone (none when
    /// `checkpoint.park_idle_after_ms` is 0 or checkpoints are off).
    parking: Option<parking::Parking>,
}

/// What every worker's app shares with the rest of the box.
#[derive(Clone)]
pub struct BoxShared {
    /// The object cache.
    pub cache: Arc<Cache>,
    /// Connections of dead or drained boxes, and where their frames go.
    pub orphans: Arc<OrphanTable>,
    /// Where frames of connections that other boxes hold go.
    pub strays: Arc<Strays>,
    /// Where uploads in flight are kept.
    pub spool: Arc<Spool>,
    /// Every worker's HTTP counters, for the admin API.
    pub http_workers: crate::http::HttpWorkers,
    /// Request limits.
    pub limits: Limits,
    /// Most sessions one worker serves.
    pub max_sessions: usize,
    /// HTTPS settings, built once at start (`None`: `[tls]` is off).
    pub tls: Option<Arc<TlsServe>>,
    /// The FTP service (`None`: `[ftp]` is off).
    pub ftp: Option<Arc<ftp::FtpServe>>,
    /// The RTSP service (`None`: `[rtsp]` is off).
    pub rtsp: Option<Arc<rtsp::RtspServe>>,
}

impl CacheApp {
    /// The app of worker `worker`, writing its checkpoints with
    /// `checkpoints` (none: checkpointing is off or out of slots).
    pub fn new(worker: usize, checkpoints: Option<Checkpointer>, shared: &BoxShared) -> CacheApp {
        let waker = Arc::new(LateWaker::default());
        let http = HttpWorker::with_spool(
            Arc::clone(&shared.cache),
            worker,
            waker.clone(),
            shared.limits,
            shared.max_sessions,
            Arc::clone(&shared.spool),
        );
        shared.http_workers.register(Arc::clone(http.context()));
        let counters = Arc::clone(http.context());
        let ftp = shared.ftp.clone().map(|f| {
            let cache = Arc::clone(&shared.cache);
            ftp::FtpConns::new(f, cache, Arc::clone(&counters), worker)
        });
        let rtsp = shared
            .rtsp
            .clone()
            .map(|r| rtsp::RtspConns::new(r, Arc::clone(&shared.cache), Arc::clone(&counters)));
        let parking = checkpoints.as_ref().and_then(|c| {
            Some(parking::Parking::new(
                c.park_after()?,
                shared.limits.idle_timeout,
                c.slot_range(),
                std::time::Instant::now(),
            ))
        });
        CacheApp {
            http,
            waker,
            checkpoints,
            orphans: Arc::clone(&shared.orphans),
            strays: Arc::clone(&shared.strays),
            restoring: ConnMap::default(),
            unresumed: unresumed::Unresumed::default(),
            test_panic: None,
            tls: shared.tls.clone().map(TlsConns::new),
            counters,
            ftp,
            rtsp,
            parking,
        }
    }

    /// Arms the test hook of `crate::fatal::TEST_PANIC_ENV` for this app.
    pub(crate) fn arm_test_panic(&mut self, hook: Option<crate::fatal::TestPanic>) {
        self.test_panic = hook;
    }

    /// When `conn`'s session has answered all it read while TCP still
    /// holds client bytes unacknowledged (an answer made up by the box, a
    /// FIN, bytes between requests), a checkpoint covering them commits
    /// them. A response's own checkpoint already commits its request.
    fn cover(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        if !ctx.ack_held(conn) {
            return;
        }
        self.refresh_tls(conn);
        let Some(c) = self.checkpoints.as_mut() else {
            return;
        };
        match self.http.session(conn) {
            Some(s) if s.answered_all() => c.cover(ctx, conn, s.checkpoint().as_deref()),
            Some(_) => {}
            None => c.cover(ctx, conn, None),
        }
    }

    /// Gives the checkpoint writer `conn`'s current TLS block before it
    /// writes (a plain connection has none).
    fn refresh_tls(&mut self, conn: ConnId) {
        let (Some(tls), Some(c)) = (self.tls.as_mut(), self.checkpoints.as_mut()) else {
            return;
        };
        if tls.has(conn) {
            let unanswered = self
                .http
                .session(conn)
                .map_or(Some(Vec::new()), |s| s.unanswered_input());
            tls.set_unanswered(conn, unanswered);
            c.set_tls(conn, tls.sealed_block(conn));
        }
    }

    /// Writes `conn`'s checkpoint now when its record layer changed outside
    /// a response (KeyUpdate, close_notify): a survivor must not find the
    /// old keys or sequence numbers.
    fn commit_tls_if_due(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let Some(all_read) = self.tls.as_mut().and_then(|t| t.take_commit_due(conn)) else {
            return;
        };
        self.refresh_tls(conn);
        let response = self.http.session(conn).and_then(|s| s.checkpoint());
        if let Some(c) = self.checkpoints.as_mut() {
            if all_read {
                c.cover(ctx, conn, response.as_deref());
            } else {
                c.commit(ctx, conn, response.as_deref());
            }
        }
    }

    /// The name a sealed TLS block is bound to: both ends, as a survivor
    /// sees them too.
    fn tls_name(ctx: &Ctx<'_>, conn: ConnId) -> String {
        ctx.tuple(conn)
            .map(|t| format!("{}-{}", t.remote, t.local))
            .unwrap_or_default()
    }

    /// A restored connection to the HTTPS port: its record layer from the
    /// checkpoint's TLS block. Returns the plaintext position HTTP goes on
    /// from and whether the dead box's pipelined input was lost, or `None`
    /// when the connection was reset.
    fn restore_tls(
        &mut self,
        conn: ConnId,
        block: Option<&[u8]>,
        response: Option<&ResponseCheckpoint>,
        snd_una: SeqNum,
        ctx: &mut Ctx<'_>,
    ) -> Option<(u32, bool)> {
        let counters = &self.counters.counters;
        let name = Self::tls_name(ctx, conn);
        let iss = ctx.export(conn).map(|e| seqs(&e).iss.0);
        let r = match (self.tls.as_mut(), block, iss) {
            (None, _, _) => Err(tls::NotResumed::Off),
            (_, None, _) | (_, _, None) => Err(tls::NotResumed::NoBlock),
            (Some(tls), Some(b), Some(iss)) => tls.restore(conn, name, b, response, snd_una.0, iss),
        };
        match r {
            Ok(at) => {
                counters
                    .tls_resumed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Some(at)
            }
            Err(why) => {
                info!(tuple = ?ctx.tuple(conn), "HTTPS connection not resumed: {why}");
                counters
                    .tls_not_resumed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                ctx.abort(conn);
                None
            }
        }
    }

    /// True when `conn` was accepted on the HTTPS port.
    fn on_tls_port(&self, ctx: &Ctx<'_>, conn: ConnId) -> bool {
        self.tls.as_ref().is_some_and(|tls| {
            ctx.tuple(conn)
                .is_some_and(|t| t.local.port() == tls.port())
        })
    }
}

/// The HTTP driver's transport over the worker's connections, HTTPS ones
/// through their TLS layer (a macro: the borrows of `$app`'s fields stay
/// apart).
macro_rules! transport {
    ($app:expr, $ctx:expr) => {
        TlsTransport {
            inner: CtxTransport {
                ctx: $ctx,
                checkpoints: &mut $app.checkpoints,
            },
            tls: $app.tls.as_mut(),
            counters: &$app.counters.counters,
        }
    };
}

/// The worker's connections as the HTTP driver sees them.
struct CtxTransport<'a, 'b> {
    ctx: &'a mut Ctx<'b>,
    checkpoints: &'a mut Option<Checkpointer>,
}

impl TlsBlockSink for CtxTransport<'_, '_> {
    fn set_tls_block(&mut self, conn: ConnId, block: Option<Vec<u8>>) {
        if let Some(c) = self.checkpoints.as_mut() {
            c.set_tls(conn, block);
        }
    }
}

impl Transport for CtxTransport<'_, '_> {
    type Conn = ConnId;

    fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> usize {
        self.ctx.recv(conn, buf).unwrap_or(0)
    }

    fn send_capacity(&self, conn: ConnId) -> usize {
        self.ctx.send_capacity(conn)
    }

    fn send(&mut self, conn: ConnId, data: Bytes) -> Option<u32> {
        self.ctx.send(conn, data).ok().map(|SeqNum(s)| s)
    }

    fn close(&mut self, conn: ConnId) {
        self.ctx.close(conn);
    }

    fn abort(&mut self, conn: ConnId) {
        self.ctx.abort(conn);
    }

    fn checkpoint(&mut self, conn: ConnId, cp: &ResponseCheckpoint) {
        if let Some(c) = self.checkpoints.as_mut() {
            c.commit(self.ctx, conn, Some(cp));
        }
    }

    fn unanswered_input(&mut self, conn: ConnId, input: Option<Vec<u8>>) {
        if let Some(c) = self.checkpoints.as_mut() {
            let unread = self.ctx.recv_available(conn);
            c.set_pending(conn, PendingRequests::of(input, unread).encode());
        }
    }

    fn recv_seq(&self, conn: ConnId) -> Option<u32> {
        use baton_dataplane::tcp::State;
        let e = self.ctx.export(conn)?;
        // RCV.NXT counts the client's FIN once it came (RFC 9293 §3.4).
        let fin = matches!(
            e.state,
            State::CloseWait | State::LastAck | State::Closing | State::TimeWait
        );
        let queued = self.ctx.recv_available(conn) as u32 + u32::from(fin);
        Some((seqs(&e).rcv_nxt - queued).0)
    }

    fn conn_name(&self, conn: ConnId) -> Option<String> {
        let t = self.ctx.tuple(conn)?;
        let irs = seqs(&self.ctx.export(conn)?).irs.0;
        // Both ends and the client's ISN: the same on a survivor, and a new
        // connection on a reused 4-tuple gets another name.
        Some(format!("{}-{}-{irs:08x}", t.remote, t.local).replace([':', '[', ']'], "_"))
    }
}

impl CacheApp {
    /// `conn` leaves this box (handed off or released): its exact final
    /// checkpoint is written and every part of the app forgets it.
    fn let_go(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        self.on_freeze(conn, ctx);
        if let Some(c) = self.checkpoints.as_mut() {
            c.forget(conn);
        }
        if let Some(f) = self.ftp.as_mut() {
            f.forget(conn);
        }
        if let Some(r) = self.rtsp.as_mut() {
            r.forget(conn);
        }
        self.http.on_handed_off(conn);
    }
}

impl App for CacheApp {
    fn on_accept(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        if let Some(p) = self.test_panic.as_mut() {
            p.accepted();
        }
        if let Some(tuple) = ctx.tuple(conn) {
            self.drop_parked_namesake(&tuple);
        }
        if let Some(f) = self.ftp.as_mut() {
            if ctx.tuple(conn).is_some_and(|t| f.claims(t.local.port())) {
                f.on_accept(conn, ctx);
                f.checkpoint(ctx, self.checkpoints.as_mut());
                return;
            }
        }
        if let Some(r) = self.rtsp.as_mut() {
            if ctx.tuple(conn).is_some_and(|t| r.claims(t.local.port())) {
                r.on_accept(conn, ctx);
                return r.checkpoint(ctx, self.checkpoints.as_mut());
            }
        }
        let now = ctx.now();
        if self.on_tls_port(ctx, conn) {
            let name = Self::tls_name(ctx, conn);
            if !self.tls.as_mut().is_some_and(|tls| tls.accept(conn, name)) {
                ctx.abort(conn);
                return;
            }
        }
        if let Some(c) = self.checkpoints.as_mut() {
            // A connection is recoverable from its first moment: an idle
            // keep-alive connection taken over is simply served again (an
            // HTTPS one in its handshake has no TLS block: a survivor
            // resets it).
            c.commit(ctx, conn, None);
        } else {
            // No checkpoint will commit the client's bytes.
            ctx.set_ack_hold(conn, false);
        }
        let mut t = transport!(self, ctx);
        self.http.on_accept(conn, &mut t, now);
        self.cover(conn, ctx);
        self.note_rest(conn, now);
    }

    fn on_readable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        if let Some(f) = self.ftp.as_mut().filter(|f| f.owns(conn)) {
            f.on_readable(conn, ctx);
            return f.checkpoint(ctx, self.checkpoints.as_mut());
        }
        if let Some(r) = self.rtsp.as_mut().filter(|r| r.owns(conn)) {
            r.on_readable(conn, ctx);
            return r.checkpoint(ctx, self.checkpoints.as_mut());
        }
        let now = ctx.now();
        let mut t = transport!(self, ctx);
        t.flush(conn);
        t.pump(conn);
        self.http.on_readable(conn, &mut t, now);
        if t.take_peer_closed(conn) {
            self.http.on_peer_closed(conn, &mut t, now);
        }
        self.commit_tls_if_due(conn, ctx);
        self.cover(conn, ctx);
    }

    fn on_writable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        if let Some(f) = self.ftp.as_mut().filter(|f| f.owns(conn)) {
            f.on_writable(conn, ctx);
            return f.checkpoint(ctx, self.checkpoints.as_mut());
        }
        if let Some(r) = self.rtsp.as_mut().filter(|r| r.owns(conn)) {
            r.on_writable(conn, ctx);
            return r.checkpoint(ctx, self.checkpoints.as_mut());
        }
        let now = ctx.now();
        let mut t = transport!(self, ctx);
        t.flush(conn);
        self.http.on_writable(conn, &mut t, now);
        self.commit_tls_if_due(conn, ctx);
        let progress = self
            .checkpoints
            .as_ref()
            .is_some_and(|c| c.progress_due(ctx, conn));
        // At rest with all acknowledged: the session keeps the last
        // response as a marker and the record says the client has it all
        // (a mass takeover parks such a connection instead of probing it;
        // never an HTTPS one, whose TLS block must be restored with it, so
        // its sealing is not paid for that). Whether or not progress is
        // due too: a response's last ACK often is both.
        let rests = ctx.recv_available(conn) == 0
            && !self.tls.as_ref().is_some_and(|t| t.has(conn))
            && self.http.session(conn).is_some_and(|s| s.at_rest());
        let settled = rests
            .then(|| self.checkpoints.as_ref()?.settle_due(ctx, conn))
            .flatten();
        if let Some(acked) = settled {
            // The client has the last response whole: its record shrinks
            // to a marker, here and in the segment.
            self.http.settle(conn, acked);
            self.note_rest(conn, now);
        }
        if progress || settled.is_some() {
            self.refresh_tls(conn);
            if let Some(c) = self.checkpoints.as_mut() {
                let response = self.http.session(conn).and_then(|s| s.checkpoint());
                c.write_progress(ctx, conn, response.as_deref());
            }
        }
        self.cover(conn, ctx);
    }

    fn on_peer_closed(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        if let Some(f) = self.ftp.as_mut().filter(|f| f.owns(conn)) {
            f.on_peer_closed(conn, ctx);
            return f.checkpoint(ctx, self.checkpoints.as_mut());
        }
        if let Some(r) = self.rtsp.as_mut().filter(|r| r.owns(conn)) {
            r.on_peer_closed(conn, ctx);
            return r.checkpoint(ctx, self.checkpoints.as_mut());
        }
        let now = ctx.now();
        let mut t = transport!(self, ctx);
        self.http.on_peer_closed(conn, &mut t, now);
        self.commit_tls_if_due(conn, ctx);
        // The client's FIN is acknowledged by a checkpoint that covers it
        // (CLOSE-WAIT or LAST-ACK, RCV.NXT past the FIN): a survivor then
        // restores the half-closed connection. Until the session answered
        // what came before the FIN, the FIN waits with those requests.
        self.cover(conn, ctx);
    }

    fn on_closed(&mut self, conn: ConnId, reason: CloseReason, _ctx: &mut Ctx<'_>) {
        if let Some(f) = self.ftp.as_mut().filter(|f| f.owns(conn)) {
            f.on_closed(conn, reason);
            if let Some(c) = self.checkpoints.as_mut() {
                c.release(conn);
            }
            return f.checkpoint(_ctx, self.checkpoints.as_mut());
        }
        if let Some(r) = self.rtsp.as_mut().filter(|r| r.owns(conn)) {
            r.on_closed(conn);
            if let Some(c) = self.checkpoints.as_mut() {
                c.release(conn);
            }
            return;
        }
        if let Some(p) = self.parking.as_mut() {
            p.woke(conn);
        }
        if self.restoring.remove(&conn).is_some() {
            if reason == CloseReason::NotReady {
                self.unresumed.note(_ctx.tuple(conn), _ctx.now());
            } else {
                // A FIN-WAIT-2 checkpoint held until the client closed, or
                // a connection closed on both sides after its last record:
                // everything was delivered.
                debug!(tuple = ?_ctx.tuple(conn), ?reason, "restored connection had delivered everything: closed with the client");
            }
        }
        self.http.on_closed(conn);
        if let Some(tls) = self.tls.as_mut() {
            tls.remove(conn);
        }
        if let Some(c) = self.checkpoints.as_mut() {
            c.release(conn);
        }
    }

    fn on_freeze(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        if let Some(f) = self.ftp.as_mut().filter(|f| f.owns(conn)) {
            // The bundle's last write, once for both members.
            return f.freeze(conn, ctx, self.checkpoints.as_mut());
        }
        if let Some(r) = self.rtsp.as_mut().filter(|r| r.owns(conn)) {
            return r.freeze(conn, ctx, self.checkpoints.as_mut());
        }
        // The final checkpoint must cover what TCP acknowledged: an
        // upload's body bytes still in the receive queue go to the spool
        // first (without ack_after_commit they are acknowledged already).
        let now = ctx.now();
        let mut t = transport!(self, ctx);
        self.http.absorb_input(conn, &mut t, now);
        self.refresh_tls(conn);
        if let Some(c) = self.checkpoints.as_mut() {
            let response = self.http.session(conn).and_then(|s| s.checkpoint());
            c.commit_final(ctx, conn, response.as_deref());
        }
    }

    fn on_handoff(
        &mut self,
        conn: ConnId,
        to: baton_dataplane::wire::ethernet::MacAddr,
        ctx: &mut Ctx<'_>,
    ) {
        if let Some(tuple) = ctx.tuple(conn) {
            // The client still sends to our address: its frames go on to
            // the adopting box.
            self.orphans.insert(tuple, OrphanRoute::Elsewhere(to));
        }
        self.let_go(conn, ctx);
    }

    fn on_release(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        // No route: its frames meet the stray lookup, which finds our own
        // record and holds them until the survivors' takeover has it.
        self.let_go(conn, ctx);
    }

    fn on_unknown_segment(&mut self, tuple: FourTuple, rst: bool) -> UnknownAction {
        let route = self.orphans.route(&tuple);
        debug!(?tuple, ?route, "segment for an unknown connection");
        match route {
            // Not an orphan: another box may hold it (a flow the switch
            // moved here); only a connection no box has a record of is
            // the listener's to answer (with a RST).
            None => match self.parked_segment(&tuple, rst) {
                Some(action) => action,
                None => match self.strays.route(&tuple) {
                    StrayRoute::Forward(mac) => UnknownAction::Forward(mac),
                    StrayRoute::Hold => UnknownAction::Drop,
                    StrayRoute::Unknown => UnknownAction::Listener,
                },
            },
            Some(OrphanRoute::Elsewhere(mac)) => UnknownAction::Forward(mac),
            // The shared orphan goes along as it is: `on_restored` takes
            // its parts once the table has let go of it.
            Some(OrphanRoute::Mine(orphan)) => {
                UnknownAction::Restore(orphan.export, Box::new(orphan))
            }
        }
    }

    fn on_handoff_parked(
        &mut self,
        tuple: &FourTuple,
        to: baton_dataplane::wire::ethernet::MacAddr,
    ) -> bool {
        self.hand_off_parked(tuple, to)
    }

    fn on_release_parked(&mut self) -> usize {
        self.release_parked()
    }

    fn is_orphan(&mut self, tuple: &FourTuple) -> bool {
        self.orphans.is_mine(tuple)
    }

    fn holds_parked(&mut self, tuple: &FourTuple) -> bool {
        self.holds_parked_conn(tuple)
    }

    fn on_restored(&mut self, conn: ConnId, data: Box<dyn Any + Send>, ctx: &mut Ctx<'_>) {
        // A parked connection of ours back (`parking`).
        let data = match data.downcast::<parking::Unparked>() {
            Ok(unparked) => return self.unparked(conn, *unparked, ctx),
            Err(data) => data,
        };
        // Restored here: a later segment must find the TCB, never the
        // checkpoint again. Forgotten first, so that the table's share of
        // the orphan is gone when its parts are taken (no copy).
        let tuple = ctx.tuple(conn);
        if let Some(tuple) = &tuple {
            self.orphans.remove(tuple);
        }
        // What `on_unknown_segment` and the control core's restore hand.
        let data = Restore::from_data(data);
        debug!(
            ?tuple,
            resuming = data.response.is_some(),
            "orphan restored, probing"
        );
        self.restoring.insert(conn, data);
    }

    fn on_ready(&mut self, conn: ConnId, snd_una: SeqNum, _rcv_nxt: SeqNum, ctx: &mut Ctx<'_>) {
        let Restore {
            mut response,
            tls,
            app_state,
        } = self.restoring.remove(&conn).unwrap_or_default();
        // A parked connection back: its session's idle limit counts from
        // its rest, not from now.
        let idle_since = self.parking.as_mut().and_then(|p| p.woke(conn));
        if let Some(f) = self.ftp.as_mut() {
            if ctx.tuple(conn).is_some_and(|t| f.claims(t.local.port())) {
                f.on_restored(conn, app_state.as_deref(), ctx);
                return f.checkpoint(ctx, self.checkpoints.as_mut());
            }
        }
        if let Some(r) = self.rtsp.as_mut() {
            if ctx.tuple(conn).is_some_and(|t| r.claims(t.local.port())) {
                r.on_restored(conn, app_state.as_deref(), ctx);
                return r.checkpoint(ctx, self.checkpoints.as_mut());
            }
        }
        let now = ctx.now();
        // An HTTPS connection continues from its TLS block, HTTP from the
        // plaintext position that gives; without one it is reset.
        let mut acked = snd_una.0;
        // Requests read by the dead box behind the response it was giving.
        let mut pending = Vec::new();
        if tls.is_some() || self.on_tls_port(ctx, conn) {
            match self.restore_tls(conn, tls.as_deref(), response.as_ref(), snd_una, ctx) {
                Some((at, lost)) => {
                    acked = at;
                    if let Some(r) = response.as_mut().filter(|_| lost) {
                        // Requests the dead box read are gone: close after
                        // this response, so the client asks again.
                        r.persistent = false;
                    }
                }
                None => return,
            }
            self.refresh_tls(conn);
        } else if let Some(state) = app_state.as_deref() {
            let owed = PendingRequests::decode(state).unwrap_or_else(|err| {
                warn!(tuple = ?ctx.tuple(conn), %err, "unreadable pending requests: closing after the response");
                PendingRequests {
                    input: Vec::new(),
                    lost: true,
                }
            });
            if let Some(r) = response.as_mut().filter(|_| owed.lost) {
                // Requests the dead box read are gone: close after this
                // response, so the client asks again.
                r.persistent = false;
            }
            pending = owed.input;
        }
        debug!(
            tuple = ?ctx.tuple(conn),
            snd_una = snd_una.0,
            object_start = response.as_ref().map(|r| r.object_start_seq.0),
            "restored connection ready: resuming"
        );
        if let Some(c) = self.checkpoints.as_mut() {
            // The connection is this box's now: a second failure must find it here.
            c.commit(ctx, conn, response.as_ref());
        }
        if self.checkpoints.is_none() {
            ctx.set_ack_hold(conn, false);
        }
        let mut t = transport!(self, ctx);
        let since = idle_since.unwrap_or(now);
        self.http
            .on_ready(conn, response.as_ref(), acked, &pending, &mut t, since);
        if matches!(ctx.state(conn), Some(State::CloseWait | State::LastAck)) {
            // Restored half-closed (the client's FIN was checkpointed, or
            // came again while we waited): answer what is owed, then close.
            let mut t = transport!(self, ctx);
            self.http.on_peer_closed(conn, &mut t, now);
        }
        self.cover(conn, ctx);
        debug!(
            next_seq = ?ctx.next_seq(conn),
            capacity = ctx.send_capacity(conn),
            state = ?ctx.state(conn),
            stats = ?ctx.tcp_stats(conn),
            "resumed"
        );
        // Resting now (a parked connection brought back by a keep-alive
        // probe, an idle one taken over) or once its response is settled.
        self.note_rest(conn, now);
    }

    fn poll(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(p) = &self.test_panic {
            p.check();
        }
        if self.waker.0.get().is_none() {
            let _ = self.waker.0.set(ctx.waker());
        }
        let now = ctx.now();
        if self.unresumed.is_pending() {
            self.unresumed.flush(now);
        }
        let mut t = transport!(self, ctx);
        self.http.poll(&mut t, now);
        self.tend_parking(ctx);
        if let Some(f) = self.ftp.as_mut() {
            f.poll(ctx);
            f.checkpoint(ctx, self.checkpoints.as_mut());
        }
        if let Some(r) = self.rtsp.as_mut() {
            r.poll(ctx);
            r.checkpoint(ctx, self.checkpoints.as_mut());
        }
    }

    fn on_datagram(&mut self, tuple: FourTuple, _payload: &[u8], ctx: &mut Ctx<'_>) {
        if let Some(r) = self.rtsp.as_mut() {
            r.on_datagram(tuple, ctx);
        }
    }

    fn next_deadline(&self) -> Option<std::time::Instant> {
        self.rtsp.as_ref().and_then(|r| r.next_deadline())
    }
}
