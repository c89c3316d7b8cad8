//! Sessions over the Linux kernel's TCP on loopback.

use super::*;

// ---- over kernel TCP on loopback ----

/// A minimal std::net transport for the [`HttpWorker`] driver: the same
/// driver the dataplane glue uses, over nonblocking kernel sockets, in one
/// thread standing in for a worker.
pub(super) struct StdConn {
    stream: std::net::TcpStream,
    seq: u32,
    eof: bool,
    eof_told: bool,
    closed: bool,
}

#[derive(Default)]
pub(super) struct StdTransport {
    conns: HashMap<u64, StdConn>,
    checkpoints: usize,
}

impl Transport for StdTransport {
    type Conn = u64;

    fn recv(&mut self, conn: u64, buf: &mut [u8]) -> usize {
        use std::io::Read;
        let Some(c) = self.conns.get_mut(&conn) else {
            return 0;
        };
        match c.stream.read(buf) {
            Ok(0) => {
                c.eof = true;
                0
            }
            Ok(n) => n,
            Err(_) => 0,
        }
    }

    fn send_capacity(&self, conn: u64) -> usize {
        match self.conns.get(&conn) {
            Some(c) if !c.closed => 256 * 1024,
            _ => 0,
        }
    }

    fn send(&mut self, conn: u64, data: bytes::Bytes) -> Option<u32> {
        use std::io::Write;
        let c = self.conns.get_mut(&conn)?;
        let mut rest = &data[..];
        while !rest.is_empty() {
            match c.stream.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                Err(_) => return None,
            }
        }
        let seq = c.seq;
        c.seq = c.seq.wrapping_add(data.len() as u32);
        Some(seq)
    }

    fn close(&mut self, conn: u64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            let _ = c.stream.shutdown(std::net::Shutdown::Write);
            c.closed = true;
        }
    }

    fn abort(&mut self, conn: u64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
            c.closed = true;
        }
    }

    fn checkpoint(&mut self, _conn: u64, _cp: &ResponseCheckpoint) {
        self.checkpoints += 1;
    }
}

/// Stops the loopback server when dropped.
pub(super) struct Server {
    addr: std::net::SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

pub(super) fn serve_loopback(cache: Arc<Cache>) -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut worker: HttpWorker<u64> =
            HttpWorker::new(cache, 0, Arc::new(NoWake), Limits::default(), 1000);
        let mut t = StdTransport::default();
        let mut next_id = 0u64;
        while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
            let now = Instant::now();
            while let Ok((stream, _)) = listener.accept() {
                stream.set_nonblocking(true).unwrap();
                next_id += 1;
                t.conns.insert(
                    next_id,
                    StdConn {
                        stream,
                        seq: 1,
                        eof: false,
                        eof_told: false,
                        closed: false,
                    },
                );
                worker.on_accept(next_id, &mut t, now);
            }
            let ids: Vec<u64> = t.conns.keys().copied().collect();
            for id in ids {
                worker.on_readable(id, &mut t, now);
                let c = &t.conns[&id];
                if c.eof && !c.eof_told {
                    t.conns.get_mut(&id).unwrap().eof_told = true;
                    worker.on_peer_closed(id, &mut t, now);
                }
                let c = &t.conns[&id];
                if c.eof && c.closed {
                    t.conns.remove(&id);
                    worker.on_closed(id);
                }
            }
            worker.poll(&mut t, now);
            std::thread::sleep(Duration::from_micros(500));
        }
    });
    Server { addr, stop }
}

