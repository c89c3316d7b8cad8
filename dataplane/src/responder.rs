//! A tiny HTTP/1.1 responder app: serves `GET /NAME` from an in-memory map
//! of name → bytes, with `Content-Length` and keep-alive. Enough for the
//! dataplane's own tests and a lab without the cache; the real HTTP cache
//! lives in the appliance.
//!
//! Zero-copy: an object's `Bytes` is handed to the TCP send queue in
//! slices of it (`Bytes::split_to` shares the buffer), so the only copy of
//! a body byte is into the outgoing frame.

use crate::app::{App, CloseReason, Ctx};
use crate::flow::ConnId;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Largest request head we buffer before answering 431 and closing.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Default)]
struct ConnState {
    inbuf: Vec<u8>,
    pending: VecDeque<Bytes>,
    close_after: bool,
}

/// Serves objects from a shared map; one instance per worker.
pub struct Responder {
    objects: Arc<HashMap<String, Bytes>>,
    conns: HashMap<ConnId, ConnState>,
    scratch: Vec<u8>,
    /// Requests answered (any status).
    pub requests: u64,
}

impl Responder {
    /// A responder for `objects` (`"1K.bin"` is served at `/1K.bin`).
    pub fn new(objects: Arc<HashMap<String, Bytes>>) -> Self {
        Responder {
            objects,
            conns: HashMap::new(),
            scratch: vec![0u8; 64 * 1024],
            requests: 0,
        }
    }

    /// Connections currently open.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    fn respond(&mut self, conn: ConnId, head: &[u8]) -> Option<usize> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let (status, body, close, consumed) = match req.parse(head) {
            Ok(httparse::Status::Partial) => {
                if head.len() > MAX_HEAD {
                    (
                        431,
                        Bytes::from_static(b"request head too large\n"),
                        true,
                        head.len(),
                    )
                } else {
                    return None;
                }
            }
            Err(_) => (400, Bytes::from_static(b"bad request\n"), true, head.len()),
            Ok(httparse::Status::Complete(n)) => {
                let conn_hdr = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("connection"))
                    .map(|h| h.value.to_ascii_lowercase());
                // RFC 9112 §9.3: 1.1 is persistent unless "close"; 1.0
                // only with "keep-alive".
                let close = match req.version {
                    Some(1) => conn_hdr.as_deref() == Some(b"close".as_slice()),
                    _ => conn_hdr.as_deref() != Some(b"keep-alive".as_slice()),
                };
                let has_body = req.headers.iter().any(|h| {
                    (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0")
                        || h.name.eq_ignore_ascii_case("transfer-encoding")
                });
                let name = req.path.and_then(|p| p.strip_prefix('/')).unwrap_or("");
                match (req.method, self.objects.get(name)) {
                    _ if has_body => (
                        400,
                        Bytes::from_static(b"request bodies not supported\n"),
                        true,
                        n,
                    ),
                    (Some("GET") | Some("HEAD"), Some(obj)) => {
                        let body = if req.method == Some("HEAD") {
                            Bytes::new()
                        } else {
                            obj.clone()
                        };
                        self.queue(conn, 200, obj.len(), body, close);
                        return Some(n);
                    }
                    (Some("GET") | Some("HEAD"), None) => {
                        (404, Bytes::from_static(b"not found\n"), close, n)
                    }
                    _ => (405, Bytes::from_static(b"method not allowed\n"), close, n),
                }
            }
        };
        let len = body.len();
        self.queue(conn, status, len, body, close);
        Some(consumed)
    }

    fn queue(&mut self, conn: ConnId, status: u16, len: usize, body: Bytes, close: bool) {
        self.requests += 1;
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Request Header Fields Too Large",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: {}\r\n\r\n",
            if close { "close" } else { "keep-alive" }
        );
        if let Some(st) = self.conns.get_mut(&conn) {
            st.pending.push_back(Bytes::from(head));
            if !body.is_empty() {
                st.pending.push_back(body);
            }
            st.close_after |= close;
        }
    }

    /// Moves queued response bytes into the TCP send queue as space allows.
    fn pump(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let Some(st) = self.conns.get_mut(&conn) else {
            return;
        };
        while let Some(front) = st.pending.front_mut() {
            let cap = ctx.send_capacity(conn);
            if cap == 0 {
                return;
            }
            let piece = if front.len() <= cap {
                st.pending.pop_front().unwrap_or_default()
            } else {
                front.split_to(cap)
            };
            if ctx.send(conn, piece).is_err() {
                ctx.abort(conn);
                return;
            }
        }
        if st.close_after {
            st.close_after = false;
            ctx.close(conn);
        }
    }
}

impl App for Responder {
    fn on_accept(&mut self, conn: ConnId, _ctx: &mut Ctx<'_>) {
        self.conns.insert(conn, ConnState::default());
    }

    fn on_readable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        loop {
            let n = match ctx.recv(conn, &mut self.scratch) {
                Ok(n) => n,
                Err(_) => return,
            };
            if n == 0 {
                break;
            }
            if let Some(st) = self.conns.get_mut(&conn) {
                if st.close_after {
                    continue; // we are closing: ignore further requests
                }
                st.inbuf.extend_from_slice(&self.scratch[..n]);
            }
        }
        loop {
            let Some(st) = self.conns.get_mut(&conn) else {
                return;
            };
            if st.inbuf.is_empty() || st.close_after {
                break;
            }
            let head = std::mem::take(&mut st.inbuf);
            match self.respond(conn, &head) {
                Some(used) => {
                    if let Some(st) = self.conns.get_mut(&conn) {
                        st.inbuf = head[used.min(head.len())..].to_vec();
                    }
                }
                None => {
                    if let Some(st) = self.conns.get_mut(&conn) {
                        st.inbuf = head;
                    }
                    break;
                }
            }
        }
        self.pump(conn, ctx);
    }

    fn on_writable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        self.pump(conn, ctx);
    }

    fn on_peer_closed(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        // The client sent its FIN after its request (a half-close): answer
        // in full, then close once the last byte is queued.
        if let Some(st) = self.conns.get_mut(&conn) {
            st.close_after = true;
        }
        self.pump(conn, ctx);
    }

    fn on_closed(&mut self, conn: ConnId, _reason: CloseReason, _ctx: &mut Ctx<'_>) {
        self.conns.remove(&conn);
    }
}
