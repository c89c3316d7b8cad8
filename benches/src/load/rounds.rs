//! `baton-load --rounds N`: idle keep-alive connections that all ask
//! again, round after round, each round started by a line on stdin — the
//! protocol of the lab's Python client (`baton_lab::clients::KEEPALIVE_ROUNDS`)
//! on one mio poll. At 300,000 connections the Python clients took half of
//! the two-core lab machine's CPU samples while the box that inherited a
//! dead box's address went short of it (docs/BENCHMARKS.md, issue 19).
//!
//! It opens the connections, asks once on each (answers awaited like a
//! round's) and prints `READY`, or `NOT READY …` and exits 1 if any
//! connection failed. Then, per line read, one GET on every connection,
//! sent evenly over `--spread-ms`; every answer read and timed from its own
//! request; one line printed:
//!
//! ```text
//! ROUND n ok=K of=COUNT sha=SHA p50_ms=A p99_ms=P max_ms=M timeouts=T retrans=R
//! ```
//!
//! (`timeouts`, `retrans`: this namespace's TcpExt TCPTimeouts and Tcp
//! RetransSegs growth during the round). An answer still missing when the
//! round ends (`--spread-ms` + 30 s) is read and dropped if it comes later,
//! and its connection sits out the next round rather than pipelining a
//! second request behind it. At the end every connection is closed with a
//! FIN and the server's FINs are awaited (10 s at most, all together).
//! Exit code 0 only if every connection answered every round.
//!
//! It knows HTTP/1.1 answers with a Content-Length, nothing of the box.
use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Result;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use sha2::{Digest, Sha256};

use super::net::{connect, raise_fd_limit, PortCursor};

/// How long a round waits for its answers once its last request is sent,
/// and a connect for its handshake (the Python client's socket timeout).
const ANSWER_GRACE: Duration = Duration::from_secs(30);
/// How long the closing FINs are awaited, all connections together.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// What the rounds client is asked to do.
pub struct RoundsPlan {
    /// The server.
    pub target: SocketAddr,
    /// The whole request, sent on every connection each round.
    pub request: Vec<u8>,
    /// Connections held.
    pub connections: usize,
    /// Rounds after the first ask, each started by a line on stdin.
    pub rounds: u32,
    /// A round's requests are sent evenly over this span.
    pub spread: Duration,
    /// Local addresses, in turn (none: the kernel's choice).
    pub sources: Vec<IpAddr>,
    /// Most handshakes in progress at once.
    pub connect_burst: usize,
}

/// Where one connection is between and within rounds.
#[derive(Clone, Copy, PartialEq)]
enum State {
    Connecting {
        since: Instant,
    },
    Idle,
    Waiting {
        sent: Instant,
    },
    /// Its answer missed the round that asked for it; dropped on arrival.
    Late,
    Dead,
}

struct Client {
    stream: TcpStream,
    state: State,
    buf: Vec<u8>,
}

/// One round's account.
#[derive(Default)]
struct Round {
    ok: usize,
    latencies_ms: Vec<f64>,
    shas: HashSet<[u8; 32]>,
    errors: BTreeMap<String, u64>,
}

