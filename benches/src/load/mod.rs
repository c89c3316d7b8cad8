//! `baton-load`'s load client, as a library the binary calls: [`run`]
//! opens the connections ([`net`]), drives each through its HTTP state
//! machine ([`conn`]) on one mio poll, and writes the summary and timeline.
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};

pub mod conn;
pub mod net;
pub mod rounds;
pub mod tls;

use conn::{drive, mark_from_file, write_timeline, Conn, Phase, Run, RxTimeline, Step, Tally};
use net::{connect, enable_rx_timestamps, parse_url, raise_fd_limit, PortCursor};

/// Command line of `baton-load`.
#[derive(clap::Parser, Debug)]
#[command(name = "baton-load", about = "HTTP load client for the Baton lab")]
pub struct LoadArgs {
    /// URL to request, http://IP[:port]/path (no DNS: the lab has none).
    #[arg(long)]
    pub url: String,
    /// Connections to open (all held open at once).
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Requests per connection (keep-alive, one after another); 0 = as many
    /// as fit in --hold-secs.
    #[arg(long, default_value_t = 1)]
    pub requests: usize,
    /// Pause between two requests on one connection, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub interval_ms: u64,
    /// Largest number of connections being opened at the same moment.
    #[arg(long, default_value_t = 256)]
    pub connect_burst: usize,
    /// Local addresses to bind, spread round-robin (beyond 64k ports per address).
    #[arg(long, value_delimiter = ',')]
    pub source: Vec<IpAddr>,
    /// Expected sha256 of every body (hex).
    #[arg(long)]
    sha256: Option<String>,
    /// Give up on the whole run after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// Write the summary as JSON to this file too.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Read at most this many body bytes per second on each connection
    /// (token bucket), so that downloads last; 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// SO_RCVBUF of every socket, bytes (0 = kernel default). A small buffer
    /// keeps a rate-limited reader from hiding a stall behind buffered data.
    #[arg(long, default_value_t = 0)]
    pub rcvbuf: usize,
    /// Once every connection is established (or failed), run this many more
    /// seconds and stop; connections still busy then are counted as cut, not
    /// failed. With it, --requests is a maximum.
    #[arg(long)]
    pub hold_secs: Option<f64>,
    /// Write the receive timeline (JSON) to this file.
    #[arg(long)]
    pub timeline: Option<std::path::PathBuf>,
    /// When this file appears, note the moment as the mark (a box was killed).
    #[arg(long)]
    pub mark_file: Option<std::path::PathBuf>,
    /// For https:// URLs: the CA certificate (PEM) to trust, e.g. the lab's
    /// /run/baton-lab/PREFIX/ca.pem. No other root is trusted.
    #[arg(long)]
    pub cacert: Option<std::path::PathBuf>,
    /// For https:// URLs: offer only this TLS version (1.2 or 1.3).
    #[arg(long)]
    pub tls_version: Option<String>,
    /// For https:// URLs: the name to send in SNI and to check the
    /// certificate against (default: the URL's address), e.g.
    /// lab.baton.test to compare servers on other addresses with one
    /// certificate.
    #[arg(long)]
    pub server_name: Option<String>,
    /// Rounds mode: after the connections are open and answered
    /// once (`READY` on stdout), this many rounds, each started by a line on
    /// stdin: one request on every connection, a `ROUND` line of results.
    #[arg(long)]
    pub rounds: Option<u32>,
    /// Rounds mode: a round's requests are sent evenly over this many ms.
    #[arg(long, default_value_t = 0)]
    pub spread_ms: u64,
}

/// Runs the load `args` describes; the exit code says whether every
/// request succeeded.
pub fn run(args: LoadArgs) -> Result<()> {
    let (target, path, https) = parse_url(&args.url)?;
    let tls_config = match (https, &args.cacert) {
        (true, Some(ca)) => Some((
            tls::client_config(ca, args.tls_version.as_deref())?,
            tls::server_name(args.server_name.as_deref(), target.ip())?,
        )),
        (true, None) => anyhow::bail!("{}: an https:// URL needs --cacert", args.url),
        (false, _) if args.tls_version.is_some() || args.server_name.is_some() => {
            anyhow::bail!("--tls-version and --server-name need an https:// URL")
        }
        (false, _) => None,
    };
    // RFC 9110 §7.2: an IPv6 literal in Host is bracketed.
    let host = match target.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: baton-load\r\n\r\n");
    if let Some(rounds) = args.rounds {
        if tls_config.is_some()
            || args.rate > 0
            || args.hold_secs.is_some()
            || args.mark_file.is_some()
            || args.timeline.is_some()
            || args.json.is_some()
            || args.sha256.is_some()
        {
            anyhow::bail!(
                "--rounds runs plain http:// keep-alive rounds: it takes none of --rate, --hold-secs, --mark-file, --timeline, --json, --sha256"
            );
        }
        let all_answered = rounds::run(&rounds::RoundsPlan {
            target,
            request: request.into_bytes(),
            connections: args.connections,
            rounds,
            spread: Duration::from_millis(args.spread_ms),
            sources: args.source.clone(),
            connect_burst: args.connect_burst,
        })?;
        if !all_answered {
            std::process::exit(1);
        }
        return Ok(());
    }
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
            let opened_conn = connect(target, source, args.rcvbuf, &mut ports).and_then(|s| {
                let tls = match &tls_config {
                    Some((c, name)) => Some(Box::new(tls::connect(c, name.clone())?)),
                    None => None,
                };
                Ok((s, tls))
            });
            match opened_conn {
                Ok((mut stream, tls)) => {
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
                            tls,
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