pub(super) fn curl(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl must be installed for the loopback tests");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn curl_posts_and_puts_over_loopback_through_the_worker() {
    // The worker driver over kernel sockets: no sequence numbers, no
    // checkpoints; 100-continue from curl for the 2 MB body.
    let h = Harness::new();
    let server = serve_loopback(Arc::clone(&h.cache));
    let body = pattern(2_000_000);
    let file = std::env::temp_dir().join(format!("baton-upload-{}.bin", std::process::id()));
    std::fs::write(&file, &body).unwrap();
    let data = format!("@{}", file.display());
    let url = format!("http://{}/up", server.addr);
    let out = curl(&["--data-binary", &data, "-w", " %{http_code}", &url]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{} 201", upload_answer(&body, 1))
    );
    let out = curl(&[
        "-T",
        &file.display().to_string(),
        "-w",
        " %{http_code}",
        &url,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{} 201", upload_answer(&body, 2))
    );
    let ups = h.origin.uploads();
    assert_eq!(ups.len(), 2);
    assert!(ups[0].0 == "POST /up" && ups[1].0 == "PUT /up");
    assert!(
        ups[0].1 == body && ups[1].1 == body,
        "the origin got other bytes"
    );
    let _ = std::fs::remove_file(file);
}

#[test]
fn curl_over_loopback_gets_identical_bytes_ranges_and_304() {
    let h = Harness::new();
    let body = pattern(3_000_000);
    h.store.put("/3M.bin", body.clone());
    let server = serve_loopback(Arc::clone(&h.cache));
    let url = format!("http://{}/3M.bin", server.addr);
    // Two downloads on one keep-alive connection: a miss, then a hit.
    let out = curl(&[&url, "-o", "/dev/stdout", &url, "-o", "/dev/stdout"]);
    assert_eq!(out.stdout.len(), 2 * body.len());
    assert!(out.stdout[..body.len()] == body[..] && out.stdout[body.len()..] == body[..]);
    let r = curl(&["-r", "1000-1999", &url]);
    assert_eq!(r.stdout, &body[1000..2000]);
    let code = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "If-None-Match: \"v1\"",
        &url,
    ]);
    assert_eq!(String::from_utf8_lossy(&code.stdout), "304");
    let head = curl(&["-I", &url]);
    let text = String::from_utf8_lossy(&head.stdout);
    assert!(text.contains("Content-Length: 3000000"), "{text}");
    assert_eq!(h.origin.requests_for("/3M.bin"), 1);
}

#[test]
fn many_keep_alive_requests_over_loopback_all_succeed() {
    use std::io::{Read, Write};
    let h = Harness::new();
    h.store.put("/1K.bin", pattern(1024));
    let server = serve_loopback(Arc::clone(&h.cache));
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut all = Vec::new();
    let n = 500;
    // Pipelined in batches of 10, as ab -k or wrk would keep the line busy.
    let mut buf = vec![0u8; 65536];
    for batch in 1..=n / 10 {
        let reqs: String = (0..10).map(|_| get("/1K.bin")).collect();
        s.write_all(reqs.as_bytes()).unwrap();
        while responses_complete(&all) < batch * 10 {
            let k = s.read(&mut buf).unwrap();
            assert!(k > 0, "server closed");
            all.extend_from_slice(&buf[..k]);
        }
    }
    let r = responses(&all, &[]);
    assert_eq!(r.len(), n);
    assert!(r.iter().all(|r| r.status == 200 && r.body == pattern(1024)));
}

/// How many complete 1K responses the stream holds.
pub(super) fn responses_complete(all: &[u8]) -> usize {
    let mut count = 0;
    let mut rest = all;
    loop {
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            return count;
        };
        if rest.len() < end + 4 + 1024 {
            return count;
        }
        rest = &rest[end + 4 + 1024..];
        count += 1;
    }
}

#[test]
fn garbage_over_loopback_gets_400_and_other_clients_are_still_served() {
    use std::io::{Read, Write};
    let h = Harness::new();
    h.store.put("/1K.bin", pattern(1024));
    let server = serve_loopback(Arc::clone(&h.cache));
    for (req, status) in [
        (
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".to_vec(),
            "400",
        ),
        (
            format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000)).into_bytes(),
            "414",
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
                "c".repeat(20_000)
            )
            .into_bytes(),
            "431",
        ),
    ] {
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&req).unwrap();
        let mut answer = Vec::new();
        // The box answers, then closes: read to EOF.
        let _ = s.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
    }
    let url = format!("http://{}/1K.bin", server.addr);
    assert_eq!(curl(&[&url]).stdout, pattern(1024));
}

#[test]
fn origin_down_over_loopback_gives_502_and_the_box_keeps_serving() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (cache, _pool) = Cache::start(
        CacheSettings {
            memory_bytes: 1 << 20,
            disk_dir: None,
            max_fetches: 64,
        },
        Origin::new(closed_port, Duration::from_secs(1)),
        1,
    )
    .unwrap();
    let server = serve_loopback(cache);
    let url = format!("http://{}/1K.bin", server.addr);
    for _ in 0..3 {
        let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &url]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "502");
    }
}

