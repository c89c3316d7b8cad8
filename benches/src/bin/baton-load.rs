//! `baton-load`: a load client on the kernel's TCP, for the lab's client
//! namespace. It opens many HTTP/1.1 connections to one URL, runs keep-alive
//! requests on each, checks every response (status, length, optionally the
//! body's sha256) and reports latency percentiles (hdrhistogram) and errors.
//! One thread, one epoll (mio): the box under test gets the other core.
//!
//! Exit code 0 only when every request succeeded: tests rely on it.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use sha2::{Digest, Sha256};

/// Command line of `baton-load`.
#[derive(Parser, Debug)]
#[command(name = "baton-load", about = "HTTP load client for the Baton lab")]
struct Args {
    /// URL to request, http://IP[:port]/path (no DNS: the lab has none).
    #[arg(long)]
    url: String,
    /// Connections to open (all held open at once).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Requests per connection (keep-alive, one after another).
    #[arg(long, default_value_t = 1)]
    requests: usize,
    /// Pause between two requests on one connection, in milliseconds.
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
    /// Largest number of connections being opened at the same moment.
    #[arg(long, default_value_t = 256)]
    connect_burst: usize,
    /// Local addresses to bind, spread round-robin (beyond 64k ports per address).
    #[arg(long, value_delimiter = ',')]
    source: Vec<IpAddr>,
    /// Expected sha256 of every body (hex).
    #[arg(long)]
    sha256: Option<String>,
    /// Give up on the whole run after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Write the summary as JSON to this file too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(Debug, PartialEq)]
enum Phase {
    Connecting,
    Sending,
    Headers,
    Body { remaining: u64 },
    Pausing { until: Instant },
    Done,
}

struct Conn {
    stream: TcpStream,
    phase: Phase,
    buf: Vec<u8>,
    sent: usize,
    requests_done: usize,
    request_started: Instant,
    hasher: Option<Sha256>,
}

#[derive(Default, Debug)]
struct Tally {
    requests_ok: u64,
    bytes: u64,
    errors: HashMap<&'static str, u64>,
}

impl Tally {
    fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }
    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

fn parse_url(url: &str) -> Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr: SocketAddr = match authority.parse() {
        Ok(addr) => addr,
        Err(_) => {
            let ip: IpAddr = authority
                .parse()
                .with_context(|| format!("{url}: host must be an IP address"))?;
            SocketAddr::new(ip, 80)
        }
    };
    Ok((addr, path.to_string()))
}

