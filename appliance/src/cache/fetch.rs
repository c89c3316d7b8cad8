//! Origin fetches: a small pool of threads that fill objects from the origin
//! over kernel TCP sockets (the back LAN), so no worker ever blocks on the
//! origin.
//!
//! Workers never talk to a fetcher directly: [`super::Cache::lookup`] queues
//! a [`FetchJob`] on a crossbeam channel; a fetcher thread takes it, sends
//! one HTTP/1.1 GET (`Connection: close`: one request per origin connection
//! keeps the client simple; misses are rare next to hits), and streams the
//! body into the object as it arrives. Every change wakes the workers whose
//! sessions subscribed to the object (see [`super::object::Notifier`]).
//!
//! Error mapping for clients (RFC 9110 §15.6.3, §15.6.5): a connect or read
//! timeout is 504; a refused connection, a malformed or truncated answer, or
//! an origin 5xx is 502. Whatever happens, the object is failed and dropped
//! from the index ([`FetchReport::finished`]), so the next request tries
//! the origin again: an error never poisons the cache.
//!
//! Fetchers know objects and the origin; they report to the index through
//! [`FetchReport`] and know nothing else of the cache, nor of clients.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, BytesMut};
use crossbeam_channel::Receiver;

use super::budget::{wait_for_reader, Pace};
use super::error::FetchError;
use super::freshness::{self, CacheControl, FreshnessInput};
use super::object::{Object, ObjectMeta};

/// What the fetchers report back to the cache's index. The cache
/// implements it; the fetchers know nothing else of the cache.
pub trait FetchReport: Send + Sync {
    /// A fill ended (`err`: how it failed).
    fn finished(&self, object: &Arc<Object>, err: Option<&FetchError>);
    /// A spill to the disk directory ended (`ok`: the file is complete).
    fn spilled(&self, object: &Arc<Object>, ok: bool);
    /// A stale copy is served because revalidation failed with `err`.
    fn stale_served(&self, err: &FetchError);
}

/// The method of an upload sent to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadMethod {
    /// POST.
    Post,
    /// PUT.
    Put,
}

impl UploadMethod {
    /// The method's token on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadMethod::Post => "POST",
            UploadMethod::Put => "PUT",
        }
    }
}

/// What a fetcher needs to send an upload to the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    /// POST or PUT.
    pub method: UploadMethod,
    /// The spool file with the whole body.
    pub body: std::path::PathBuf,
    /// Its length.
    pub length: u64,
    /// `Content-Type`, if the client sent one.
    pub content_type: Option<String>,
}

fn fetch_error_from_io(e: &io::Error) -> FetchError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => FetchError::Timeout,
        _ => FetchError::Io(e.kind().to_string()),
    }
}

/// What a fetcher is asked to do.
#[derive(Debug)]
pub struct FetchJob {
    /// The object to fill (already in the cache's index unless ranged).
    pub object: Arc<Object>,
    /// How.
    pub kind: FetchKind,
}

/// The kinds of fill.
#[derive(Debug)]
pub enum FetchKind {
    /// The whole object; with `revalidate`, a conditional GET whose 304
    /// refreshes the stale copy (RFC 9111 §4.3).
    Full {
        /// The stale copy to revalidate.
        revalidate: Option<Arc<Object>>,
    },
    /// From byte `from` to the end, with `If-Range` (RFC 9110 §13.1.5):
    /// used to resume a response the cache no longer holds.
    Range {
        /// First object byte wanted.
        from: u64,
        /// The validator the response was started with.
        if_range: Option<String>,
    },
    /// An upload: the request body from a spool file, the origin's answer
    /// into the object.
    Upload(UploadRequest),
    /// Write a complete object to the disk directory.
    Spill {
        /// Destination file.
        path: std::path::PathBuf,
    },
    /// Read an object back from the disk directory into memory.
    Load {
        /// Source file.
        path: std::path::PathBuf,
        /// Its metadata, kept in memory.
        meta: ObjectMeta,
    },
}