#[test]
fn parallel_curl_downloads_of_one_slow_object_make_one_origin_request() {
    let h = Harness::new();
    let body = pattern(1_500_000);
    h.store.put("/slow.bin", body.clone());
    h.origin.set_fault("/slow.bin", Fault::Hold(100_000));
    let server = serve_loopback(Arc::clone(&h.cache));
    let url = format!("http://{}/slow.bin", server.addr);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || curl(&[&url]).stdout)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    h.origin.release();
    for c in clients {
        assert!(
            c.join().unwrap() == body,
            "every client gets the whole object"
        );
    }
    assert_eq!(h.origin.requests_for("/slow.bin"), 1);
}

/// A transport that records what the driver does, for timer tests.
#[derive(Default)]
pub(super) struct Recorder {
    closed: Vec<u8>,
    pub(super) sent: Vec<u8>,
}

impl Transport for Recorder {
    type Conn = u8;
    fn recv(&mut self, _: u8, _: &mut [u8]) -> usize {
        0
    }
    fn send_capacity(&self, _: u8) -> usize {
        1 << 20
    }
    fn send(&mut self, _: u8, data: bytes::Bytes) -> Option<u32> {
        self.sent.extend_from_slice(&data);
        Some(0)
    }
    fn close(&mut self, conn: u8) {
        self.closed.push(conn);
    }
    fn abort(&mut self, _: u8) {}
}

#[test]
fn worker_closes_idle_connections_when_their_timer_is_due() {
    let h = Harness::new();
    let limits = Limits {
        idle_timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let mut w: HttpWorker<u8> =
        HttpWorker::new(Arc::clone(&h.cache), 0, Arc::new(NoWake), limits, 10);
    let mut t = Recorder::default();
    let t0 = Instant::now();
    w.on_accept(1, &mut t, t0);
    w.on_accept(2, &mut t, t0 + Duration::from_millis(60));
    w.poll(&mut t, t0 + Duration::from_millis(99));
    assert!(t.closed.is_empty());
    // The worker's timer wheel fires up to one 1-ms tick late, never early.
    w.poll(&mut t, t0 + Duration::from_millis(101));
    assert_eq!(t.closed, [1]);
    w.poll(&mut t, t0 + Duration::from_millis(200));
    assert_eq!(t.closed, [1, 2]);
    assert!(t.sent.is_empty(), "an idle close says nothing");
    assert_eq!(w.context().counters.snapshot().idle_timeouts, 2);
}

#[test]
fn object_of_unknown_length_is_sent_close_delimited_then_with_a_length_once_stored() {
    let h = Harness::new();
    h.store.put("/c", pattern(30_000));
    h.origin.set_fault("/c", Fault::Chunked(4096));
    let mut c = h.conn();
    c.send(&get("/c"));
    // The head goes out while the origin still holds the rest back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.out.is_empty() {
        c.drain(1 << 16);
        assert!(Instant::now() < deadline, "no head");
        let _ = c.rx.recv_timeout(Duration::from_millis(20));
    }
    h.origin.release();
    c.run();
    let r = responses(&c.out, &[]);
    assert!(r[0].body == pattern(30_000), "body differs");
    assert_eq!(
        r[0].h("connection"),
        Some("close"),
        "the end of the body is the close"
    );
    assert!(r[0].h("content-length").is_none());
    assert_eq!(c.s.should_close(), Some(Close::Graceful));

    let mut again = h.conn();
    again.send(&get_with("/c", "Range: bytes=-100"));
    again.run();
    let r = responses(&again.out, &[]);
    assert_eq!(r[0].status, 206);
    assert_eq!(r[0].h("content-range"), Some("bytes 29900-29999/30000"));
    assert_eq!(again.s.should_close(), None, "known length: keep-alive");
}

