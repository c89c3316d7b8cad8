//! What the sessions of one worker share: the cache, the worker's
//! fetch-progress notifier, the limits, the connection cap, the counters,
//! the upload spool, and the wall-clock anchor that dates the answers the
//! box makes up itself.
//!
//! It knows nothing of sessions: they hold it, it does not make them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::counters::{HttpCounters, HttpStats};
use super::request::Limits;
use super::upload::Spool;
use crate::cache::{Cache, Notifier};

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
    /// One reading of both clocks, taken when the context was made: a
    /// session's `now` maps to wall time through it, so sessions read no
    /// clock.
    wall_anchor: (Instant, SystemTime),
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

impl WorkerContext {
    /// A context for one worker.
    #[cfg(test)]
    pub fn new(
        cache: Arc<Cache>,
        notifier: Arc<Notifier>,
        limits: Limits,
        max_sessions: usize,
    ) -> Arc<WorkerContext> {
        WorkerContext::with_spool(
            cache,
            notifier,
            limits,
            max_sessions,
            Spool::shared_private(),
        )
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
            wall_anchor: (Instant::now(), SystemTime::now()),
        })
    }

    /// Sessions alive now.
    pub fn sessions(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The wall time at `now` (from the anchor taken at start).
    pub fn wall_time(&self, now: Instant) -> SystemTime {
        let (mono, wall) = self.wall_anchor;
        wall + now.saturating_duration_since(mono)
    }

    /// The `Date` header value for an answer the box makes up at `now`
    /// (object heads carry the origin's Date instead, see `response`).
    pub fn http_date(&self, now: Instant) -> String {
        httpdate::fmt_http_date(self.wall_time(now))
    }
}
