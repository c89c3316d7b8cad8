//! One origin connection: reading pipelined request heads, uploads digested
//! and counted, bodies streamed from a file or from memory, and the faults
//! a test injected applied to the answer. What to answer is
//! [`plan`](crate::origin::plan)'s decision; this file only moves bytes.
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tracing::{debug, info};

use crate::origin::plan::{plan, reason, Meta, Plan, Request};
use crate::origin::state::{Fault, Shared};
use crate::origin::store::Body;

/// The largest request head we accept; real clients send a few hundred
/// bytes.
const MAX_HEAD: usize = 16 * 1024;

/// How long an idle keep-alive connection is kept.
const IDLE: Duration = Duration::from_secs(120);

/// The body of an answer that [`Fault::Status`] forces.
pub const FAULT_BODY: &str = "status forced by a test\n";

/// The origin's answer to an upload: the body's sha256 and length, and how
/// many uploads of that target it has received, this one included.
pub fn upload_answer(body: &[u8], copies: u64) -> String {
    answer_text(Sha256::digest(body).as_slice(), body.len() as u64, copies)
}

fn answer_text(digest: &[u8], len: u64, copies: u64) -> String {
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex} bytes={len} copies={copies}\n")
}

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

    /// Reads an upload's body, digesting it (and keeping it if the origin
    /// keeps a log); the answer's text.
    fn receive_upload(&mut self, req: &Request, len: u64, shared: &Shared) -> io::Result<String> {
        let keep = shared.keeps_log();
        let mut kept = Vec::new();
        let mut digest = Sha256::new();
        let from_buf = (self.buf.len() as u64).min(len) as usize;
        digest.update(&self.buf[..from_buf]);
        if keep {
            kept.extend_from_slice(&self.buf[..from_buf]);
        }
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
            if keep {
                kept.extend_from_slice(&chunk[..n]);
            }
            left -= n as u64;
        }
        let copies = shared.count_upload(&req.method, &req.path, kept);
        info!(
            "{} {}: {len} bytes, upload #{copies} of this path",
            req.method, req.path
        );
        Ok(answer_text(digest.finalize().as_slice(), len, copies))
    }

    pub(crate) fn serve(mut self, shared: &Shared) -> io::Result<()> {
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
                    self.send(&Plan::error(status, text), "GET", false, None, None, shared)?;
                    return Ok(());
                }
                Head::Request(r, n) => (r, n),
            };
            shared.record_request(&self.buf[..used]);
            self.buf.drain(..used);
            // Bodies are neither expected nor kept; chunked ones we cannot
            // skip safely, so they end the connection (RFC 9112 §6.3).
            if req.header("transfer-encoding").is_some() {
                let p = Plan::error(400, "request bodies are not accepted\n");
                self.send(&p, "GET", false, None, None, shared)?;
                return Ok(());
            }
            let body_len = match req
                .header("content-length")
                .map(|v| v.trim().parse::<u64>())
            {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    let p = Plan::error(400, "bad Content-Length\n");
                    self.send(&p, "GET", false, None, None, shared)?;
                    return Ok(());
                }
            };
            let keep = req.keep_alive();
            let fault = shared.fault(&req.path);
            match fault {
                Some(Fault::Close) => return Ok(()),
                Some(Fault::Hang) => {
                    shared.wait_stop();
                    return Ok(());
                }
                Some(Fault::Status(status)) => {
                    self.discard(body_len)?;
                    self.send(
                        &Plan::error(status, FAULT_BODY),
                        &req.method,
                        keep,
                        None,
                        None,
                        shared,
                    )?;
                    if !keep {
                        return Ok(());
                    }
                    continue;
                }
                _ => {}
            }
            if req.method == "POST" || req.method == "PUT" {
                let text = self.receive_upload(&req, body_len, shared)?;
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

            let entry = shared.store.lookup(&req.path);
            let meta = entry.as_ref().map(|e| Meta {
                len: e.len,
                etag: e.etag.clone(),
                last_modified: e.last_modified,
                cache_control: e.cache_control.clone(),
            });
            let p = plan(&req, meta.as_ref());
            // A fault that spoils a body ends the connection after it.
            let spoil = fault.filter(|_| req.method == "GET" && p.body.is_some());
            let keep = keep && spoil.is_none();
            debug!("{} {} -> {}", req.method, req.path, p.status);
            let body = entry.map(|e| e.body);
            self.send(&p, &req.method, keep, body, spoil, shared)?;
            if !keep {
                return Ok(());
            }
        }
    }

    /// Sends `p`; its body bytes come from `body`, spoiled by `spoil`
    /// (`Hold` and `Chunked` wait at `shared`'s gate).
    fn send(
        &mut self,
        p: &Plan,
        method: &str,
        keep: bool,
        body: Option<Body>,
        spoil: Option<Fault>,
        shared: &Shared,
    ) -> io::Result<()> {
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
        match (spoil, content_length) {
            (Some(Fault::Chunked(_)), _) => head.push_str("Transfer-Encoding: chunked\r\n"),
            (Some(Fault::CloseDelimited), _) | (_, None) => {}
            (_, Some(len)) => head.push_str(&format!("Content-Length: {len}\r\n")),
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
        if let (Some((start, len)), Some(body)) = (p.body, body) {
            match body {
                Body::File(mut f) => {
                    f.seek(SeekFrom::Start(start))?;
                    self.send_body(f.take(len), len, spoil, shared)?;
                }
                Body::Bytes(b) => {
                    let from = usize::try_from(start).unwrap_or(usize::MAX);
                    let to = usize::try_from(start + len).unwrap_or(usize::MAX);
                    self.send_body(b.get(from..to).unwrap_or(&[]), len, spoil, shared)?;
                }
            }
        }
        self.stream.flush()
    }

    /// Copies `len` bytes from `r` to the client, or fewer or otherwise
    /// framed as `spoil` says.
    fn send_body<R: Read>(
        &mut self,
        mut r: R,
        len: u64,
        spoil: Option<Fault>,
        shared: &Shared,
    ) -> io::Result<()> {
        match spoil {
            Some(Fault::Truncate(n)) => {
                io::copy(&mut r.take(n as u64), &mut self.stream)?;
                return Ok(());
            }
            Some(Fault::Hold(n)) => {
                io::copy(&mut (&mut r).take(n as u64), &mut self.stream)?;
                self.stream.flush()?;
                shared.wait_release();
                io::copy(&mut r, &mut self.stream)?;
                return Ok(());
            }
            Some(Fault::Chunked(piece)) => {
                let mut first = true;
                loop {
                    let mut c = Vec::with_capacity(piece.max(1));
                    (&mut r).take(piece.max(1) as u64).read_to_end(&mut c)?;
                    if c.is_empty() {
                        break;
                    }
                    self.stream
                        .write_all(format!("{:x};ext=1\r\n", c.len()).as_bytes())?;
                    self.stream.write_all(&c)?;
                    self.stream.write_all(b"\r\n")?;
                    if first {
                        first = false;
                        self.stream.flush()?;
                        shared.wait_release();
                    }
                }
                return self.stream.write_all(b"0\r\nX-Trailer: yes\r\n\r\n");
            }
            _ => {}
        }
        let sent = io::copy(&mut r, &mut self.stream)?;
        if sent < len {
            // The file shrank under us: the length we promised is a lie
            // now, so the connection must end (RFC 9112 §6.3).
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}
