//! The glue between the userspace TCP stack and the HTTP cache: one
//! [`CacheApp`] per dataplane worker forwards the worker's connection events
//! to the HTTP driver ([`crate::http::worker::HttpWorker`]) and gives that
//! driver the worker's connections through [`Transport`]. Checkpoints go
//! through [`checkpoint::Checkpointer`], which appends the TCP and IP blocks
//! to the application's block (seed Fig. 4: each layer adds its own state).
pub mod checkpoint;

use std::sync::{Arc, OnceLock};

use baton_dataplane::app::{App, CloseReason, Ctx};
use baton_dataplane::flow::ConnId;
use baton_dataplane::tcp::SeqNum;
use bytes::Bytes;

use crate::cache::Cache;
use crate::http::checkpoint::ResponseCheckpoint;
use crate::http::request::Limits;
use crate::http::worker::{HttpWorker, Transport};
use checkpoint::Checkpointer;

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
}

impl CacheApp {
    /// The app of worker `worker`.
    pub fn new(
        cache: Arc<Cache>,
        worker: usize,
        limits: Limits,
        max_sessions: usize,
        checkpoints: Option<Checkpointer>,
    ) -> CacheApp {
        let waker = Arc::new(LateWaker::default());
        let http = HttpWorker::new(cache, worker, waker.clone(), limits, max_sessions);
        CacheApp {
            http,
            waker,
            checkpoints,
        }
    }

    fn transport<'a, 'b>(
        ctx: &'a mut Ctx<'b>,
        checkpoints: &'a mut Option<Checkpointer>,
    ) -> CtxTransport<'a, 'b> {
        CtxTransport { ctx, checkpoints }
    }
}

/// The worker's connections as the HTTP driver sees them.
struct CtxTransport<'a, 'b> {
    ctx: &'a mut Ctx<'b>,
    checkpoints: &'a mut Option<Checkpointer>,
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
}

impl App for CacheApp {
    fn on_accept(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let now = ctx.now();
        if let Some(c) = self.checkpoints.as_mut() {
            // A connection is recoverable from its first moment: an idle
            // keep-alive connection taken over is simply served again.
            c.commit(ctx, conn, None);
        }
        let mut t = Self::transport(ctx, &mut self.checkpoints);
        self.http.on_accept(conn, &mut t, now);
    }

    fn on_readable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let now = ctx.now();
        let mut t = Self::transport(ctx, &mut self.checkpoints);
        self.http.on_readable(conn, &mut t, now);
    }

    fn on_writable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let now = ctx.now();
        let mut t = Self::transport(ctx, &mut self.checkpoints);
        self.http.on_writable(conn, &mut t, now);
        if let Some(c) = self.checkpoints.as_mut() {
            c.on_progress(ctx, conn, self.http.session(conn).and_then(|s| s.checkpoint()));
        }
    }

    fn on_peer_closed(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let now = ctx.now();
        let mut t = Self::transport(ctx, &mut self.checkpoints);
        self.http.on_peer_closed(conn, &mut t, now);
    }

    fn on_closed(&mut self, conn: ConnId, _reason: CloseReason, _ctx: &mut Ctx<'_>) {
        self.http.on_closed(conn);
        if let Some(c) = self.checkpoints.as_mut() {
            c.release(conn);
        }
    }

    fn poll(&mut self, ctx: &mut Ctx<'_>) {
        if self.waker.0.get().is_none() {
            let _ = self.waker.0.set(ctx.waker());
        }
        let now = ctx.now();
        let mut t = Self::transport(ctx, &mut self.checkpoints);
        self.http.poll(&mut t, now);
    }
}