impl Round {
    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    fn line(mut self, n: u32, of: usize, timeouts: u64, retrans: u64) -> String {
        self.latencies_ms.sort_by(f64::total_cmp);
        let lat = &self.latencies_ms;
        // The Python client's percentile: the sample at index ⌊len·q⌋.
        let pick = |q: f64| match lat.len() {
            0 => -1.0,
            len => lat[((len as f64 * q) as usize).min(len - 1)],
        };
        let sha = match self.shas.len() {
            1 => self.shas.iter().next().map(hex).unwrap_or_default(),
            _ => "mixed".to_string(),
        };
        format!(
            "ROUND {n} ok={} of={of} sha={sha} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} timeouts={timeouts} retrans={retrans}",
            self.ok,
            pick(0.5),
            pick(0.99),
            pick(1.0)
        )
    }
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the plan, speaking the rounds protocol on stdin/stdout; `Ok(true)`
/// when every connection answered every round.
pub fn run(plan: &RoundsPlan) -> Result<bool> {
    // One descriptor a connection and a few of its own: the lab caps a
    // process at 20,000 files and the suites give one 19,000 connections.
    raise_fd_limit(plan.connections as u64 + 64);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(4096);
    let mut clients = open_all(plan, &mut poll, &mut events)?;
    let connected = clients.iter().filter(|c| c.state == State::Idle).count();
    let warm = ask_all(plan, &mut clients, &mut poll, &mut events)?;
    let mut out = io::stdout().lock();
    if connected < plan.connections || warm.ok < plan.connections {
        writeln!(
            out,
            "NOT READY connected={connected} answered={} of={} errors={:?}",
            warm.ok, plan.connections, warm.errors
        )?;
        out.flush()?;
        return Ok(false);
    }
    writeln!(out, "READY")?;
    out.flush()?;
    let mut all_ok = true;
    let mut stdin = io::stdin().lock();
    for n in 1..=plan.rounds {
        let mut go = String::new();
        if stdin.read_line(&mut go)? == 0 {
            eprintln!("baton-load: stdin closed before round {n}");
            all_ok = false;
            break;
        }
        let (t0, r0) = tcp_counters();
        let round = ask_all(plan, &mut clients, &mut poll, &mut events)?;
        let (t1, r1) = tcp_counters();
        all_ok &= round.ok == plan.connections;
        if !round.errors.is_empty() {
            eprintln!("baton-load: round {n} errors: {:?}", round.errors);
        }
        let line = round.line(n, plan.connections, t1 - t0, r1 - r0);
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    close_all(&mut clients, &mut poll, &mut events)?;
    Ok(all_ok)
}

/// Opens every connection, at most `connect_burst` handshakes at a time.
fn open_all(plan: &RoundsPlan, poll: &mut Poll, events: &mut Events) -> Result<Vec<Client>> {
    let mut clients: Vec<Client> = Vec::with_capacity(plan.connections);
    let mut ports = PortCursor::new();
    let mut connecting = 0usize;
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut settled = 0usize;
    let mut attempted = 0usize;
    while settled < plan.connections {
        while attempted < plan.connections && connecting < plan.connect_burst {
            let source =
                (!plan.sources.is_empty()).then(|| plan.sources[attempted % plan.sources.len()]);
            attempted += 1;
            let mut stream = match connect(plan.target, source, 0, &mut ports) {
                Ok(stream) => stream,
                Err(e) => {
                    settled += 1;
                    *failures.entry(format!("connect: {e}")).or_default() += 1;
                    continue;
                }
            };
            poll.registry().register(
                &mut stream,
                Token(clients.len()),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            clients.push(Client {
                stream,
                state: State::Connecting {
                    since: Instant::now(),
                },
                buf: Vec::new(),
            });
            connecting += 1;
        }
        poll.poll(events, Some(Duration::from_millis(100)))?;
        for ev in events.iter() {
            let Some(c) = clients.get_mut(ev.token().0) else {
                continue;
            };
            if !matches!(c.state, State::Connecting { .. }) {
                continue;
            }
            // Writable (or an error) ends a non-blocking connect; a spurious
            // wake-up leaves the peer address unknown.
            let done = match (c.stream.take_error(), c.stream.peer_addr()) {
                (Ok(Some(e)) | Err(e), _) => Err(e),
                (Ok(None), Ok(_)) => Ok(()),
                (Ok(None), Err(e)) if e.kind() == io::ErrorKind::NotConnected => continue,
                (Ok(None), Err(e)) => Err(e),
            };
            connecting -= 1;
            settled += 1;
            match done {
                Ok(()) => {
                    c.state = State::Idle;
                    poll.registry()
                        .reregister(&mut c.stream, ev.token(), Interest::READABLE)?;
                }
                Err(e) => {
                    c.state = State::Dead;
                    *failures.entry(format!("connect: {e}")).or_default() += 1;
                }
            }
        }
        let now = Instant::now();
        for c in clients.iter_mut() {
            if let State::Connecting { since } = c.state {
                if now.duration_since(since) > ANSWER_GRACE {
                    c.state = State::Dead;
                    connecting -= 1;
                    settled += 1;
                    *failures.entry("connect timed out".into()).or_default() += 1;
                }
            }
        }
    }
    if !failures.is_empty() {
        eprintln!("baton-load: connect failures: {failures:?}");
    }
    Ok(clients)
}

/// One GET on every idle connection, sent evenly over the plan's spread,
/// and every answer read until the round's deadline.
fn ask_all(
    plan: &RoundsPlan,
    clients: &mut [Client],
    poll: &mut Poll,
    events: &mut Events,
) -> Result<Round> {
    let mut round = Round::default();
    let start = Instant::now();
    let n = clients.len().max(1) as u32;
    let due = |i: usize| start + plan.spread * i as u32 / n;
    let deadline = start + plan.spread + ANSWER_GRACE;
    let mut scratch = vec![0u8; 64 * 1024];
    let mut next = 0usize;
    let mut waiting = 0usize;
    loop {
        let now = Instant::now();
        while next < clients.len() && due(next) <= now {
            let c = &mut clients[next];
            next += 1;
            match c.state {
                State::Idle => match send_request(c, &plan.request) {
                    Ok(()) => {
                        c.state = State::Waiting {
                            sent: Instant::now(),
                        };
                        waiting += 1;
                    }
                    Err(e) => {
                        c.state = State::Dead;
                        round.error(format!("send: {e}"));
                    }
                },
                State::Late => round.error("the previous round's answer still missing"),
                _ => round.error("closed, reset or never connected before the round"),
            }
        }
        if next == clients.len() && waiting == 0 || now >= deadline {
            break;
        }
        let until = if next < clients.len() {
            due(next).min(deadline)
        } else {
            deadline
        };
        poll.poll(events, Some(until.saturating_duration_since(now)))?;
        for ev in events.iter() {
            let Some(c) = clients.get_mut(ev.token().0) else {
                continue;
            };
            let before = c.state;
            read_answer(c, &mut scratch, &mut round);
            if matches!(before, State::Waiting { .. }) && !matches!(c.state, State::Waiting { .. })
            {
                waiting -= 1;
            }
        }
    }
    for c in clients.iter_mut() {
        if matches!(c.state, State::Waiting { .. }) {
            c.state = State::Late;
            round.error("no answer within the round");
        }
    }
    Ok(round)
}

/// The request in one write: a few dozen bytes into an idle socket's
/// empty send buffer.
fn send_request(c: &mut Client, request: &[u8]) -> io::Result<()> {
    c.buf.clear();
    match c.stream.write(request)? {
        n if n == request.len() => Ok(()),
        n => Err(io::Error::other(format!(
            "short write of the request ({n} bytes)"
        ))),
    }
}

/// Reads all the socket holds (the poll is edge-triggered) and settles
/// the connection's answer if it is whole.
fn read_answer(c: &mut Client, scratch: &mut [u8], round: &mut Round) {
    loop {
        match c.stream.read(scratch) {
            Ok(0) => {
                if matches!(c.state, State::Waiting { .. }) {
                    round.error("closed by the server before its answer");
                }
                c.state = State::Dead;
                return;
            }
            Ok(n) => c.buf.extend_from_slice(&scratch[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if matches!(c.state, State::Waiting { .. }) {
                    round.error(format!("read: {e}"));
                }
                c.state = State::Dead;
                return;
            }
        }
    }
    let sent = match c.state {
        State::Waiting { sent } => Some(sent),
        State::Late => None,
        // Bytes nobody asked for (or a closed connection's): ignored.
        _ => return,
    };
    match whole_answer(&c.buf) {
        Ok(None) => {}
        Ok(Some(body)) => {
            if let Some(sent) = sent {
                round.ok += 1;
                round
                    .latencies_ms
                    .push(sent.elapsed().as_secs_f64() * 1000.0);
                round.shas.insert(Sha256::digest(body).into());
            }
            c.buf.clear();
            c.state = State::Idle;
        }
        Err(why) => {
            round.error(why);
            c.state = State::Dead;
        }
    }
}

/// The body once `buf` holds a whole 200 answer with a Content-Length;
/// `Ok(None)` while it is incomplete.
fn whole_answer(buf: &[u8]) -> Result<Option<&[u8]>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("unparsable answer: {e}")),
    };
    if resp.code != Some(200) {
        return Err(format!("status {:?}", resp.code));
    }
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .ok_or("an answer without a valid Content-Length")?;
    let end = head.saturating_add(length);
    match buf.len() {
        have if have < end => Ok(None),
        have if have == end => Ok(Some(&buf[head..end])),
        _ => Err("more bytes than the answer".into()),
    }
}

/// This namespace's TcpExt TCPTimeouts and Tcp RetransSegs (0 if unread).
fn tcp_counters() -> (u64, u64) {
    let mut found: BTreeMap<String, u64> = BTreeMap::new();
    for file in ["/proc/net/netstat", "/proc/net/snmp"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let [head, values] = pair else { continue };
            let mut keys = head.split_whitespace();
            let Some(group) = keys.next() else { continue };
            for (k, v) in keys.zip(values.split_whitespace().skip(1)) {
                if let Ok(v) = v.parse() {
                    found.insert(format!("{group}{k}"), v);
                }
            }
        }
    }
    let get = |k: &str| found.get(k).copied().unwrap_or(0);
    (get("TcpExt:TCPTimeouts"), get("Tcp:RetransSegs"))
}

