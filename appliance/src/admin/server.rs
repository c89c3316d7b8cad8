//! The admin listener on kernel sockets: one accept thread, one thread per
//! connection up to a cap, one request per connection.
//!
//! Protections, each counted in `baton_admin_errors_total{kind}`:
//! the request head is at most [`Limits::max_head`] bytes (431), it must
//! arrive within [`Limits::read_timeout`] of the connection (408, so a
//! slow-loris client cannot hold a thread), at most
//! [`Limits::max_connections`] connections are served at once (503 with
//! Retry-After beyond), and bytes that are not HTTP/1.x get 400.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::route::{self, Response};
use super::source::{AdminSource, Metric};

/// The server's limits. [`Limits::default`] is what the box runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head, request line and fields included (8 KiB).
    pub max_head: usize,
    /// Time a client has to send its whole request head (5 s).
    pub read_timeout: Duration,
    /// Connections served at once (16).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head: 8 * 1024,
            read_timeout: Duration::from_secs(5),
            max_connections: 16,
        }
    }
}

/// Counters of the admin server itself.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    unauthorized: AtomicU64,
    bad_request: AtomicU64,
    header_too_large: AtomicU64,
    timeout: AtomicU64,
    overloaded: AtomicU64,
    not_found: AtomicU64,
    method_not_allowed: AtomicU64,
    internal: AtomicU64,
    io: AtomicU64,
}

/// A snapshot of the admin server's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AdminStats {
    /// Requests answered (any status).
    pub requests: u64,
    /// 401s: no token or a wrong one.
    pub unauthorized: u64,
    /// 400s: not HTTP, bad query, missing parameters.
    pub bad_request: u64,
    /// 431s: request head over the limit.
    pub header_too_large: u64,
    /// 408s: request head not complete in time.
    pub timeout: u64,
    /// 503s: connection cap reached.
    pub overloaded: u64,
    /// 404s.
    pub not_found: u64,
    /// 405s.
    pub method_not_allowed: u64,
    /// 500s: the source panicked.
    pub internal: u64,
    /// Connections lost to socket errors.
    pub io: u64,
    /// Connections being served now.
    pub connections: u64,
}

impl AdminStats {
    /// The errors by kind, as `/metrics` labels them.
    pub fn errors(&self) -> [(&'static str, u64); 9] {
        [
            ("unauthorized", self.unauthorized),
            ("bad_request", self.bad_request),
            ("header_too_large", self.header_too_large),
            ("timeout", self.timeout),
            ("overloaded", self.overloaded),
            ("not_found", self.not_found),
            ("method_not_allowed", self.method_not_allowed),
            ("internal", self.internal),
            ("io", self.io),
        ]
    }

    /// The counters as metrics, appended to the source's on `/metrics`.
    pub fn metrics(&self) -> Vec<Metric> {
        let mut out = vec![
            Metric::counter(
                "baton_admin_requests_total",
                "Admin API requests answered.",
                self.requests,
            ),
            Metric::gauge(
                "baton_admin_connections",
                "Admin API connections being served.",
                self.connections as f64,
            ),
        ];
        for (kind, n) in self.errors() {
            out.push(
                Metric::counter("baton_admin_errors_total", "Admin API errors, by kind.", n)
                    .with_label("kind", kind),
            );
        }
        out
    }
}

struct Shared {
    token: String,
    source: Arc<dyn AdminSource>,
    limits: Limits,
    counters: Counters,
    active: AtomicUsize,
    stop: AtomicBool,
}

impl Shared {
    fn stats(&self) -> AdminStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AdminStats {
            requests: get(&c.requests),
            unauthorized: get(&c.unauthorized),
            bad_request: get(&c.bad_request),
            header_too_large: get(&c.header_too_large),
            timeout: get(&c.timeout),
            overloaded: get(&c.overloaded),
            not_found: get(&c.not_found),
            method_not_allowed: get(&c.method_not_allowed),
            internal: get(&c.internal),
            io: get(&c.io),
            connections: self.active.load(Ordering::Relaxed) as u64,
        }
    }

    /// Counts an answer by its status.
    fn count(&self, status: u16) {
        let c = &self.counters;
        c.requests.fetch_add(1, Ordering::Relaxed);
        let counter = match status {
            400 | 501 => &c.bad_request,
            401 => &c.unauthorized,
            404 => &c.not_found,
            405 => &c.method_not_allowed,
            408 => &c.timeout,
            431 => &c.header_too_large,
            500 => &c.internal,
            503 => &c.overloaded,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running admin server. Dropping it stops it too.
pub struct AdminServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts the admin API on `listen` with the default [`Limits`]. Every
/// request must carry `Authorization: Bearer <token>`; an empty token is
/// refused, since it would let anyone in.
pub fn spawn(
    listen: SocketAddr,
    token: String,
    source: Arc<dyn AdminSource>,
) -> io::Result<AdminServer> {
    spawn_with(listen, token, source, Limits::default())
}

/// [`spawn`] with other limits (tests use a short read timeout).
pub fn spawn_with(
    listen: SocketAddr,
    token: String,
    source: Arc<dyn AdminSource>,
    limits: Limits,
) -> io::Result<AdminServer> {
    if token.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the admin token is empty",
        ));
    }
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        token,
        source,
        limits,
        counters: Counters::default(),
        active: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let (reject_tx, reject_rx) = crossbeam_channel::bounded::<TcpStream>(64);
    let for_rejects = Arc::clone(&shared);
    thread::Builder::new()
        .name("admin-reject".into())
        .spawn(move || {
            // Ends when the accept thread drops the sender.
            for stream in reject_rx {
                let answer = Response::error(503, "too many admin connections")
                    .with_header("Retry-After", "1");
                for_rejects.count(503);
                respond(&stream, &answer, Duration::from_millis(200));
            }
        })?;
    let for_accept = Arc::clone(&shared);
    let accept = thread::Builder::new()
        .name("admin-accept".into())
        .spawn(move || accept_loop(listener, for_accept, reject_tx))?;
    tracing::info!(%addr, "admin API listening");
    Ok(AdminServer {
        addr,
        shared,
        accept: Some(accept),
    })
}

