//! `baton-load`: a load client on the kernel's TCP, for the lab's client
//! namespace. It opens many HTTP/1.1 connections to one URL, runs keep-alive
//! requests on each, checks every response (status, length, optionally the
//! body's sha256) and reports latency percentiles (hdrhistogram) and errors.
//! One thread, one epoll (mio): the box under test gets the other core.
//!
//! Exit code 0 only when every request succeeded: tests rely on it.
//!
//! For the benchmark suite (`baton-bench`) it also holds connections for a
//! while (`--hold-secs`), reads at a bounded rate per connection (`--rate`, a
//! token bucket, so that downloads last across a box kill), and writes a
//! receive timeline (`--timeline`): per connection the longest gap between two
//! reads that returned data and the gap around a mark (the moment the harness
//! touched `--mark-file`, i.e. killed a box), plus goodput in 100 ms buckets.
//!
//! With a mark file, every socket also gets kernel receive timestamps
//! (`SO_TIMESTAMPNS`, socket(7)): each read says when the kernel received
//! the newest data it returned. A connection has *resumed* when a read
//! returns data the kernel received after the kill. Reads alone cannot
//! tell: a rate-limited reader first drains what was buffered before the
//! kill, so the longest gap after the kill often starts after the kill and
//! ends long after the survivor resumed sending. The mark file may hold
//! the kill's wall-clock time (Unix microseconds), written once the kill
//! has returned; otherwise the moment the file is seen is the kill.
//! Progress goes to stderr once a second; the line `ALL CONNECTED` on stdout
//! tells a driving harness that every connection is established.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Write};
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
    /// Requests per connection (keep-alive, one after another); 0 = as many
    /// as fit in --hold-secs.
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
    /// Read at most this many body bytes per second on each connection
    /// (token bucket), so that downloads last; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// SO_RCVBUF of every socket, bytes (0 = kernel default). A small buffer
    /// keeps a rate-limited reader from hiding a stall behind buffered data.
    #[arg(long, default_value_t = 0)]
    rcvbuf: usize,
    /// Once every connection is established (or failed), run this many more
    /// seconds and stop; connections still busy then are counted as cut, not
    /// failed. With it, --requests is a maximum.
    #[arg(long)]
    hold_secs: Option<f64>,
    /// Write the receive timeline (JSON) to this file.
    #[arg(long)]
    timeline: Option<std::path::PathBuf>,
    /// When this file appears, note the moment as the mark (a box was killed).
    #[arg(long)]
    mark_file: Option<std::path::PathBuf>,
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
    /// Token bucket of --rate: bytes this connection may read now.
    tokens: f64,
    refilled: Instant,
    /// Receive timeline, microseconds since the run started.
    rx: RxTimeline,
}

/// What one connection's receive side looked like over time.
#[derive(Default, Clone, Copy)]
struct RxTimeline {
    bytes: u64,
    first_us: Option<u64>,
    last_us: Option<u64>,
    /// Longest gap between two reads that returned body or header bytes.
    longest_gap_us: u64,
    longest_gap_end_us: u64,
    /// Longest gap that ended after the mark, and when it ended.
    mark_gap_us: u64,
    mark_gap_end_us: Option<u64>,
    /// Longest gap that ended before the mark: the stall noise floor.
    pre_mark_gap_us: u64,
    /// For a connection still open at the end: time since its last byte (a
    /// stall that never ended).
    trailing_gap_us: u64,
    /// The connection failed (reset, closed early, ...).
    failed: bool,
    /// When the kernel received the first data after the kill (µs since
    /// the start, from `SO_TIMESTAMPNS`): the connection resumed.
    resumed_us: Option<u64>,
    /// The gap between the read that returned that data and the read
    /// before it: the stall the application saw across the takeover.
    resume_read_gap_us: Option<u64>,
}

/// Shared state of the run that the per-connection code updates.
struct Run {
    started: Instant,
    /// Wall-clock start, µs since the epoch (kernel timestamps are too).
    started_unix_us: u64,
    mark_us: Option<u64>,
    /// Goodput, bytes per 100 ms bucket since the start.
    goodput: Vec<u64>,
    rate: u64,
}

