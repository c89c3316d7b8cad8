//! `baton-rtp`'s RTSP players, as a library the binary calls: [`run`] sets
//! up N UDP RTP streams of one object (SETUP `client_port=…`, PLAY over one
//! TCP connection each), receives every stream's datagrams on one mio poll
//! with kernel receive timestamps (`SO_TIMESTAMPNS`) and the socket's own
//! drop count (`SO_RXQ_OVFL`), then TEARDOWNs and writes per-stream figures
//! ([`crate::harness::rtp`]) as JSON. One process for all players: ffmpeg
//! per stream would spend the two cores the boxes need. It must not know
//! the lab or what a suite concludes.
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use serde::{Deserialize, Serialize};

use crate::harness::rtp::{parse_header, StreamStats, StreamTracker};
use crate::load::net::{recv_with_stamp, set_socket_options, Received};

/// Command line of `baton-rtp`.
#[derive(clap::Parser, Debug)]
#[command(
    name = "baton-rtp",
    about = "RTSP/RTP-over-UDP players for the Baton lab"
)]
pub struct PlayerArgs {
    /// The RTSP server's address (IPv4: UDP transport is IPv4's only).
    #[arg(long, default_value = "198.18.0.11")]
    pub server: Ipv4Addr,
    /// Its RTSP port.
    #[arg(long, default_value_t = 554)]
    pub port: u16,
    /// The object to play.
    #[arg(long, default_value = "clip.ts")]
    pub path: String,
    /// Streams to play at once.
    #[arg(long, default_value_t = 1)]
    pub players: usize,
    /// How long to receive once every stream is playing, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// The first player's RTP port (RTCP is +1; the next player +2).
    #[arg(long, default_value_t = 20_000)]
    pub port_base: u16,
    /// Where to write the report (JSON).
    #[arg(long)]
    pub json: std::path::PathBuf,
}

/// One player's outcome.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PlayerReport {
    /// SETUP and PLAY answered 200.
    pub playing: bool,
    /// What went wrong setting up, if anything.
    pub error: Option<String>,
    /// TEARDOWN answered 200.
    pub teardown_ok: bool,
    /// Datagrams the client's socket dropped (full receive buffer): loss
    /// that is the receiver's, not the server's. Each datagram carries the
    /// count before it was queued, so drops after the last one go unseen.
    pub socket_drops: u32,
    /// The stream as received.
    pub stream: StreamStats,
}

/// The whole run.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PlayersReport {
    /// Unix µs when the last PLAY was answered (the window's start).
    pub all_playing_at_us: u64,
    /// Length of the receive window, s.
    pub window_s: f64,
    /// This process's CPU time (user + system) over the window, s.
    pub cpu_s: f64,
    /// Per player, in order.
    pub players: Vec<PlayerReport>,
}

struct Player {
    rtp: UdpSocket,
    _rtcp: UdpSocket,
    ctl: Option<Control>,
    tracker: StreamTracker,
    report: PlayerReport,
}

struct Control {
    reader: BufReader<TcpStream>,
    session: String,
    cseq: u32,
}