/// Where the origin is and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Address to connect to.
    pub addr: SocketAddr,
    /// `Host` header value (RFC 9112 §3.2).
    pub host: String,
    /// Path prefix prepended to every request path (no trailing `/`).
    pub prefix: String,
    /// Connect and read timeout.
    pub timeout: Duration,
}

impl Origin {
    /// An origin at `addr` with no path prefix.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Origin {
        let host = if addr.port() == 80 {
            match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            }
        } else {
            addr.to_string()
        };
        Origin {
            addr,
            host,
            prefix: String::new(),
            timeout,
        }
    }

    /// From the `[cache]` section; `None` when the origin host is not an IP
    /// literal (the back LAN has no resolver).
    pub fn from_config(c: &baton_config::CacheConfig) -> Option<Origin> {
        let mut o = Origin::new(
            c.origin_socket_addr()?,
            Duration::from_millis(c.origin_timeout_ms),
        );
        o.prefix = c.origin_path().trim_end_matches('/').to_string();
        Some(o)
    }
}

/// The fetcher threads.
#[derive(Debug)]
pub struct FetcherPool {
    // Never joined: the fetchers end when the cache (their job queue's
    // sender) is dropped, or with the process.
    _threads: Vec<JoinHandle<()>>,
}

impl FetcherPool {
    /// Starts `n` fetchers taking jobs from `jobs`. They stop when every
    /// sender is gone (the cache was dropped).
    pub fn spawn(
        n: usize,
        jobs: Receiver<FetchJob>,
        index: Weak<dyn FetchReport>,
        origin: Origin,
    ) -> io::Result<FetcherPool> {
        let mut threads = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let jobs = jobs.clone();
            let index = index.clone();
            let origin = origin.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("fetch{i}"))
                    .spawn(move || {
                        while let Ok(job) = jobs.recv() {
                            run(&origin, &index, job);
                        }
                    })?,
            );
        }
        Ok(FetcherPool { _threads: threads })
    }
}

fn run(origin: &Origin, cache: &Weak<dyn FetchReport>, job: FetchJob) {
    let FetchJob { object, kind } = job;
    let result = match &kind {
        FetchKind::Full { revalidate } => {
            fetch(origin, &object, Ask::Get(None), revalidate.as_ref())
        }
        FetchKind::Range { from, if_range } => fetch(
            origin,
            &object,
            Ask::Get(Some((*from, if_range.as_deref()))),
            None,
        ),
        FetchKind::Upload(u) => fetch(origin, &object, Ask::Upload(u), None),
        FetchKind::Spill { path } => {
            let ok = spill(&object, path)
                .map_err(|e| {
                    tracing::warn!("cannot spill {} to {}: {e}", object.url(), path.display())
                })
                .is_ok();
            if let Some(c) = cache.upgrade() {
                c.spilled(&object, ok);
            }
            return;
        }
        FetchKind::Load { path, meta } => load(&object, path, meta),
    };
    if let (
        Err(e),
        FetchKind::Full {
            revalidate: Some(old),
        },
    ) = (&result, &kind)
    {
        if serve_stale(&object, old, e) {
            if let Some(c) = cache.upgrade() {
                c.stale_served(e);
                c.finished(&object, None);
            }
            return;
        }
    }
    if let Err(e) = &result {
        tracing::debug!("fetch {} failed: {e}", object.url());
        object.fail(e.clone());
    }
    if let Some(c) = cache.upgrade() {
        c.finished(&object, result.as_ref().err());
    }
}

/// How long a stale copy served for an unreachable origin is kept before
/// the origin is tried again.
pub const STALE_RETRY: Duration = Duration::from_secs(5);

/// RFC 9111 §4.2.4: a cache disconnected from the origin may serve a stale
/// response. When revalidation could not reach the origin (connect failure
/// or timeout — not an origin error answer) and nothing of a new version
/// was given to the object yet, it becomes the stored copy again, fresh for
/// [`STALE_RETRY`].
fn serve_stale(object: &Object, old: &Object, err: &FetchError) -> bool {
    if !matches!(err, FetchError::Connect(_) | FetchError::Timeout) || object.meta().is_some() {
        return false;
    }
    let (Some(meta), Some(body)) = (old.meta(), old.body()) else {
        return false;
    };
    tracing::info!(
        "origin unreachable ({err}): serving the stored {}",
        object.url()
    );
    object.set_meta(ObjectMeta {
        fresh_until: Instant::now() + STALE_RETRY,
        ..ObjectMeta::clone(meta)
    });
    for c in body.chunks() {
        object.push(c.clone());
    }
    object.complete();
    true
}

