//! One origin connection: reading pipelined request heads, uploads digested
//! and counted, files streamed from disk. What to answer is
//! [`plan`](crate::origin::plan)'s decision; this file only moves bytes.
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, info};

use crate::origin::plan::{plan, reason, resolve, Meta, Plan, Request};

/// The largest request head we accept; real clients send a few hundred
/// bytes.
const MAX_HEAD: usize = 16 * 1024;

/// How long an idle keep-alive connection is kept.
const IDLE: Duration = Duration::from_secs(120);

/// Uploads received per path.
pub(crate) type Uploads = Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>;

/// One client connection with its read buffer (requests may be
/// pipelined).
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// What reading a request head gave.
enum Head {
    Request(Request, usize),
    Closed,
    Bad(u16),
}

impl Conn {
    pub(crate) fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    fn read_head(&mut self) -> io::Result<Head> {
        loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let r = Request {
                            method: req.method.unwrap_or("").to_string(),
                            path: req.path.unwrap_or("").to_string(),
                            minor: req.version.unwrap_or(1),
                            headers: req
                                .headers
                                .iter()
                                .map(|h| {
                                    (
                                        h.name.to_string(),
                                        String::from_utf8_lossy(h.value).into_owned(),
                                    )
                                })
                                .collect(),
                        };
                        return Ok(Head::Request(r, n));
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() >= MAX_HEAD => {
                        return Ok(Head::Bad(431))
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::TooManyHeaders) => return Ok(Head::Bad(431)),
                    Err(_) => return Ok(Head::Bad(400)),
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(Head::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Drops `n` bytes of request body, from the buffer first.
    fn discard(&mut self, mut n: u64) -> io::Result<()> {
        let from_buf = (self.buf.len() as u64).min(n) as usize;
        self.buf.drain(..from_buf);
        n -= from_buf as u64;
        if n > 0 {
            let copied = io::copy(&mut (&self.stream).take(n), &mut io::sink())?;
            if copied < n {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(())
    }

    /// Reads an upload's body, digesting it; the answer's text.
    fn receive_upload(&mut self, req: &Request, len: u64, uploads: &Uploads) -> io::Result<String> {
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        let from_buf = (self.buf.len() as u64).min(len) as usize;
        digest.update(&self.buf[..from_buf]);
        self.buf.drain(..from_buf);
        let mut left = len - from_buf as u64;
        let mut chunk = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = (chunk.len() as u64).min(left) as usize;
            let n = self.stream.read(&mut chunk[..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            digest.update(&chunk[..n]);
            left -= n as u64;
        }
        let copies = {
            let mut u = uploads.lock().unwrap_or_else(|p| p.into_inner());
            let c = u.entry(req.path.clone()).or_insert(0);
            *c += 1;
            *c
        };
        let hex: String = digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        info!(
            "{} {}: {len} bytes, upload #{copies} of this path",
            req.method, req.path
        );
        Ok(format!("sha256={hex} bytes={len} copies={copies}\n"))
    }

    pub(crate) fn serve(mut self, root: &Path, uploads: &Uploads) -> io::Result<()> {
        self.stream.set_read_timeout(Some(IDLE))?;
        let _ = self.stream.set_nodelay(true);
        loop {
            let (req, used) = match self.read_head()? {
                Head::Closed => return Ok(()),
                Head::Bad(status) => {
                    let text = if status == 431 {
                        "request head too large\n"
                    } else {
                        "bad request\n"
                    };
                    self.send(&Plan::error(status, text), "GET", false, None)?;
                    return Ok(());
                }
                Head::Request(r, n) => (r, n),
            };
            self.buf.drain(..used);
            // Bodies are neither expected nor kept; chunked ones we cannot
            // skip safely, so they end the connection (RFC 9112 §6.3).
            if req.header("transfer-encoding").is_some() {
                self.send(
                    &Plan::error(400, "request bodies are not accepted\n"),
                    "GET",
                    false,
                    None,
                )?;
                return Ok(());
            }
            let body_len = match req
                .header("content-length")
                .map(|v| v.trim().parse::<u64>())
            {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    self.send(
                        &Plan::error(400, "bad Content-Length\n"),
                        "GET",
                        false,
                        None,
                    )?;
                    return Ok(());
                }
            };
            if req.method == "POST" || req.method == "PUT" {
                let text = self.receive_upload(&req, body_len, uploads)?;
                let keep = req.keep_alive();
                let head = format!(
                    "HTTP/1.1 201 Created\r\nDate: {}\r\nServer: baton-lab-origin\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
                    httpdate::fmt_http_date(SystemTime::now()),
                    text.len(),
                    if keep { "keep-alive" } else { "close" }
                );
                self.stream.write_all(head.as_bytes())?;
                self.stream.write_all(text.as_bytes())?;
                if !keep {
                    return Ok(());
                }
                continue;
            }
            self.discard(body_len)?;

            let file = resolve(root, &req.path).and_then(|p| {
                let f = File::open(&p).ok()?;
                let m = f.metadata().ok()?;
                if !m.is_file() {
                    return None;
                }
                Some((
                    f,
                    Meta {
                        len: m.len(),
                        mtime: m.modified().unwrap_or(UNIX_EPOCH),
                    },
                ))
            });
            let p = plan(&req, file.as_ref().map(|(_, m)| m));
            let keep = req.keep_alive();
            debug!("{} {} -> {}", req.method, req.path, p.status);
            self.send(&p, &req.method, keep, file.map(|(f, _)| f))?;
            if !keep {
                return Ok(());
            }
        }
    }

    fn send(&mut self, p: &Plan, method: &str, keep: bool, file: Option<File>) -> io::Result<()> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", p.status, reason(p.status));
        head.push_str(&format!(
            "Date: {}\r\nServer: baton-lab-origin\r\n",
            httpdate::fmt_http_date(SystemTime::now())
        ));
        for (n, v) in &p.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        let content_length = match (p.body, p.text) {
            (Some((_, len)), _) => Some(len),
            (None, Some(t)) => Some(t.len() as u64),
            // 304 carries no Content-Length (RFC 9110 §8.6).
            (None, None) => None,
        };
        if let Some(len) = content_length {
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str(if keep {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        self.stream.write_all(head.as_bytes())?;
        if method == "HEAD" {
            return Ok(());
        }
        if let Some(t) = p.text {
            self.stream.write_all(t.as_bytes())?;
        }
        if let (Some((start, len)), Some(mut f)) = (p.body, file) {
            f.seek(SeekFrom::Start(start))?;
            let sent = io::copy(&mut f.take(len), &mut self.stream)?;
            if sent < len {
                // The file shrank under us: the length we promised is a lie
                // now, so the connection must end (RFC 9112 §6.3).
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        self.stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, BufRead, Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};

    use crate::origin::serve_on;

    /// Starts the server on loopback over a folder with one 100 000-byte
    /// file; returns its address.
    fn start() -> (SocketAddr, Vec<u8>) {
        let dir = std::env::temp_dir().join(format!("baton-origin-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.join("obj.bin"), &data).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || serve_on(listener, dir));
        (addr, data)
    }

    /// Reads one response: status, headers (lowercased names), body.
    fn read_response(
        r: &mut io::BufReader<TcpStream>,
        head_only: bool,
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            let l = l.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').unwrap();
            headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0u8; if head_only { 0 } else { len }];
        r.read_exact(&mut body).unwrap();
        (status, headers, body)
    }

    #[test]
    fn keep_alive_connection_serves_range_then_head_then_404() {
        let (addr, data) = start();
        let s = TcpStream::connect(addr).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = io::BufReader::new(s);
        w.write_all(b"GET /obj.bin HTTP/1.1\r\nHost: o\r\nRange: bytes=1000-1999\r\n\r\n")
            .unwrap();
        let (st, h, body) = read_response(&mut r, false);
        assert_eq!(st, 206);
        assert_eq!(body, &data[1000..2000]);
        assert!(h
            .iter()
            .any(|(n, v)| n == "content-range" && v == "bytes 1000-1999/100000"));
        // Pipelined: both requests in one write.
        w.write_all(
            b"HEAD /obj.bin HTTP/1.1\r\nHost: o\r\n\r\nGET /nope HTTP/1.1\r\nHost: o\r\n\r\n",
        )
        .unwrap();
        let (st, h, _) = read_response(&mut r, true);
        assert_eq!(st, 200);
        assert!(h
            .iter()
            .any(|(n, v)| n == "content-length" && v == "100000"));
        let (st, _, _) = read_response(&mut r, false);
        assert_eq!(st, 404);
        w.write_all(b"GET /obj.bin HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (st, _, body) = read_response(&mut r, false);
        assert_eq!(st, 200);
        assert_eq!(body, data);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "server closes after Connection: close");
    }

    #[test]
    fn garbage_request_is_400_and_closed() {
        let (addr, _) = start();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"\x01\x02 nonsense\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    }

    #[test]
    fn uploads_are_answered_with_their_digest_and_counted_per_path() {
        let (addr, _) = start();
        let s = TcpStream::connect(addr).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = io::BufReader::new(s);
        for copies in 1..=2 {
            w.write_all(b"PUT /up/a HTTP/1.1\r\nHost: o\r\nContent-Length: 3\r\n\r\nabc")
                .unwrap();
            let (st, _, body) = read_response(&mut r, false);
            assert_eq!(st, 201);
            // sha256("abc"), FIPS 180-2 appendix B.1.
            let want = format!(
                "sha256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad bytes=3 copies={copies}\n"
            );
            assert_eq!(String::from_utf8_lossy(&body), want);
        }
        w.write_all(b"DELETE /obj.bin HTTP/1.1\r\nHost: o\r\n\r\n")
            .unwrap();
        let (st, h, _) = read_response(&mut r, false);
        assert_eq!(st, 405, "the origin refuses DELETE");
        assert!(h
            .iter()
            .any(|(n, v)| n == "allow" && v == "GET, HEAD, POST, PUT"));
    }
}