/// Runs the players and writes the report; fails only when nothing could
/// be measured (no player got to PLAY).
pub fn run(args: &PlayerArgs) -> Result<()> {
    // Three descriptors a player (RTP, RTCP, the RTSP connection).
    crate::load::net::raise_fd_limit(3 * args.players as u64 + 64);
    let mut poll = Poll::new()?;
    let mut players = Vec::with_capacity(args.players);
    for i in 0..args.players {
        let port = u16::try_from(usize::from(args.port_base) + 2 * i)
            .ok()
            .filter(|p| *p < u16::MAX)
            .context("--port-base too high for that many players")?;
        let mut rtp = udp_socket(port)?;
        let rtcp = udp_socket(port + 1)?;
        poll.registry()
            .register(&mut rtp, Token(i), Interest::READABLE)?;
        let url = format!("rtsp://{}:{}/{}", args.server, args.port, args.path);
        let mut report = PlayerReport::default();
        let ctl = match start(args, &url, port) {
            Ok(c) => {
                report.playing = true;
                Some(c)
            }
            Err(e) => {
                report.error = Some(format!("{e:#}"));
                None
            }
        };
        players.push(Player {
            rtp,
            _rtcp: rtcp,
            ctl,
            tracker: StreamTracker::default(),
            report,
        });
    }
    if !players.iter().any(|p| p.report.playing) {
        bail!(
            "no player got to PLAY: {}",
            players
                .first()
                .and_then(|p| p.report.error.clone())
                .unwrap_or_default()
        );
    }
    let mut out = PlayersReport {
        all_playing_at_us: unix_us(),
        window_s: args.seconds,
        ..Default::default()
    };
    println!("ALL PLAYING");
    io::stdout().flush()?;
    let cpu0 = cpu_seconds();
    receive(
        &mut poll,
        &mut players,
        Duration::from_secs_f64(args.seconds),
    )?;
    out.cpu_s = cpu_seconds() - cpu0;
    for p in &mut players {
        if let Some(ctl) = p.ctl.as_mut() {
            let url = format!("rtsp://{}:{}/{}", args.server, args.port, args.path);
            p.report.teardown_ok = teardown(ctl, &url).is_ok();
        }
        p.report.stream = p.tracker.stats();
    }
    out.players = players.into_iter().map(|p| p.report).collect();
    std::fs::write(&args.json, serde_json::to_string_pretty(&out)? + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    Ok(())
}

fn receive(poll: &mut Poll, players: &mut [Player], window: Duration) -> Result<()> {
    let end = Instant::now() + window;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 2048];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        match poll.poll(&mut events, Some(left)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        for ev in events.iter() {
            let Some(p) = players.get_mut(ev.token().0) else {
                continue;
            };
            // Edge-triggered: read until the socket is empty.
            loop {
                match recv_dgram(&p.rtp, &mut buf) {
                    Ok(d) => {
                        p.report.socket_drops = p.report.socket_drops.max(d.drops);
                        if let Some(h) = parse_header(&buf[..d.len]) {
                            let at = d.at_us.unwrap_or_else(unix_us);
                            p.tracker.push(h, d.len.saturating_sub(12), at);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // An ICMP error queued on the socket: not data; go on.
                    Err(_) => break,
                }
            }
        }
    }
}

/// SETUP (UDP to `port`/`port + 1`) and PLAY from the start.
fn start(args: &PlayerArgs, url: &str, port: u16) -> Result<Control> {
    let addr = SocketAddr::V4(SocketAddrV4::new(args.server, args.port));
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .with_context(|| format!("connecting to {addr}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_nodelay(true)?;
    let mut ctl = Control {
        reader: BufReader::new(tcp),
        session: String::new(),
        cseq: 0,
    };
    let setup = request(
        &mut ctl,
        "SETUP",
        &format!("{url}/trackID=0"),
        &format!(
            "Transport: RTP/AVP;unicast;client_port={port}-{}\r\n",
            port + 1
        ),
    )?;
    let session = setup
        .header("session")
        .and_then(|s| s.split(';').next())
        .map(|s| s.trim().to_string())
        .context("SETUP answered without a Session")?;
    ctl.session = session;
    let play_headers = format!("Session: {}\r\nRange: npt=0-\r\n", ctl.session);
    request(&mut ctl, "PLAY", url, &play_headers)?;
    Ok(ctl)
}

fn teardown(ctl: &mut Control, url: &str) -> Result<()> {
    ctl.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(3)))?;
    let h = format!("Session: {}\r\n", ctl.session);
    request(ctl, "TEARDOWN", url, &h).map(|_| ())
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request and its answer; anything but 200 is an error.
fn request(ctl: &mut Control, method: &str, url: &str, headers: &str) -> Result<Answer> {
    ctl.cseq += 1;
    let req = format!(
        "{method} {url} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: baton-rtp\r\n{headers}\r\n",
        ctl.cseq
    );
    ctl.reader.get_mut().write_all(req.as_bytes())?;
    let answer = read_answer(&mut ctl.reader).with_context(|| format!("{method}: no answer"))?;
    if answer.status != 200 {
        bail!("{method} answered {}", answer.status);
    }
    Ok(answer)
}

fn read_answer(r: &mut impl BufRead) -> Result<Answer> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        bail!("connection closed");
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            bail!("connection closed in the headers");
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let answer = Answer { status, headers };
    let len: usize = answer
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(answer)
}

fn udp_socket(port: u16) -> Result<UdpSocket> {
    let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))
        .with_context(|| format!("binding UDP port {port}"))?;
    s.set_nonblocking(true)?;
    set_socket_options(
        s.as_raw_fd(),
        &[
            (libc::SO_TIMESTAMPNS, 1),
            (libc::SO_RXQ_OVFL, 1),
            // Half a second of a stream and more: a receiver scheduled out
            // for a while must not be what loses packets.
            (libc::SO_RCVBUF, 1 << 20),
        ],
    )
    .context("setsockopt")?;
    Ok(UdpSocket::from_std(s))
}