/// Writes a complete object's body to `path` (atomically, via a temporary
/// file and rename, so a reader never sees half a file).
fn spill(object: &Object, path: &std::path::Path) -> io::Result<()> {
    let body = object
        .body()
        .ok_or_else(|| io::Error::other("object not complete"))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    for c in body.chunks() {
        f.write_all(c)?;
    }
    f.sync_data()?;
    std::fs::rename(tmp, path)
}

fn load(object: &Object, path: &std::path::Path, meta: &ObjectMeta) -> Result<(), FetchError> {
    let data = std::fs::read(path).map_err(|e| FetchError::Io(e.to_string()))?;
    if meta.length.is_some_and(|l| l != data.len() as u64) {
        return Err(FetchError::Io("disk copy has the wrong length".into()));
    }
    object.set_meta(meta.clone());
    object.push(data.into());
    object.complete();
    Ok(())
}

/// Holds the fetcher while the cache budget paces the fill
/// (`budget::wait_for_reader`); a fill given up drops its bytes.
fn pace_fill(object: &Object, timeout: Duration) -> Result<(), FetchError> {
    let paced = wait_for_reader(
        || object.over_budget(),
        || object.filled(),
        || object.read_mark(),
        timeout,
    );
    if paced != Pace::Go {
        object.paced(false);
    }
    if paced == Pace::Abandon {
        tracing::info!(
            "fill of {} given up: over the cache budget, no reader for {timeout:?}",
            object.url()
        );
        object.paced(true);
        object.abandon(FetchError::Timeout);
        return Err(FetchError::Timeout);
    }
    Ok(())
}

/// Largest response head accepted from the origin.
const MAX_HEAD: usize = 64 * 1024;
/// Bytes read from the origin per system call, at most.
const READ_SIZE: usize = 64 * 1024;

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// How long a fill paced by the cache budget waits for a reader.
    timeout: Duration,
}

impl Conn {
    /// Reads more bytes into `buf`; 0 means end of stream.
    fn fill(&mut self) -> Result<usize, FetchError> {
        let len = self.buf.len();
        if self.buf.capacity() - len < READ_SIZE {
            self.buf.reserve(4 * READ_SIZE);
        }
        self.buf.resize(len + READ_SIZE, 0);
        let r = loop {
            match self.stream.read(&mut self.buf[len..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        match r {
            Ok(n) => {
                self.buf.truncate(len + n);
                Ok(n)
            }
            Err(e) => {
                self.buf.truncate(len);
                Err(fetch_error_from_io(&e))
            }
        }
    }

    /// Moves up to `n` buffered bytes into the object (zero-copy: the chunk
    /// is a view of the read buffer), then waits while the cache budget
    /// paces the fill (`super::budget`).
    fn forward(&mut self, object: &Object, n: u64) -> Result<u64, FetchError> {
        let k = (self.buf.len() as u64).min(n) as usize;
        if k > 0 {
            object.push(self.buf.split_to(k).freeze());
            pace_fill(object, self.timeout)?;
        }
        Ok(k as u64)
    }

    /// Reads one CRLF-terminated line (without the CRLF).
    fn line(&mut self) -> Result<String, FetchError> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.advance(i + 2);
                return Ok(line);
            }
            if self.buf.len() > 4096 {
                return Err(FetchError::BadResponse("chunk line too long".into()));
            }
            if self.fill()? == 0 {
                return Err(FetchError::BadResponse("truncated chunked body".into()));
            }
        }
    }
}

