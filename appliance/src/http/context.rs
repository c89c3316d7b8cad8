//! What the sessions of one worker share: the cache, the worker's
//! fetch-progress notifier, the limits, the connection cap and the
//! counters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::request::Limits;
use super::response;
use super::session::HttpSession;
use super::upload::Spool;
use crate::cache::{Cache, Notifier};

/// Per-worker HTTP counters (for the admin API and Prometheus): one worker
/// writes them, so the atomics are never contended.
#[derive(Debug, Default)]
pub struct HttpCounters {
    pub(crate) requests: AtomicU64,
    pub(crate) responses_2xx: AtomicU64,
    pub(crate) responses_3xx: AtomicU64,
    pub(crate) responses_4xx: AtomicU64,
    pub(crate) responses_5xx: AtomicU64,
    pub(crate) bad_request: AtomicU64,
    pub(crate) uri_too_long: AtomicU64,
    pub(crate) headers_too_large: AtomicU64,
    pub(crate) method_not_allowed: AtomicU64,
    pub(crate) request_timeouts: AtomicU64,
    pub(crate) idle_timeouts: AtomicU64,
    pub(crate) not_modified: AtomicU64,
    pub(crate) precondition_failed: AtomicU64,
    pub(crate) partial: AtomicU64,
    pub(crate) range_not_satisfiable: AtomicU64,
    pub(crate) bad_gateway: AtomicU64,
    pub(crate) gateway_timeout: AtomicU64,
    pub(crate) aborted: AtomicU64,
    pub(crate) body_bytes: AtomicU64,
    pub(crate) refused_connections: AtomicU64,
    pub(crate) resumed: AtomicU64,
    pub(crate) not_resumable: AtomicU64,
    pub(crate) uploads: AtomicU64,
    pub(crate) uploads_resumed: AtomicU64,
}

/// A snapshot of [`HttpCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HttpStats {
    /// Request heads parsed.
    pub requests: u64,
    /// Responses by class.
    pub responses_2xx: u64,
    /// 3xx responses (304 mostly).
    pub responses_3xx: u64,
    /// 4xx responses.
    pub responses_4xx: u64,
    /// 5xx responses.
    pub responses_5xx: u64,
    /// Malformed requests (400).
    pub bad_request: u64,
    /// Request lines over the limit (414).
    pub uri_too_long: u64,
    /// Header sections over the limit (431).
    pub headers_too_large: u64,
    /// Methods other than GET and HEAD (405).
    pub method_not_allowed: u64,
    /// Requests not complete in time (408).
    pub request_timeouts: u64,
    /// Idle connections closed.
    pub idle_timeouts: u64,
    /// 304 answers.
    pub not_modified: u64,
    /// 412 answers (If-Match / If-Unmodified-Since failed).
    pub precondition_failed: u64,
    /// 206 answers.
    pub partial: u64,
    /// 416 answers.
    pub range_not_satisfiable: u64,
    /// 502 answers (origin unreachable, bad, or 5xx).
    pub bad_gateway: u64,
    /// 504 answers (origin timeout).
    pub gateway_timeout: u64,
    /// Responses cut short because their object failed mid-body.
    pub aborted: u64,
    /// Body bytes handed to TCP.
    pub body_bytes: u64,
    /// Connections refused at the connection cap (503).
    pub refused_connections: u64,
    /// Responses resumed after a takeover.
    pub resumed: u64,
    /// Takeovers refused by HTTP (object changed or gone).
    pub not_resumable: u64,
    /// Uploads (POST/PUT bodies) begun.
    pub uploads: u64,
    /// Uploads continued after a takeover.
    pub uploads_resumed: u64,
}

impl HttpStats {
    /// Adds another worker's counters (the box total is the sum).
    pub fn add(&mut self, o: &HttpStats) {
        self.requests += o.requests;
        self.responses_2xx += o.responses_2xx;
        self.responses_3xx += o.responses_3xx;
        self.responses_4xx += o.responses_4xx;
        self.responses_5xx += o.responses_5xx;
        self.bad_request += o.bad_request;
        self.uri_too_long += o.uri_too_long;
        self.headers_too_large += o.headers_too_large;
        self.method_not_allowed += o.method_not_allowed;
        self.request_timeouts += o.request_timeouts;
        self.idle_timeouts += o.idle_timeouts;
        self.not_modified += o.not_modified;
        self.precondition_failed += o.precondition_failed;
        self.partial += o.partial;
        self.range_not_satisfiable += o.range_not_satisfiable;
        self.bad_gateway += o.bad_gateway;
        self.gateway_timeout += o.gateway_timeout;
        self.aborted += o.aborted;
        self.body_bytes += o.body_bytes;
        self.refused_connections += o.refused_connections;
        self.resumed += o.resumed;
        self.not_resumable += o.not_resumable;
        self.uploads += o.uploads;
        self.uploads_resumed += o.uploads_resumed;
    }
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl HttpCounters {
    /// The counters now.
    pub fn snapshot(&self) -> HttpStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HttpStats {
            requests: g(&self.requests),
            responses_2xx: g(&self.responses_2xx),
            responses_3xx: g(&self.responses_3xx),
            responses_4xx: g(&self.responses_4xx),
            responses_5xx: g(&self.responses_5xx),
            bad_request: g(&self.bad_request),
            uri_too_long: g(&self.uri_too_long),
            headers_too_large: g(&self.headers_too_large),
            method_not_allowed: g(&self.method_not_allowed),
            request_timeouts: g(&self.request_timeouts),
            idle_timeouts: g(&self.idle_timeouts),
            not_modified: g(&self.not_modified),
            precondition_failed: g(&self.precondition_failed),
            partial: g(&self.partial),
            range_not_satisfiable: g(&self.range_not_satisfiable),
            bad_gateway: g(&self.bad_gateway),
            gateway_timeout: g(&self.gateway_timeout),
            aborted: g(&self.aborted),
            body_bytes: g(&self.body_bytes),
            refused_connections: g(&self.refused_connections),
            resumed: g(&self.resumed),
            not_resumable: g(&self.not_resumable),
            uploads: g(&self.uploads),
            uploads_resumed: g(&self.uploads_resumed),
        }
    }