fn connect(target: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(ip) = source else {
        return TcpStream::connect(target);
    };
    // mio has no bind-before-connect; go through std with a non-blocking
    // socket made by libc so that many source addresses can be used.
    use std::os::fd::FromRawFd;
    let domain = if target.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket(2); the fd is owned by the std socket below.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid socket we own.
    let socket = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    let bind_to = SocketAddr::new(ip, 0);
    let (addr, len) = sockaddr(&bind_to);
    // SAFETY: addr is a valid sockaddr of length len.
    if unsafe { libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let (addr, len) = sockaddr(&target);
    // SAFETY: as above; EINPROGRESS is the expected answer of a non-blocking connect.
    if unsafe { libc::connect(fd, &addr as *const _ as *const libc::sockaddr, len) } < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(err);
        }
    }
    Ok(TcpStream::from_std(socket))
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            (storage, std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (storage, std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

/// What one step of a connection's state machine decided.
enum Step {
    Continue,
    Finished,
    Failed(&'static str),
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (target, path) = parse_url(&args.url)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: baton-load\r\n\r\n", target.ip());
    let expected_sha = args.sha256.as_ref().map(|s| s.to_ascii_lowercase());

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(4096);
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut tally = Tally::default();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let mut opened = 0usize;
    let mut connecting = 0usize;
    let mut finished = 0usize;
    let mut max_open = 0usize;
    let mut buf = vec![0u8; 256 * 1024];

    while finished < args.connections {
        if Instant::now() > deadline {
            tally.error("run timed out");
            break;
        }
        while opened < args.connections && connecting < args.connect_burst {
            let source = (!args.source.is_empty()).then(|| args.source[opened % args.source.len()]);
            let token = opened;
            opened += 1;
            match connect(target, source) {
                Ok(mut stream) => {
                    poll.registry()
                        .register(&mut stream, Token(token), Interest::READABLE | Interest::WRITABLE)?;
                    conns.insert(
                        token,
                        Conn {
                            stream,
                            phase: Phase::Connecting,
                            buf: Vec::new(),
                            sent: 0,
                            requests_done: 0,
                            request_started: Instant::now(),
                            hasher: None,
                        },
                    );
                    connecting += 1;
                }
                Err(_) => {
                    tally.error("connect failed");
                    finished += 1;
                }
            }
        }
        max_open = max_open.max(conns.len());

        let now = Instant::now();
        let next_pause = conns
            .values()
            .filter_map(|c| match c.phase {
                Phase::Pausing { until } => Some(until),
                _ => None,
            })
            .min();
        let wait = next_pause
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(100));
        poll.poll(&mut events, Some(wait))?;

        let mut ready: Vec<usize> = events.iter().map(|e| e.token().0).collect();
        let now = Instant::now();
        ready.extend(
            conns
                .iter()
                .filter(|(_, c)| matches!(c.phase, Phase::Pausing { until } if until <= now))
                .map(|(t, _)| *t),
        );
        for token in ready {
            let Some(conn) = conns.get_mut(&token) else { continue };
            let was_connecting = conn.phase == Phase::Connecting;
            let step = drive(conn, &request, &mut buf, args.requests, args.interval_ms, &expected_sha, &mut latency, &mut tally);
            if was_connecting && conn.phase != Phase::Connecting {
                connecting -= 1;
            }
            match step {
                Step::Continue => {}
                Step::Finished | Step::Failed(_) => {
                    if let Step::Failed(kind) = step {
                        tally.error(kind);
                    }
                    if conn.phase == Phase::Connecting {
                        connecting -= 1;
                    }
                    if let Some(mut c) = conns.remove(&token) {
                        let _ = poll.registry().deregister(&mut c.stream);
                    }
                    finished += 1;
                }
            }
        }
    }

    let elapsed = started.elapsed().as_secs_f64();
    let pct = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let errors = tally.error_count();
    println!(
        "connections {} (max open {max_open}), requests ok {}, errors {errors}, {:.1} s, {:.0} req/s, {:.1} MB/s",
        args.connections,
        tally.requests_ok,
        elapsed,
        tally.requests_ok as f64 / elapsed,
        tally.bytes as f64 / elapsed / 1e6,
    );
    println!(
        "latency ms: p50 {:.3} p99 {:.3} p999 {:.3} max {:.3}",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        latency.max() as f64 / 1000.0
    );
    for (kind, n) in &tally.errors {
        println!("error: {kind}: {n}");
    }
    if let Some(path) = &args.json {
        let errs: Vec<String> = tally.errors.iter().map(|(k, n)| format!("\"{k}\": {n}")).collect();
        let json = format!(
            "{{\"connections\": {}, \"max_open\": {max_open}, \"requests_ok\": {}, \"errors\": {errors}, \"error_kinds\": {{{}}}, \"seconds\": {elapsed:.3}, \"requests_per_s\": {:.1}, \"bytes\": {}, \"latency_ms\": {{\"p50\": {:.3}, \"p99\": {:.3}, \"p999\": {:.3}, \"max\": {:.3}}}}}\n",
            args.connections,
            tally.requests_ok,
            errs.join(", "),
            tally.requests_ok as f64 / elapsed,
            tally.bytes,
            pct(0.5),
            pct(0.99),
            pct(0.999),
            latency.max() as f64 / 1000.0
        );
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if errors > 0 {
        eprintln!("baton-load: {errors} requests or connections failed");
        std::process::exit(1);
    }
    Ok(())
}

/// Advances one connection as far as its socket allows.
#[allow(clippy::too_many_arguments)]
fn drive(
    conn: &mut Conn,
    request: &str,
    buf: &mut [u8],
    requests: usize,
    interval_ms: u64,
    expected_sha: &Option<String>,
    latency: &mut Histogram<u64>,
    tally: &mut Tally,
) -> Step {
    loop {
        match conn.phase {
            Phase::Done => return Step::Finished,
            Phase::Connecting => {
                if let Ok(Some(_)) | Err(_) = conn.stream.take_error() {
                    return Step::Failed("connect failed");
                }
                match conn.stream.peer_addr() {
                    Ok(_) => {
                        conn.phase = Phase::Sending;
                        conn.request_started = Instant::now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return Step::Continue,
                    Err(_) => return Step::Failed("connect failed"),
                }
            }
            Phase::Pausing { until } => {
                if Instant::now() < until {
                    return Step::Continue;
                }
                conn.phase = Phase::Sending;
                conn.request_started = Instant::now();
            }
            Phase::Sending => match conn.stream.write(&request.as_bytes()[conn.sent..]) {
                Ok(n) => {
                    conn.sent += n;
                    if conn.sent == request.len() {
                        conn.sent = 0;
                        conn.buf.clear();
                        conn.phase = Phase::Headers;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Continue,
                Err(_) => return Step::Failed("send failed"),
            },
            Phase::Headers | Phase::Body { .. } => {
                let n = match conn.stream.read(buf) {
                    Ok(0) => return Step::Failed("connection closed mid-response"),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Continue,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Step::Failed("connection reset"),
                    Err(_) => return Step::Failed("receive failed"),
                };
                let mut data = &buf[..n];
                if conn.phase == Phase::Headers {
                    conn.buf.extend_from_slice(data);
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut response = httparse::Response::new(&mut headers);
                    let head_len = match response.parse(&conn.buf) {
                        Ok(httparse::Status::Complete(len)) => len,
                        Ok(httparse::Status::Partial) if conn.buf.len() < 64 * 1024 => continue,
                        _ => return Step::Failed("malformed response"),
                    };
                    if response.code != Some(200) {
                        return Step::Failed("status not 200");
                    }
                    let length = response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let Some(length) = length else {
                        return Step::Failed("no content-length");
                    };
                    conn.hasher = expected_sha.as_ref().map(|_| Sha256::new());
                    conn.phase = Phase::Body { remaining: length };
                    let body = conn.buf.split_off(head_len);
                    conn.buf.clear();
                    if let Err(step) = consume_body(conn, &body, tally) {
                        return step;
                    }
                    data = &[];
                }
                if !data.is_empty() {
                    if let Err(step) = consume_body(conn, data, tally) {
                        return step;
                    }
                }
                if conn.phase == (Phase::Body { remaining: 0 }) {
                    if let (Some(hasher), Some(expected)) = (conn.hasher.take(), expected_sha) {
                        let got: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
                        if &got != expected {
                            return Step::Failed("sha256 mismatch");
                        }
                    }
                    let micros = conn.request_started.elapsed().as_micros() as u64;
                    let _ = latency.record(micros.max(1));
                    tally.requests_ok += 1;
                    conn.requests_done += 1;
                    conn.phase = if conn.requests_done >= requests {
                        Phase::Done
                    } else if interval_ms > 0 {
                        Phase::Pausing {
                            until: Instant::now() + Duration::from_millis(interval_ms),
                        }
                    } else {
                        conn.request_started = Instant::now();
                        Phase::Sending
                    };
                }
            }
        }
    }
}

/// Counts and hashes body bytes; more bytes than announced is an error.
fn consume_body(conn: &mut Conn, data: &[u8], tally: &mut Tally) -> std::result::Result<(), Step> {
    let Phase::Body { remaining } = &mut conn.phase else {
        return Ok(());
    };
    if data.len() as u64 > *remaining {
        return Err(Step::Failed("more bytes than content-length"));
    }
    *remaining -= data.len() as u64;
    tally.bytes += data.len() as u64;
    if let Some(h) = conn.hasher.as_mut() {
        h.update(data);
    }
    Ok(())
}