/// recvmsg(2) of one datagram with its kernel receive time and the
/// socket's drop count so far.
fn recv_dgram(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    recv_with_stamp(sock.as_raw_fd(), buf)
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// This process's user + system CPU time, s.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_receive_buffer_is_reported_as_socket_drops() {
        // Loopback, a socket whose buffer holds a few datagrams, 200 sent
        // before any is read: the kernel drops the rest and says so.
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        set_socket_options(
            rx.as_raw_fd(),
            &[
                (libc::SO_RXQ_OVFL, 1),
                (libc::SO_TIMESTAMPNS, 1),
                (libc::SO_RCVBUF, 4096),
            ],
        )
        .unwrap();
        rx.set_nonblocking(true).unwrap();
        let to = rx.local_addr().unwrap();
        let rx = UdpSocket::from_std(rx);
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..200 {
            tx.send_to(&[0x80; 1300], to).unwrap();
        }
        let (mut got, mut drops, mut stamped) = (0u32, 0u32, 0);
        let mut buf = [0u8; 2048];
        while let Ok(d) = recv_dgram(&rx, &mut buf) {
            got += 1;
            drops = drops.max(d.drops);
            stamped += usize::from(d.at_us.is_some());
            assert_eq!(d.len, 1300);
        }
        assert!(got > 0 && got < 200, "got {got}");
        // A datagram carries the drops before it was queued: those queued
        // before the overflow say 0, the next one says them all.
        assert_eq!(drops, 0);
        tx.send_to(&[0x80; 1300], to).unwrap();
        let d = recv_dgram(&rx, &mut buf).unwrap();
        assert_eq!(got + d.drops, 200, "got {got}, drops {}", d.drops);
        assert_eq!(stamped, got as usize);
        assert!(d.at_us.is_some());
    }

    #[test]
    fn reads_an_answer_and_skips_its_body() {
        let text = "RTSP/1.0 200 OK\r\nCSeq: 2\r\nSession: 1234abcd;timeout=60\r\nContent-Length: 5\r\n\r\nhelloRTSP/1.0 454 Session Not Found\r\nCSeq: 3\r\n\r\n";
        let mut r = BufReader::new(text.as_bytes());
        let a = read_answer(&mut r).unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.header("SESSION"), Some("1234abcd;timeout=60"));
        let b = read_answer(&mut r).unwrap();
        assert_eq!(b.status, 454);
        assert!(read_answer(&mut r).is_err(), "closed");
        assert!(read_answer(&mut BufReader::new("HTTP/1.1 x\r\n".as_bytes())).is_err());
    }
}