    /// Counts one response by its status.
    pub(crate) fn status(&self, status: u16) {
        bump(match status {
            200..=299 => &self.responses_2xx,
            300..=399 => &self.responses_3xx,
            400..=499 => &self.responses_4xx,
            _ => &self.responses_5xx,
        });
        match status {
            206 => bump(&self.partial),
            304 => bump(&self.not_modified),
            400 => bump(&self.bad_request),
            405 => bump(&self.method_not_allowed),
            408 => bump(&self.request_timeouts),
            412 => bump(&self.precondition_failed),
            414 => bump(&self.uri_too_long),
            416 => bump(&self.range_not_satisfiable),
            431 => bump(&self.headers_too_large),
            502 => bump(&self.bad_gateway),
            504 => bump(&self.gateway_timeout),
            _ => {}
        }
    }
}

/// Shared by the sessions of one worker.
#[derive(Debug)]
pub struct WorkerContext {
    /// The box's object cache.
    pub cache: Arc<Cache>,
    /// This worker's fetch-progress mailbox.
    pub notifier: Arc<Notifier>,
    /// Request limits.
    pub limits: Limits,
    /// Most sessions this worker serves at once.
    pub max_sessions: usize,
    /// The counters.
    pub counters: HttpCounters,
    /// Where upload bodies are kept.
    pub spool: Arc<Spool>,
    pub(crate) live: AtomicUsize,
}

/// Every worker's HTTP context on a box, for the admin API's totals.
#[derive(Debug, Clone, Default)]
pub struct HttpWorkers(Arc<std::sync::Mutex<Vec<Arc<WorkerContext>>>>);

impl HttpWorkers {
    /// Adds one worker's context.
    pub fn register(&self, ctx: Arc<WorkerContext>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(ctx);
    }

    /// The box's counters: the sum over its workers.
    pub fn stats(&self) -> HttpStats {
        let mut total = HttpStats::default();
        for ctx in self.0.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            total.add(&ctx.counters.snapshot());
        }
        total
    }
}

/// The spool of contexts not given one: a private directory of this
/// process (tests, and a box without checkpoints, where no survivor could
/// continue an upload anyway).
pub fn private_spool() -> Arc<Spool> {
    Spool::shared_private()
}

impl WorkerContext {
    /// A context for one worker.
    pub fn new(
        cache: Arc<Cache>,
        notifier: Arc<Notifier>,
        limits: Limits,
        max_sessions: usize,
    ) -> Arc<WorkerContext> {
        WorkerContext::with_spool(cache, notifier, limits, max_sessions, private_spool())
    }

    /// [`Self::new`] with uploads spooled in `spool`.
    pub fn with_spool(
        cache: Arc<Cache>,
        notifier: Arc<Notifier>,
        limits: Limits,
        max_sessions: usize,
        spool: Arc<Spool>,
    ) -> Arc<WorkerContext> {
        Arc::new(WorkerContext {
            cache,
            notifier,
            limits,
            max_sessions,
            counters: HttpCounters::default(),
            spool,
            live: AtomicUsize::new(0),
        })
    }

    /// Sessions alive now.
    pub fn sessions(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// A session for a new connection, or — at the connection cap — the
    /// 503 answer to send before closing it (RFC 9110 §15.6.4).
    pub fn accept(self: &Arc<Self>, now: Instant) -> Result<HttpSession, Bytes> {
        if self.sessions() >= self.max_sessions {
            bump(&self.counters.refused_connections);
            self.counters.status(503);
            let date = httpdate::fmt_http_date(std::time::SystemTime::now());
            return Err(response::generated(503, false, 1, &date));
        }
        Ok(HttpSession::new(Arc::clone(self), now))
    }
}
