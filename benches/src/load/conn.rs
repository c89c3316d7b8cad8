//! One connection's HTTP/1.1 state machine in `baton-load` (connect, send,
//! read head and body, check length and sha256, keep-alive, rate limit),
//! the tallies and timelines it feeds, and the timeline file. It must not
//! know how sockets are opened.
use std::collections::HashMap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use sha2::{Digest, Sha256};

use crate::load::net::recv_stamped;
use crate::load::tls;

#[derive(Debug, PartialEq)]
pub(crate) enum Phase {
    Connecting,
    Sending,
    Headers,
    Body { remaining: u64 },
    Pausing { until: Instant },
    Done,
}

pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) phase: Phase,
    pub(crate) buf: Vec<u8>,
    pub(crate) sent: usize,
    pub(crate) requests_done: usize,
    pub(crate) request_started: Instant,
    pub(crate) hasher: Option<Sha256>,
    /// Token bucket of --rate: bytes this connection may read now.
    pub(crate) tokens: f64,
    pub(crate) refilled: Instant,
    /// Receive timeline, microseconds since the run started.
    pub(crate) rx: RxTimeline,
    /// The TLS client of an https:// run (boxed: most runs are plain).
    pub(crate) tls: Option<Box<rustls::ClientConnection>>,
}

/// What one connection's receive side looked like over time.
#[derive(Default, Clone, Copy)]
pub(crate) struct RxTimeline {
    pub(crate) bytes: u64,
    pub(crate) first_us: Option<u64>,
    pub(crate) last_us: Option<u64>,
    /// Longest gap between two reads that returned body or header bytes.
    pub(crate) longest_gap_us: u64,
    pub(crate) longest_gap_end_us: u64,
    /// Longest gap that ended after the mark, and when it ended.
    pub(crate) mark_gap_us: u64,
    pub(crate) mark_gap_end_us: Option<u64>,
    /// Longest gap that ended before the mark: the stall noise floor.
    pub(crate) pre_mark_gap_us: u64,
    /// For a connection still open at the end: time since its last byte (a
    /// stall that never ended).
    pub(crate) trailing_gap_us: u64,
    /// The connection failed (reset, closed early, ...).
    pub(crate) failed: bool,
    /// When the kernel received the first data after the kill (µs since
    /// the start, from `SO_TIMESTAMPNS`): the connection resumed.
    pub(crate) resumed_us: Option<u64>,
    /// The gap between the read that returned that data and the read
    /// before it: the stall the application saw across the takeover.
    pub(crate) resume_read_gap_us: Option<u64>,
}

/// Shared state of the run that the per-connection code updates.
pub(crate) struct Run {
    pub(crate) started: Instant,
    /// Wall-clock start, µs since the epoch (kernel timestamps are too).
    pub(crate) started_unix_us: u64,
    pub(crate) mark_us: Option<u64>,
    /// Goodput, bytes per 100 ms bucket since the start.
    pub(crate) goodput: Vec<u64>,
    pub(crate) rate: u64,
}

impl Run {
    pub(crate) fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Books `n` received bytes on `rx` at the current time.
    pub(crate) fn received(&mut self, rx: &mut RxTimeline, n: usize) {
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
    pub(crate) fn stamped(&mut self, rx: &mut RxTimeline, stamp: u64, read_us: u64, gap_us: u64) {
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

/// The kill time a mark file holds (Unix µs), as µs since the run start.
pub(crate) fn mark_from_file(path: &std::path::Path, started_unix_us: u64) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let unix_us: u64 = text.split_whitespace().find_map(|w| w.parse().ok())?;
    Some(unix_us.saturating_sub(started_unix_us))
}

#[derive(Default, Debug)]
pub(crate) struct Tally {
    pub(crate) requests_ok: u64,
    pub(crate) bytes: u64,
    pub(crate) errors: HashMap<&'static str, u64>,
}

impl Tally {
    pub(crate) fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What one step of a connection's state machine decided.
pub(crate) enum Step {
    Continue,
    /// Nothing to do until this moment (a pause or an empty token bucket).
    WakeAt(Instant),
    Finished,
    Failed(&'static str),
}

/// Writes the receive timeline: the mark, goodput per 100 ms, and one row per
/// connection `[bytes, first_ms, longest_gap_ms, longest_gap_end_ms,
/// mark_gap_ms, mark_gap_end_ms, pre_mark_gap_ms, trailing_gap_ms, failed,
/// resumed_ms, resume_read_gap_ms]` (times since the start; -1 = none).
pub(crate) fn write_timeline(
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

/// Writes request bytes, through TLS on an https:// run.
fn send(conn: &mut Conn, data: &[u8]) -> io::Result<usize> {
    match conn.tls.as_mut() {
        Some(t) => tls::write(t, &mut conn.stream, data),
        None => conn.stream.write(data),
    }
}

/// Reads response bytes (plaintext on an https:// run) with the kernel's
/// receive stamp.
fn receive(conn: &mut Conn, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    match conn.tls.as_mut() {
        Some(t) => tls::read(t, &mut conn.stream, buf),
        None => recv_stamped(&conn.stream, buf),
    }
}

/// Advances one connection as far as its socket allows.
#[allow(clippy::too_many_arguments)]
pub(crate) fn drive(
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
            Phase::Sending => match send(conn, &request.as_bytes()[conn.sent..]) {
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
                let (n, stamp) = match receive(conn, &mut buf[..want]) {
                    Ok((0, _)) => return Step::Failed("connection closed mid-response"),
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Continue,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                        return Step::Failed("connection reset")
                    }
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        eprintln!("baton-load: TLS: {e}");
                        return Step::Failed("TLS failed");
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
pub(crate) fn take_tokens(
    conn: &mut Conn,
    rate: u64,
    max: usize,
) -> std::result::Result<usize, Instant> {
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
pub(crate) fn consume_body(
    conn: &mut Conn,
    data: &[u8],
    tally: &mut Tally,
) -> std::result::Result<(), Step> {
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
