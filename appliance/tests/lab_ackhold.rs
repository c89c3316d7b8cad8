//! Bytes a client sends just before (or while) its box dies (issue 13):
//! requests and FINs are acknowledged only once a checkpoint covers them,
//! so a survivor that finds the client beyond its checkpoint knows those
//! bytes are still in the client's send queue and waits for them instead
//! of resetting. Real kernel TCP in the lab's client namespace (a Python
//! client holding keep-alive connections), box 1 of three killed with
//! SIGKILL, then box 2 (which took over some of them), and what a user
//! would check: every answer byte-exact, no RST
//! from a service address on the wire (a capture that proves it saw the
//! connections' FINs), and the survivors' takeover report saying the
//! connections were restored and became ready, none "not ready".
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// Connections per kind; three kinds (see `CLIENT`).
const PER_KIND: usize = 8;

/// The client. Every connection first gets `/1K.bin` and stays open
/// (keep-alive). Then, by kind (`i % 3`):
/// - 0: half of its next request (`GET /1M.bin … Ho`) goes out before the
///   kill: box 1 has the bytes and must not have acknowledged them; the
///   rest follows after the kill;
/// - 1: idle until the kill, then the whole next request at once, to a
///   box that is gone;
/// - 2: the whole next request, its answer read slowly, and after its
///   first 64 KiB the client's FIN (`shutdown(SHUT_WR)`), before the
///   kill: box 1 must acknowledge that FIN only with a checkpoint that
///   holds it, so the kill falls into a half-closed connection.
///
/// It prints `READY` once every pre-kill byte is out, waits for `GO` on
/// stdin (the test kills box 1 in between); once kinds 0 and 1 have their
/// answer it prints `READY2` and waits for `GO2` (the test kills box 2,
/// which holds some of them now), then kinds 0 and 1 ask for `/1K.bin`
/// again. It prints one line a connection: `ok KIND FIRST_SHA SECOND_SHA
/// SECONDS` or `err KIND WHAT`.
const CLIENT: &str = r#"
import hashlib, socket, sys, threading, time
N = int(sys.argv[1]); HOST = "198.18.0.11"
def read_response(s, slow=False, after=None):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d: raise EOFError("eof in head after %d bytes" % len(buf))
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    status = head.split(b"\r\n")[0]
    if b" 200 " not in status + b" ": raise ValueError(status.decode())
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(body) < n:
        d = s.recv(16384)
        if not d: raise EOFError("eof in body at %d of %d" % (len(body), n))
        body += d
        if after and len(body) >= 65536: after(); after = None
        if slow: time.sleep(0.05)
    return hashlib.sha256(body[:n]).hexdigest()
socks = []
for i in range(3 * N):
    s = socket.socket()
    if i % 3 == 2:
        # A small window, so that the answer is still flowing at the kill.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.settimeout(60); s.connect((HOST, 80))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    socks.append(s)