/// The parts of an origin response head the cache keeps.
#[derive(Debug, Default)]
struct Head {
    status: u16,
    len: usize,
    content_length: Option<u64>,
    chunked: bool,
    etag: Option<String>,
    last_modified: Option<String>,
    content_type: Option<String>,
    content_range: Option<String>,
    date: Option<String>,
    expires: Option<String>,
    age: Option<String>,
    cache_control: Vec<String>,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, FetchError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(FetchError::BadResponse(e.to_string())),
    };
    let mut h = Head {
        status: resp.code.unwrap_or(0),
        len,
        ..Head::default()
    };
    for hd in resp.headers.iter() {
        let v = || String::from_utf8_lossy(hd.value).trim().to_string();
        let n = hd.name;
        if n.eq_ignore_ascii_case("content-length") {
            let parsed = v().parse::<u64>().ok();
            // RFC 9112 §6.3: differing Content-Length values are an error.
            if parsed.is_none() || (h.content_length.is_some() && h.content_length != parsed) {
                return Err(FetchError::BadResponse("bad Content-Length".into()));
            }
            h.content_length = parsed;
        } else if n.eq_ignore_ascii_case("transfer-encoding") {
            h.chunked = v().to_ascii_lowercase().ends_with("chunked");
        } else if n.eq_ignore_ascii_case("etag") {
            h.etag = Some(v());
        } else if n.eq_ignore_ascii_case("last-modified") {
            h.last_modified = Some(v());
        } else if n.eq_ignore_ascii_case("content-type") {
            h.content_type = Some(v());
        } else if n.eq_ignore_ascii_case("content-range") {
            h.content_range = Some(v());
        } else if n.eq_ignore_ascii_case("date") {
            h.date = Some(v());
        } else if n.eq_ignore_ascii_case("expires") {
            h.expires = Some(v());
        } else if n.eq_ignore_ascii_case("age") {
            h.age = Some(v());
        } else if n.eq_ignore_ascii_case("cache-control") {
            h.cache_control.push(v());
        }
    }
    Ok(Some(h))
}

/// `bytes FIRST-LAST/COMPLETE` (RFC 9110 §14.4) → (first, last, complete).
fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.strip_prefix("bytes ")?;
    let (range, complete) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let complete = match complete.trim() {
        "*" => None,
        c => Some(c.parse().ok()?),
    };
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?, complete))
}

fn connect(origin: &Origin) -> Result<TcpStream, FetchError> {
    let s =
        TcpStream::connect_timeout(&origin.addr, origin.timeout).map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => FetchError::Timeout,
            _ => FetchError::Connect(e.kind().to_string()),
        })?;
    let io = |e: io::Error| FetchError::Io(e.to_string());
    s.set_read_timeout(Some(origin.timeout)).map_err(io)?;
    s.set_write_timeout(Some(origin.timeout)).map_err(io)?;
    s.set_nodelay(true).map_err(io)?;
    Ok(s)
}