impl AdminServer {
    /// The address the server is bound to (with the real port when `listen`
    /// asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's own counters now.
    pub fn stats(&self) -> AdminStats {
        self.shared.stats()
    }

    /// Stops accepting and closes the listening socket. Connections being
    /// served finish on their own (within the read timeout).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        // accept() has no timeout: wake it with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
            let _ = accept.join();
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    rejects: crossbeam_channel::Sender<TcpStream>,
) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(err) => {
                // EMFILE and friends: back off rather than spin.
                tracing::warn!(%err, "admin accept failed");
                shared.counters.io.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if shared.active.load(Ordering::SeqCst) >= shared.limits.max_connections {
            // A full reject queue means a flood: drop without an answer.
            if rejects.try_send(stream).is_err() {
                shared.count(503);
            }
            continue;
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        let for_conn = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("admin-conn".into())
            .spawn(move || {
                let _slot = Slot(&for_conn.active);
                serve(stream, &for_conn);
            });
        if let Err(err) = spawned {
            tracing::warn!(%err, "admin connection thread failed to start");
            shared.active.fetch_sub(1, Ordering::SeqCst);
            shared.counters.io.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Frees a connection slot however the connection thread ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads one request head, answers it, closes.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let limits = shared.limits;
    let deadline = Instant::now() + limits.read_timeout;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let answer = loop {
        match parse(&buf, limits.max_head, shared) {
            Parsed::Answer(a) => break a,
            Parsed::Partial if buf.len() >= limits.max_head => {
                break Response::error(431, "request head over 8 KiB")
            }
            Parsed::Partial => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break Response::error(408, "request head not complete in time");
        }
        match stream.read(&mut chunk) {
            // The client went away before finishing its request.
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break Response::error(408, "request head not complete in time");
            }
            Err(_) => {
                shared.counters.io.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    };
    shared.count(answer.status);
    respond(&stream, &answer, Duration::from_secs(1));
}

enum Parsed {
    Partial,
    Answer(Response),
}

fn parse(buf: &[u8], max_head: usize, shared: &Shared) -> Parsed {
    if buf.is_empty() {
        return Parsed::Partial;
    }
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut fields);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Answer(Response::error(431, "too many header fields"))
        }
        Err(err) => {
            return Parsed::Answer(Response::error(
                400,
                &format!("not an HTTP/1.x request: {err}"),
            ))
        }
    };
    if head_len > max_head {
        return Parsed::Answer(Response::error(431, "request head over 8 KiB"));
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Answer(Response::error(400, "incomplete request line"));
    };
    let field = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400.
    if version == 1 && field("host").is_none() {
        return Parsed::Answer(Response::error(400, "HTTP/1.1 request without Host"));
    }
    // Admin endpoints take no body; a chunked one could not be skipped
    // without decoding it (RFC 9112 §6.1).
    if field("transfer-encoding").is_some() {
        return Parsed::Answer(Response::error(501, "request bodies are not accepted"));
    }
    let source = Arc::clone(&shared.source);
    let answer = catch_unwind(AssertUnwindSafe(|| {
        route::route(
            method,
            target,
            field("authorization"),
            &shared.token,
            &*source,
            &|| shared.stats().metrics(),
        )
    }));
    Parsed::Answer(answer.unwrap_or_else(|_| {
        tracing::error!(method, "admin source panicked");
        Response::error(500, "the box failed to answer")
    }))
}

/// Writes `answer` and closes gracefully: our FIN first, then whatever the
/// client still sends is read and dropped for up to `linger`. Closing with
/// unread bytes would make the kernel send RST, which can destroy the answer
/// before the client reads it (RFC 9112 §9.6).
fn respond(mut stream: &TcpStream, answer: &Response, linger: Duration) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    if stream.write_all(&answer.to_bytes()).is_err() {
        return;
    }
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(linger));
    let until = Instant::now() + linger;
    let mut sink = [0u8; 4096];
    let mut dropped = 0usize;
    while Instant::now() < until && dropped < 64 * 1024 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => dropped += n,
        }
    }
}