first = []
for s in socks:
    s.sendall(b"GET /1K.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    first.append(read_response(s))
results = [None] * len(socks); go = threading.Event(); t0 = [0.0]
fins = threading.Semaphore(0); answered = threading.Semaphore(0); go2 = threading.Event()
def run(i, s):
    kind = i % 3
    try:
        if kind == 2:
            s.sendall(b"GET /1M.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            def fin():
                s.shutdown(socket.SHUT_WR); fins.release()
            sha = read_response(s, slow=True, after=fin)
            if s.recv(1): raise ValueError("bytes after the answer")
        else:
            if kind == 0:
                s.sendall(b"GET /1M.bin HTTP/1.1\r\nHo")
            go.wait()
            s.sendall((b"st: x\r\n\r\n") if kind == 0 else b"GET /1M.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            sha = read_response(s)
            took = time.time() - t0[0]
            answered.release(); go2.wait()
            s.sendall(b"GET /1K.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            if read_response(s) != first[i]: raise ValueError("third answer differs")
        results[i] = "ok %d %s %s %.2f" % (kind, first[i], sha, took if kind != 2 else time.time() - t0[0])
    except Exception as e:
        results[i] = "err %d %r" % (kind, e)
    finally:
        s.close()
threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(socks)]
for t in threads: t.start()
for _ in range(N): fins.acquire(timeout=20)
time.sleep(0.1)
print("READY", flush=True)
sys.stdin.readline(); t0[0] = time.time(); go.set()
for _ in range(2 * N): answered.acquire(timeout=30)
print("READY2", flush=True)
sys.stdin.readline(); go2.set()
for t in threads: t.join()
for r in results: print(r, flush=True)
"#;

/// Sums `key=N` over the survivors' final takeover reports.
fn takeover_total(g: &LabGuard, key: &str) -> u64 {
    takeover_field(g, &[2, 3], key)
}

#[test]
fn lab_requests_and_fins_sent_as_their_box_dies_are_answered_without_a_reset() {
    let g = LabGuard::up("btah1", &["--boxes", "3"]);
    // Every box has the objects: the test is about the takeover.
    for n in 1..=3 {
        download_identical(&g, n, "1K.bin");
        download_identical(&g, n, "1M.bin");
    }
    // Every RST from a service address, and the client's FINs (proof that
    // the capture saw these connections).
    let capture = Capture::start(
        &g,
        "ackhold.pcap",
        "((tcp[tcpflags] & tcp-rst) != 0 and not src host 198.18.0.100) \
         or ((tcp[tcpflags] & tcp-fin) != 0 and src host 198.18.0.100)",
    );
    let mut client = Command::new("ip")
        .args([
            "netns",
            "exec",
            "btah1-client",
            "timeout",
            "90",
            "python3",
            "-c",
        ])
        .arg(CLIENT)
        .arg(PER_KIND.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 in the client namespace");
    let mut out = BufReader::new(client.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("client output");
    assert_eq!(line.trim(), "READY", "the client did not get ready: {line}");
    // Box 1 takes the half requests and the FINs (its reading of them is a
    // matter of microseconds on the lab's links).
    sleep(Duration::from_millis(200));
    let killed = Instant::now();
    ok(g.lab(&["kill", "box1"]));
    let mut stdin = client.stdin.take().expect("stdin");
    stdin.write_all(b"GO\n").expect("tell the client");
    // A second death: box 2 took over some of these connections (its
    // checkpoints of them must let box 3 go on in turn).
    line.clear();
    out.read_line(&mut line).expect("client output");
    assert_eq!(
        line.trim(),
        "READY2",
        "the client's answers did not come: {line}"
    );
    ok(g.lab(&["kill", "box2"]));
    sleep(Duration::from_millis(300));
    stdin.write_all(b"GO2\n").expect("tell the client");
    drop(stdin);
    let rest: Vec<String> = out.lines().map_while(Result::ok).collect();
    let status = client.wait().expect("python3");
    let answered = killed.elapsed();
    let lines = capture.finish(Duration::from_millis(300));

    let want_1k = g.listed_sha("1K.bin");
    let want_1m = g.listed_sha("1M.bin");
    let mut failures = Vec::new();
    let mut seconds = Vec::new();
    for r in &rest {
        let f: Vec<&str> = r.split_whitespace().collect();
        match f.as_slice() {
            ["ok", kind, a, b, s] if *a == want_1k && *b == want_1m => {
                seconds.push((s.parse::<f64>().unwrap_or(f64::NAN), kind.to_string()))
            }
            _ => failures.push(r.clone()),
        }
    }
    assert!(
        status.success() && failures.is_empty() && rest.len() == 3 * PER_KIND,
        "{} of {} connections failed (client {status}):\n{}",
        failures.len(),
        3 * PER_KIND,
        failures.join("\n")
    );
    let resets: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains(" 198.18.0.100."))
        .collect();
    let fins = lines.len() - resets.len();
    assert!(
        resets.is_empty(),
        "RSTs reached the client:\n{}",
        resets
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        fins >= 3 * PER_KIND,
        "the capture saw {fins} client FINs for {} connections: it did not work",
        3 * PER_KIND
    );
    // The survivors' own counters: these connections were taken over
    // (restored, then ready), none given up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while takeover_total(&g, "ready") < 3 * PER_KIND as u64 && Instant::now() < deadline {
        sleep(Duration::from_millis(200));
    }
    let (restored, ready, not_ready) = (
        takeover_total(&g, "restored"),
        takeover_total(&g, "ready"),
        takeover_total(&g, "not_ready"),
    );
    assert!(
        ready >= 3 * PER_KIND as u64 && not_ready == 0,
        "survivors report restored={restored} ready={ready} not_ready={not_ready}"
    );
    seconds.sort_by(|a, b| a.0.total_cmp(&b.0));
    eprintln!(
        "{} connections answered within {answered:?} of the kill; seconds from GO (kind): {seconds:?}; \
         restored={restored} ready={ready}",
        rest.len(),
    );
}