impl Run {
    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Books `n` received bytes on `rx` at the current time.
    fn received(&mut self, rx: &mut RxTimeline, n: usize) {
        let now = self.now_us();
        let bucket = (now / 100_000) as usize;
        if self.goodput.len() <= bucket {
            self.goodput.resize(bucket + 1, 0);
        }
        self.goodput[bucket] += n as u64;
        rx.bytes += n as u64;
        if let Some(last) = rx.last_us {
            let gap = now.saturating_sub(last);
            if gap > rx.longest_gap_us {
                rx.longest_gap_us = gap;
                rx.longest_gap_end_us = now;
            }
            match self.mark_us {
                Some(mark) if now >= mark => {
                    if gap >= rx.mark_gap_us {
                        rx.mark_gap_us = gap;
                        rx.mark_gap_end_us = Some(now);
                    }
                }
                _ => rx.pre_mark_gap_us = rx.pre_mark_gap_us.max(gap),
            }
        } else if rx.first_us.is_none() {
            rx.first_us = Some(now);
        }
        rx.last_us = Some(now);
    }

    /// Books the kernel receive time `stamp` (µs since the epoch) of the
    /// data a read returned at `read_us` (after the gap `gap_us` since the
    /// previous read): the first data received after the kill resumes the
    /// connection.
    fn stamped(&mut self, rx: &mut RxTimeline, stamp: u64, read_us: u64, gap_us: u64) {
        let Some(mark) = self.mark_us else {
            return;
        };
        let at = stamp.saturating_sub(self.started_unix_us);
        if rx.resumed_us.is_none() && at > mark {
            rx.resumed_us = Some(at);
            rx.resume_read_gap_us = Some(gap_us.min(read_us));
        }
    }
}

/// recv(2) with the kernel's receive timestamp of the newest data returned
/// (`SCM_TIMESTAMPNS`, µs since the epoch) when the socket has
/// `SO_TIMESTAMPNS` on.
fn recv_stamped(stream: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    use std::os::fd::AsRawFd;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one cmsg with a timespec, 8-byte aligned.
    let mut control = [0u64; 8];
    // SAFETY: all-zero is a valid msghdr; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg describes live buffers of the stated lengths.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the CMSG_* walk stays inside msg_control as the kernel filled
    // it (msg_controllen was updated by recvmsg); the data is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = Some(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp))
}

/// Turns kernel receive timestamps on (socket(7) `SO_TIMESTAMPNS`).
fn enable_rx_timestamps(stream: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt with a c_int option value of the right length.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kill time a mark file holds (Unix µs), as µs since the run start.
fn mark_from_file(path: &std::path::Path, started_unix_us: u64) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let unix_us: u64 = text.split_whitespace().find_map(|w| w.parse().ok())?;
    Some(unix_us.saturating_sub(started_unix_us))
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

/// The source ports this process hands out, in turn, from the namespace's
/// `ip_local_port_range`.
///
/// Why not let the kernel pick: with port 0, bind(2) (and connect(2) with
/// `IP_BIND_ADDRESS_NO_PORT`) search the range for a port with no conflict,
/// preferring one half of it, and a port still in TIME_WAIT towards the
/// same server is a conflict. Measured in the lab (Linux 6.18): a run that
/// reuses an address whose previous run left 19000 TIME_WAIT ports stalls
/// once the preferred half is used up: each bind took ~80 ms (each connect
/// ~15 ms with `IP_BIND_ADDRESS_NO_PORT`), 256 at a time, so this
/// one-thread client served none of its open connections for up to 15 s at
/// a stretch, and 19000 connections took 33 s to open instead of 6-14 s.
/// The 300,000-connection run's first five processes (the addresses its
/// 100,000 run had used 30 s before) stalled that way. Walking the range
/// ourselves costs one failed bind or connect per busy port.
struct PortCursor {
    lo: u16,
    span: u32,
    next: u32,
}

impl PortCursor {
    fn new() -> PortCursor {
        let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace().map(|v| v.parse::<u16>().ok());
                Some((it.next()??, it.next()??))
            })
            .filter(|(lo, hi)| lo <= hi)
            .unwrap_or((32768, 60999));
        let span = u32::from(hi - lo) + 1;
        // Start where another process of the same run is unlikely to be.
        let next = std::process::id().wrapping_mul(7919) % span;
        PortCursor { lo, span, next }
    }

    fn take(&mut self) -> u16 {
        let port = self.lo + (self.next % self.span) as u16;
        self.next = (self.next + 1) % self.span;
        port
    }
}