/// What one origin request asks for.
enum Ask<'a> {
    /// GET, optionally from a byte with `If-Range`.
    Get(Option<(u64, Option<&'a str>)>),
    /// POST or PUT with a spooled body.
    Upload(&'a UploadRequest),
}

fn fetch(
    origin: &Origin,
    object: &Object,
    ask: Ask<'_>,
    stale: Option<&Arc<Object>>,
) -> Result<(), FetchError> {
    let (range, upload) = match ask {
        Ask::Get(range) => (range, None),
        Ask::Upload(u) => (None, Some(u)),
    };
    let body = match upload {
        // Opened before connecting: a missing spool is not the origin's fault.
        Some(u) => Some(
            std::fs::File::open(&u.body)
                .map_err(|e| FetchError::Io(format!("upload spool: {e}")))?,
        ),
        None => None,
    };
    let stream = connect(origin)?;
    let mut req = format!(
        "{} {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: baton\r\nConnection: close\r\n",
        upload.map_or("GET", |u| u.method.as_str()),
        origin.prefix,
        object.url(),
        origin.host
    );
    if let Some(u) = upload {
        req.push_str(&format!("Content-Length: {}\r\n", u.length));
        if let Some(ct) = &u.content_type {
            req.push_str(&format!("Content-Type: {ct}\r\n"));
        }
    }
    if let Some((from, if_range)) = range {
        req.push_str(&format!("Range: bytes={from}-\r\n"));
        if let Some(v) = if_range {
            req.push_str(&format!("If-Range: {v}\r\n"));
        }
    }
    let stale_meta = stale.and_then(|s| s.meta().cloned());
    if let Some(m) = &stale_meta {
        // RFC 9111 §4.3.1: validate with the stored validators.
        if let Some(e) = &m.etag {
            req.push_str(&format!("If-None-Match: {e}\r\n"));
        }
        if let Some(lm) = &m.last_modified {
            req.push_str(&format!("If-Modified-Since: {lm}\r\n"));
        }
    }
    req.push_str("\r\n");
    let mut conn = Conn {
        stream,
        buf: BytesMut::with_capacity(4 * READ_SIZE),
        timeout: origin.timeout,
    };
    conn.stream
        .write_all(req.as_bytes())
        .map_err(|e| fetch_error_from_io(&e))?;
    if let (Some(mut file), Some(u)) = (body, upload) {
        // Exactly the announced length: the spool may not grow meanwhile
        // (the session sends once the body is complete).
        let sent = io::copy(&mut (&mut file).take(u.length), &mut conn.stream)
            .map_err(|e| fetch_error_from_io(&e))?;
        if sent != u.length {
            return Err(FetchError::Io(format!(
                "upload spool holds {sent} of {} bytes",
                u.length
            )));
        }
    }

    let head = loop {
        match parse_head(&conn.buf)? {
            // 1xx interim answers are skipped (RFC 9110 §15.2).
            Some(h) if (100..200).contains(&h.status) => conn.buf.advance(h.len),
            Some(h) => {
                conn.buf.advance(h.len);
                break h;
            }
            None if conn.buf.len() > MAX_HEAD => {
                return Err(FetchError::BadResponse("response head too large".into()))
            }
            None => {
                if conn.fill()? == 0 {
                    return Err(FetchError::BadResponse(
                        "connection closed before the head".into(),
                    ));
                }
            }
        }
    };
    let received = SystemTime::now();
    let now = Instant::now();
    // A server error is not an object to cache (502 to the client); but
    // an upload's answer is the origin's own verdict on it, passed through.
    if head.status >= 500 && upload.is_none() {
        return Err(FetchError::OriginStatus(head.status));
    }
    let input = FreshnessInput {
        status: head.status,
        cache_control: CacheControl::parse(head.cache_control.iter().map(String::as_str)),
        date: head.date.as_deref(),
        expires: head.expires.as_deref(),
        last_modified: head.last_modified.as_deref(),
        age: head.age.as_deref(),
    };
    let mut policy = freshness::policy(&input, received);
    if head.status == 206 {
        // A resume fetch: storable-ness is judged as for the whole object.
        policy = freshness::policy(
            &FreshnessInput {
                status: 200,
                ..input
            },
            received,
        );
    }
    let date = head
        .date
        .clone()
        .unwrap_or_else(|| httpdate::fmt_http_date(received));

    if let (304, Some(old), Some(old_meta)) = (head.status, stale, &stale_meta) {
        // RFC 9111 §4.3.4: the stored response is fresh again; its body is
        // shared with the new object (Bytes clones, no copy).
        let body = old
            .body()
            .ok_or_else(|| FetchError::BadResponse("304 for an incomplete object".into()))?;
        let meta = ObjectMeta {
            date: head.date.clone().unwrap_or_else(|| old_meta.date.clone()),
            fresh_until: now + policy.fresh_for,
            ..ObjectMeta::clone(old_meta)
        };
        object.set_meta(meta);
        for c in body.chunks() {
            object.push(c.clone());
        }
        object.complete();
        return Ok(());
    }

    let mut base = 0;
    let mut length = head.content_length;
    if head.status == 206 {
        let (first, last, complete) = head
            .content_range
            .as_deref()
            .and_then(parse_content_range)
            .ok_or_else(|| FetchError::BadResponse("206 without a valid Content-Range".into()))?;
        if range.map(|r| r.0) != Some(first) || last < first {
            return Err(FetchError::BadResponse("206 for a range not asked".into()));
        }
        base = first;
        length = complete;
    }
    if head.status == 416 {
        // RFC 9110 §14.4: `Content-Range: bytes */complete-length`; the
        // Content-Length is that of the error body, not the object's.
        length = head
            .content_range
            .as_deref()
            .and_then(|v| v.trim().strip_prefix("bytes */"))
            .and_then(|n| n.trim().parse().ok());
    }
    let has_body = !matches!(head.status, 204 | 304);
    object.set_meta(ObjectMeta {
        status: head.status,
        length: if has_body { length } else { Some(0) },
        base,
        etag: head.etag.clone(),
        last_modified: head.last_modified.clone(),
        content_type: head.content_type.clone(),
        date,
        fresh_until: now + policy.fresh_for,
        storable: policy.storable,
    });
    if !has_body {
        object.complete();
        return Ok(());
    }

    if head.chunked {
        // RFC 9112 §7.1: size line, data, CRLF; a zero size ends the body,
        // then trailer lines until an empty one.
        loop {
            let line = conn.line()?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| FetchError::BadResponse("bad chunk size".into()))?;
            if size == 0 {
                while !conn.line()?.is_empty() {}
                break;
            }
            let mut left = size;
            while left > 0 {
                if conn.buf.is_empty() && conn.fill()? == 0 {
                    return Err(FetchError::BadResponse("truncated chunk".into()));
                }
                left -= conn.forward(object, left)?;
            }
            if !conn.line()?.is_empty() {
                return Err(FetchError::BadResponse("chunk not followed by CRLF".into()));
            }
        }
    } else if let Some(cl) = head.content_length {
        let mut left = cl;
        while left > 0 {
            if conn.buf.is_empty() && conn.fill()? == 0 {
                return Err(FetchError::BadResponse(
                    "body shorter than Content-Length".into(),
                ));
            }
            left -= conn.forward(object, left)?;
        }
    } else {
        // Close-delimited body (RFC 9112 §6.3 rule 8).
        loop {
            conn.forward(object, u64::MAX)?;
            if conn.fill()? == 0 {
                break;
            }
        }
    }
    object.complete();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_is_split_into_first_last_and_length() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, 199, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 0-9/*"), Some((0, 9, None)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 0-9/10"), None);
    }

    #[test]
    fn timeouts_are_504_and_everything_else_502() {
        assert_eq!(FetchError::Timeout.client_status(), 504);
        assert_eq!(FetchError::Connect("refused".into()).client_status(), 502);
        assert_eq!(FetchError::OriginStatus(503).client_status(), 502);
        assert_eq!(FetchError::BadResponse("x".into()).client_status(), 502);
    }

    #[test]
    fn origin_from_config_keeps_address_host_prefix_and_timeout() {
        let mut c = baton_config::CacheConfig {
            origin: "http://198.19.0.2:8080/base/".into(),
            memory_bytes: 1 << 20,
            disk_dir: None,
            fetchers: 1,
            max_fetches: 8,
            origin_timeout_ms: 1500,
        };
        let o = Origin::from_config(&c).expect("IP origin");
        assert_eq!(o.addr, "198.19.0.2:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(
            (o.host.as_str(), o.prefix.as_str()),
            ("198.19.0.2:8080", "/base")
        );
        assert_eq!(o.timeout, Duration::from_millis(1500));
        c.origin = "http://198.19.0.2".into();
        let o = Origin::from_config(&c).unwrap();
        assert_eq!((o.host.as_str(), o.prefix.as_str()), ("198.19.0.2", ""));
        c.origin = "http://origin.example/".into();
        assert!(
            Origin::from_config(&c).is_none(),
            "no resolver on the back LAN"
        );
    }

    #[test]
    fn conflicting_content_lengths_are_a_bad_response() {
        let r = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
        assert!(matches!(r, Err(FetchError::BadResponse(_))));
    }
}
