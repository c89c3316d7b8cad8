//! What every connection of one origin shares: the store, the faults a
//! test injected per path, the gate that held answers wait at, the
//! per-path upload counts, and (for an in-process origin) the log of
//! request heads and upload bodies a test reads back.
//!
//! It holds state and nothing else: it must not know sockets or HTTP.
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::origin::store::Store;

/// How the origin misbehaves for one path (set with
/// [`Origin::set_fault`](crate::origin::Origin::set_fault)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers any request with this status and a short text body (an
    /// upload's body is read first).
    Status(u16),
    /// Reads the request and never answers, until the origin is dropped.
    Hang,
    /// Closes the connection without answering.
    Close,
    /// Sends the head and this many body bytes, then closes.
    Truncate(usize),
    /// Sends the head and this many body bytes, then waits for
    /// [`Origin::release`](crate::origin::Origin::release).
    Hold(usize),
    /// Sends the body chunked (RFC 9112 §7.1) in pieces of this size, each
    /// with a chunk extension, and a trailer; waits for `release` after
    /// the first piece.
    Chunked(usize),
    /// Sends the body without a length and closes (RFC 9112 §6.3 rule 8).
    CloseDelimited,
}

/// What an in-process origin has received.
#[derive(Debug, Default)]
pub(crate) struct Log {
    /// Request heads, raw, in arrival order.
    pub(crate) requests: Vec<String>,
    /// Uploads: "METHOD target" and the body.
    pub(crate) uploads: Vec<(String, Vec<u8>)>,
}

/// Where held answers wait.
#[derive(Debug, Default)]
struct Gate {
    /// `release` was called: held answers go on, now and later.
    released: bool,
    /// The origin is stopping: every wait ends.
    stopped: bool,
}

/// One origin's shared state.
pub(crate) struct Shared {
    pub(crate) store: Box<dyn Store>,
    faults: Mutex<HashMap<String, Fault>>,
    /// Uploads received per target.
    copies: Mutex<HashMap<String, u64>>,
    /// None: nothing is kept (the lab's long-running origin process).
    log: Option<Mutex<Log>>,
    gate: Mutex<Gate>,
    cv: Condvar,
}

/// Locks `m`, whatever a panicked holder left: every critical section here
/// is one insert, push or field store, never left half-done.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn new(store: Box<dyn Store>, keep_log: bool) -> Shared {
        Shared {
            store,
            faults: Mutex::default(),
            copies: Mutex::default(),
            log: keep_log.then(Mutex::default),
            gate: Mutex::default(),
            cv: Condvar::new(),
        }
    }

    pub(crate) fn fault(&self, target: &str) -> Option<Fault> {
        lock(&self.faults).get(target).copied()
    }

    pub(crate) fn set_fault(&self, target: &str, fault: Option<Fault>) {
        let mut f = lock(&self.faults);
        match fault {
            Some(x) => f.insert(target.to_string(), x),
            None => f.remove(target),
        };
    }

    /// Whether upload bodies are kept (so `conn` collects them).
    pub(crate) fn keeps_log(&self) -> bool {
        self.log.is_some()
    }

    pub(crate) fn record_request(&self, head: &[u8]) {
        if let Some(log) = &self.log {
            lock(log)
                .requests
                .push(String::from_utf8_lossy(head).into_owned());
        }
    }

    /// Counts one upload of `target`; returns how many there were so far.
    pub(crate) fn count_upload(&self, method: &str, target: &str, body: Vec<u8>) -> u64 {
        if let Some(log) = &self.log {
            lock(log).uploads.push((format!("{method} {target}"), body));
        }
        let mut c = lock(&self.copies);
        let n = c.entry(target.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    pub(crate) fn with_log<R>(&self, f: impl FnOnce(&Log) -> R) -> R {
        match &self.log {
            Some(log) => f(&lock(log)),
            None => f(&Log::default()),
        }
    }

    pub(crate) fn release(&self) {
        lock(&self.gate).released = true;
        self.cv.notify_all();
    }

    pub(crate) fn stop(&self) {
        lock(&self.gate).stopped = true;
        self.cv.notify_all();
    }

    pub(crate) fn stopped(&self) -> bool {
        lock(&self.gate).stopped
    }

    /// Waits until `release` or `stop`.
    pub(crate) fn wait_release(&self) {
        let mut g = lock(&self.gate);
        while !g.released && !g.stopped {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits until `stop`.
    pub(crate) fn wait_stop(&self) {
        let mut g = lock(&self.gate);
        while !g.stopped {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}