/// Closes every live connection with a FIN and waits for the server's.
fn close_all(clients: &mut [Client], poll: &mut Poll, events: &mut Events) -> Result<()> {
    let mut open = 0usize;
    for c in clients.iter_mut() {
        if c.state != State::Dead && c.stream.shutdown(Shutdown::Write).is_ok() {
            open += 1;
        } else {
            c.state = State::Dead;
        }
    }
    let deadline = Instant::now() + CLOSE_WAIT;
    let mut scratch = vec![0u8; 64 * 1024];
    while open > 0 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        poll.poll(events, Some(deadline - now))?;
        for ev in events.iter() {
            let Some(c) = clients.get_mut(ev.token().0) else {
                continue;
            };
            if c.state == State::Dead {
                continue;
            }
            let finished = loop {
                match c.stream.read(&mut scratch) {
                    Ok(0) => break true,
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // Reset: closed as well, if not politely.
                    Err(_) => break true,
                }
            };
            if finished {
                c.state = State::Dead;
                open -= 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_whole_only_with_all_its_body() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        let mut whole = head.to_vec();
        whole.extend_from_slice(b"hello");
        assert_eq!(whole_answer(&whole), Ok(Some(&b"hello"[..])));
        assert_eq!(whole_answer(&whole[..whole.len() - 1]), Ok(None));
        assert_eq!(whole_answer(&head[..10]), Ok(None));
        let mut more = whole.clone();
        more.push(b'x');
        assert!(whole_answer(&more).is_err());
        assert!(whole_answer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").is_err());
        assert!(whole_answer(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(whole_answer(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn a_round_line_has_the_python_clients_fields() {
        let mut r = Round {
            ok: 3,
            latencies_ms: vec![3.0, 1.0, 2.0],
            ..Round::default()
        };
        r.shas.insert([0xab; 32]);
        let line = r.line(2, 4, 1, 5);
        assert_eq!(
            line,
            format!(
                "ROUND 2 ok=3 of=4 sha={} p50_ms=2.0 p99_ms=3.0 max_ms=3.0 timeouts=1 retrans=5",
                "ab".repeat(32)
            )
        );
    }
}