/// nginx serving a folder on 127.0.0.1, stopped (by its pid) when dropped.
pub(super) struct Nginx {
    child: std::process::Child,
    dir: std::path::PathBuf,
    addr: std::net::SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: nginx's master then stops its worker before
        // exiting, where a killed master would leave the worker orphaned.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the pid of a child we spawned and have not
            // reaped yet; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) fn start_nginx(files: &[(&str, &[u8])]) -> Nginx {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("baton-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    for d in [&dir, &dir.join("www")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for (name, data) in files {
        std::fs::write(dir.join("www").join(name), data).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = format!(
        "worker_processes 1;\nerror_log {d}/logs/error.log;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off;\n\
         client_body_temp_path {d}/cb; proxy_temp_path {d}/pt; fastcgi_temp_path {d}/ft;\n\
         uwsgi_temp_path {d}/ut; scgi_temp_path {d}/st;\n\
         server {{ listen 127.0.0.1:{port}; root {d}/www; }} }}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = std::process::Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx must be installed for the nginx-origin test");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let n = Nginx { child, dir, addr };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    n
}

#[test]
fn nginx_as_origin_fills_the_cache_and_a_resume_uses_range_with_if_range() {
    let body = pattern(1_000_000);
    let nginx = start_nginx(&[("1M.bin", &body)]);
    let (cache, _pool) = Cache::start(
        CacheSettings {
            memory_bytes: 8 << 20,
            disk_dir: None,
            max_fetches: 64,
        },
        Origin::new(nginx.addr, Duration::from_secs(5)),
        1,
    )
    .unwrap();
    let (ctx, rx) = worker_for(&cache, Limits::default());
    let mut c = Conn::new(HttpSession::new(ctx, Instant::now()), rx);
    c.send(&get("/1M.bin"));
    c.run();
    let r = responses(&c.out, &[]);
    assert_eq!(r[0].status, 200);
    assert!(r[0].body == body);
    let etag = r[0].h("etag").expect("nginx sends an ETag").to_string();
    assert!(r[0].h("last-modified").is_some());
    let cp = c.cps[0].clone();
    assert_eq!(cp.etag.as_deref(), Some(etag.as_str()));

    // A survivor without the object: nginx answers the Range + If-Range.
    assert!(cache.purge("/1M.bin"));
    let (ctx, rx) = worker_for(&cache, Limits::default());
    let acked = cp.object_start_seq.0.wrapping_add(654_321);
    let mut r = Conn::new(
        HttpSession::resume(ctx, &cp, SeqNum(acked), None, Instant::now()),
        rx,
    );
    r.run();
    assert!(r.out == body[654_321..], "resumed bytes differ");
    assert_eq!(r.s.should_close(), None);
}

#[test]
fn slow_request_clock_does_not_run_while_answers_are_owed() {
    let h = Harness::new();
    h.store.put("/big", pattern(1_000_000));
    let limits = Limits {
        request_timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let mut c = h.conn_with(limits);
    let t0 = Instant::now();
    // A download and, pipelined behind it, half of the next request.
    c.s.on_bytes(format!("{}GET /big HT", get("/big")).as_bytes(), t0);
    assert_eq!(c.s.poll_timeout(), None, "busy answering");
    c.s.on_timeout(t0 + Duration::from_secs(5));
    c.run();
    let r = responses(&c.out, &[]);
    assert_eq!(
        (r.len(), r[0].status),
        (1, 200),
        "no 408 for a busy connection"
    );
    let due = c.s.poll_timeout().expect("now the head is awaited");
    assert!(due > t0 + Duration::from_millis(100));
}

#[test]
fn app_block_carries_the_body_bytes_sent_so_far() {
    let h = Harness::new();
    h.store.put("/a", pattern(10_000));
    let mut warm = h.conn();
    warm.send(&get("/a"));
    warm.run();

    let mut c = h.conn();
    assert!(c.s.app_block().is_none(), "no response yet");
    c.send(&get("/a"));
    let head =
        c.s.poll_send(100_000, Instant::now())
            .expect("head of a hit");
    assert!(head.ends_with(b"\r\n\r\n"));
    c.s.on_sent(SeqNum(500));
    let body = c.s.poll_send(1000, Instant::now()).expect("body");
    c.s.on_sent(SeqNum(500 + head.len() as u32));
    assert_eq!(body.len(), 1000);
    let b = c.s.app_block().expect("a 200 is rebuildable");
    assert_eq!((b.bytes_sent, b.name), (1000, "/a"));
    assert_eq!(b.object_start_seq, 500 + head.len() as u32);
    // Finished, the block still describes the last response in full.
    c.drain(1 << 20);
    assert_eq!(c.s.app_block().unwrap().bytes_sent, 10_000);
}