fn connect(
    target: SocketAddr,
    source: Option<IpAddr>,
    rcvbuf: usize,
    ports: &mut PortCursor,
) -> io::Result<TcpStream> {
    if source.is_none() && rcvbuf == 0 {
        return TcpStream::connect(target);
    }
    let Some(ip) = source else {
        return connect_from(target, None, rcvbuf);
    };
    let mut last = io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
    for _ in 0..ports.span {
        match connect_from(target, Some(SocketAddr::new(ip, ports.take())), rcvbuf) {
            // The port is bound by someone else here, or its 4-tuple towards
            // the target is still in use or in TIME_WAIT: the next one.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EADDRINUSE) | Some(libc::EADDRNOTAVAIL)
                ) =>
            {
                last = e
            }
            other => return other,
        }
    }
    Err(last)
}

/// A non-blocking connect from `source` (exactly that address and port,
/// SO_REUSEADDR so that TIME_WAIT on the port does not refuse the bind;
/// connect(2) still refuses a 4-tuple in use).
fn connect_from(
    target: SocketAddr,
    source: Option<SocketAddr>,
    rcvbuf: usize,
) -> io::Result<TcpStream> {
    // mio has no bind-before-connect nor socket options before connect; go
    // through a non-blocking socket made by libc so that many source
    // addresses can be used and SO_RCVBUF takes effect before the SYN
    // (the window scale is chosen then, RFC 7323 §2.2).
    use std::os::fd::FromRawFd;
    let domain = if target.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2); the fd is owned by the std socket below.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid socket we own (closed on every return).
    let socket = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| {
        // SAFETY: setsockopt with a c_int option value of the right length.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                &value as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    if rcvbuf > 0 {
        set(
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            rcvbuf.min(i32::MAX as usize) as libc::c_int,
        )?;
    }
    if let Some(bind_to) = source {
        set(libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        let (addr, len) = sockaddr(&bind_to);
        // SAFETY: addr is a valid sockaddr of length len.
        if unsafe { libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len) } < 0 {
            return Err(io::Error::last_os_error());
        }
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

/// Raises RLIMIT_NOFILE so that `want` sockets fit (as root the hard limit
/// may be raised too, up to fs.nr_open).
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || lim.rlim_cur >= want {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: want.max(lim.rlim_max),
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        let soft = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) };
        eprintln!(
            "baton-load: could not raise the open-file limit to {want}; it is {}",
            lim.rlim_max
        );
    }
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// What one step of a connection's state machine decided.
enum Step {
    Continue,
    /// Nothing to do until this moment (a pause or an empty token bucket).
    WakeAt(Instant),
    Finished,
    Failed(&'static str),
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (target, path) = parse_url(&args.url)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: baton-load\r\n\r\n",
        target.ip()
    );
    let expected_sha = args.sha256.as_ref().map(|s| s.to_ascii_lowercase());
    raise_fd_limit(args.connections as u64 + 1024);
    // --requests 0 with --hold-secs: keep requesting until the hold ends.
    let max_requests = if args.requests == 0 {
        usize::MAX
    } else {
        args.requests
    };
    if args.requests == 0 && args.hold_secs.is_none() {
        anyhow::bail!("--requests 0 (unlimited) needs --hold-secs");
    }

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(4096);
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut tally = Tally::default();
    let started = Instant::now();
    let started_unix_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let started_unix_ms = started_unix_us / 1000;
    let mut run = Run {
        started,
        started_unix_us,
        mark_us: None,
        goodput: Vec::new(),
        rate: args.rate,
    };
    let deadline = started + Duration::from_secs(args.timeout_secs);
    // Wake-ups of paused and throttled connections; stale entries are harmless
    // because `drive` re-checks the connection's own state.
    let mut timers: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    let mut timelines: Vec<RxTimeline> = Vec::new();
    let mut opened = 0usize;
    let mut connecting = 0usize;
    let mut connected = 0u64;
    let mut connect_done_at: Option<Instant> = None;
    let mut hold_until: Option<Instant> = None;
    let mut finished = 0usize;
    let mut cut = 0u64;
    let mut max_open = 0usize;
    let mut last_progress = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut ports = PortCursor::new();

    while finished < args.connections {
        let now = Instant::now();
        if now > deadline {
            tally.error("run timed out");
            break;
        }
        if hold_until.is_some_and(|t| now >= t) {
            break;
        }
        if run.mark_us.is_none() {
            if let Some(mark) = &args.mark_file {
                if mark.exists() {
                    run.mark_us =
                        Some(mark_from_file(mark, started_unix_us).unwrap_or_else(|| run.now_us()));
                    eprintln!(
                        "baton-load: mark at {:.3} s",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }
        while opened < args.connections && connecting < args.connect_burst {
            let source = (!args.source.is_empty()).then(|| args.source[opened % args.source.len()]);
            let token = opened;
            opened += 1;
            match connect(target, source, args.rcvbuf, &mut ports) {
                Ok(mut stream) => {
                    if args.mark_file.is_some() {
                        if let Err(e) = enable_rx_timestamps(&stream) {
                            eprintln!("baton-load: SO_TIMESTAMPNS: {e}");
                        }
                    }
                    poll.registry().register(
                        &mut stream,
                        Token(token),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
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
                            tokens: 0.0,
                            refilled: Instant::now(),
                            rx: RxTimeline::default(),
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
        if connect_done_at.is_none() && opened == args.connections && connecting == 0 {
            let at = Instant::now();
            connect_done_at = Some(at);
            hold_until = args
                .hold_secs
                .map(|s| at + Duration::from_secs_f64(s.max(0.0)));
            println!("ALL CONNECTED {connected}");
            let _ = io::stdout().flush();
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "baton-load: {:.0} s: open {} connected {connected} requests ok {} errors {}",
                started.elapsed().as_secs_f64(),
                conns.len(),
                tally.requests_ok,
                tally.error_count()
            );
        }

        let now = Instant::now();
        let wait = timers
            .peek()
            .map(|Reverse((t, _))| t.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(if args.mark_file.is_some() {
                10
            } else {
                100
            }));
        poll.poll(&mut events, Some(wait))?;

        let mut ready: Vec<usize> = events.iter().map(|e| e.token().0).collect();
        let now = Instant::now();
        while let Some(Reverse((t, token))) = timers.peek().copied() {
            if t > now {
                break;
            }
            timers.pop();
            ready.push(token);
        }
        for token in ready {
            let Some(conn) = conns.get_mut(&token) else {
                continue;
            };
            let was_connecting = conn.phase == Phase::Connecting;
            let step = drive(
                conn,
                &request,
                &mut buf,
                max_requests,
                args.interval_ms,
                &expected_sha,
                &mut latency,
                &mut tally,
                &mut run,
            );
            if was_connecting && conn.phase != Phase::Connecting {
                connecting -= 1;
                connected += 1;
            }
            match step {
                Step::Continue => {}
                Step::WakeAt(t) => timers.push(Reverse((t, token))),
                Step::Finished | Step::Failed(_) => {
                    if let Step::Failed(kind) = step {
                        tally.error(kind);
                    }
                    if conn.phase == Phase::Connecting {
                        connecting -= 1;
                    }
                    if let Some(mut c) = conns.remove(&token) {
                        let _ = poll.registry().deregister(&mut c.stream);
                        c.rx.failed = matches!(step, Step::Failed(_));
                        timelines.push(c.rx);
                    }
                    finished += 1;
                }
            }
        }
    }
    // Connections still open: cut by --hold-secs (fine) or by the timeout
    // (already counted as one error above).
    for c in conns.values() {
        if args.hold_secs.is_some() && c.phase != Phase::Connecting {
            cut += 1;
        }
        let mut rx = c.rx;
        if let Some(last) = rx.last_us {
            rx.trailing_gap_us = run.now_us().saturating_sub(last);
        }
        timelines.push(rx);
    }

    let elapsed = started.elapsed().as_secs_f64();
    let pct = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let errors = tally.error_count();
    let connect_secs = connect_done_at
        .map(|t| (t - started).as_secs_f64())
        .unwrap_or(elapsed);
    println!(
        "connections {} (max open {max_open}, connected {connected} in {connect_secs:.2} s, {:.0}/s), requests ok {}, errors {errors}, cut {cut}, {:.1} s, {:.0} req/s, {:.1} MB/s",
        args.connections,
        connected as f64 / connect_secs.max(1e-6),
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
        let errs: Vec<String> = tally
            .errors
            .iter()
            .map(|(k, n)| format!("\"{k}\": {n}"))
            .collect();
        let json = format!(
            "{{\"connections\": {}, \"max_open\": {max_open}, \"connected\": {connected}, \"connect_seconds\": {connect_secs:.3}, \"connects_per_s\": {:.1}, \"requests_ok\": {}, \"errors\": {errors}, \"cut\": {cut}, \"error_kinds\": {{{}}}, \"seconds\": {elapsed:.3}, \"requests_per_s\": {:.1}, \"bytes\": {}, \"latency_ms\": {{\"p50\": {:.3}, \"p99\": {:.3}, \"p999\": {:.3}, \"max\": {:.3}}}}}\n",
            args.connections,
            connected as f64 / connect_secs.max(1e-6),
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
    if let Some(path) = &args.timeline {
        write_timeline(path, started_unix_ms, &run, &timelines)?;
    }
    if errors > 0 {
        eprintln!("baton-load: {errors} requests or connections failed");
        std::process::exit(1);
    }
    Ok(())
}

/// Writes the receive timeline: the mark, goodput per 100 ms, and one row per
/// connection `[bytes, first_ms, longest_gap_ms, longest_gap_end_ms,
/// mark_gap_ms, mark_gap_end_ms, pre_mark_gap_ms, trailing_gap_ms, failed,
/// resumed_ms, resume_read_gap_ms]` (times since the start; -1 = none).
fn write_timeline(
    path: &std::path::Path,
    started_unix_ms: u64,
    run: &Run,
    rows: &[RxTimeline],
) -> Result<()> {
    use std::fmt::Write as _;
    let ms = |us: u64| us as f64 / 1000.0;
    let opt = |v: Option<u64>| {
        v.map(|us| format!("{:.3}", ms(us)))
            .unwrap_or_else(|| "-1".into())
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"started_unix_ms\": {started_unix_ms}, \"mark_ms\": {}, \"bucket_ms\": 100, \"goodput_bytes\": [",
        opt(run.mark_us)
    );
    for (i, b) in run.goodput.iter().enumerate() {
        let _ = write!(out, "{}{b}", if i > 0 { "," } else { "" });
    }
    out.push_str("],\n\"connections\": [\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            out,
            "{}[{}, {}, {:.3}, {:.3}, {:.3}, {}, {:.3}, {:.3}, {}, {}, {}]",
            if i > 0 { ",\n" } else { "" },
            r.bytes,
            opt(r.first_us),
            ms(r.longest_gap_us),
            ms(r.longest_gap_end_us),
            ms(r.mark_gap_us),
            opt(r.mark_gap_end_us),
            ms(r.pre_mark_gap_us),
            ms(r.trailing_gap_us),
            u8::from(r.failed),
            opt(r.resumed_us),
            opt(r.resume_read_gap_us)
        );
    }
    out.push_str("\n]}\n");
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
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
    run: &mut Run,
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
                    return Step::WakeAt(until);
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
                let want = match take_tokens(conn, run.rate, buf.len()) {
                    Ok(want) => want,
                    Err(at) => return Step::WakeAt(at),
                };
                let (n, stamp) = match recv_stamped(&conn.stream, &mut buf[..want]) {
                    Ok((0, _)) => return Step::Failed("connection closed mid-response"),
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Continue,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                        return Step::Failed("connection reset")
                    }
                    Err(_) => return Step::Failed("receive failed"),
                };
                if run.rate > 0 {
                    conn.tokens -= n as f64;
                }
                let read_us = run.now_us();
                let gap_us = conn.rx.last_us.map_or(0, |l| read_us.saturating_sub(l));
                run.received(&mut conn.rx, n);
                if let Some(stamp) = stamp {
                    run.stamped(&mut conn.rx, stamp, read_us, gap_us);
                }
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
                        let got: String = hasher
                            .finalize()
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect();
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
                        let until = Instant::now() + Duration::from_millis(interval_ms);
                        conn.phase = Phase::Pausing { until };
                        // Gaps between requests are not stalls.
                        conn.rx.last_us = None;
                        return Step::WakeAt(until);
                    } else {
                        conn.request_started = Instant::now();
                        Phase::Sending
                    };
                }
            }
        }
    }
}

/// How many bytes the token bucket of `--rate` lets this connection read now
/// (at most `max`), or the moment it will let it read a useful chunk.
fn take_tokens(conn: &mut Conn, rate: u64, max: usize) -> std::result::Result<usize, Instant> {
    if rate == 0 {
        return Ok(max);
    }
    // Burst: 50 ms of the rate, at least one 1460-byte segment, so that the
    // reader neither hoards nor wakes for every few bytes.
    let burst = (rate as f64 / 20.0).max(1460.0);
    let now = Instant::now();
    let dt = now.saturating_duration_since(conn.refilled).as_secs_f64();
    conn.refilled = now;
    conn.tokens = (conn.tokens + dt * rate as f64).min(burst);
    let chunk = (burst / 4.0).max(1460.0).min(burst);
    if conn.tokens < chunk {
        let missing = chunk - conn.tokens;
        return Err(now + Duration::from_secs_f64(missing / rate as f64));
    }
    Ok((conn.tokens as usize).clamp(1, max))
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
