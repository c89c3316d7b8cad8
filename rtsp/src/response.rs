//! RTSP responses (RFC 2326 §7): a status, the request's `CSeq`, headers
//! and a body, serialised for the connection. Knows nothing of sessions.

/// A response to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code (§7.1.1).
    pub status: u16,
    /// The request's `CSeq`, if it had a usable one.
    pub cseq: Option<u32>,
    /// Header fields after `CSeq`, in order.
    pub headers: Vec<(String, String)>,
    /// The body; `Content-Length` is added when it is not empty.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with no headers and no body.
    pub fn new(status: u16, cseq: Option<u32>) -> Response {
        Response {
            status,
            cseq,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header field.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("RTSP/1.0 {} {}\r\n", self.status, reason(self.status));
        if let Some(c) = self.cseq {
            s.push_str(&format!("CSeq: {c}\r\n"));
        }
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        if !self.body.is_empty() {
            s.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        s.push_str("\r\n");
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The reason phrase of RFC 2326 §7.1.1.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Time-out",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        451 => "Parameter Not Understood",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        456 => "Header Field Not Valid for Resource",
        457 => "Invalid Range",
        459 => "Aggregate operation not allowed",
        460 => "Only aggregate operation allowed",
        461 => "Unsupported transport",
        462 => "Destination unreachable",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version not supported",
        551 => "Option not supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_status_cseq_headers_and_length() {
        let r = Response::new(454, Some(7)).with("Server", "baton");
        assert_eq!(
            r.to_bytes(),
            b"RTSP/1.0 454 Session Not Found\r\nCSeq: 7\r\nServer: baton\r\n\r\n"
        );
        let mut r = Response::new(200, Some(1));
        r.body = b"v=0\r\n".to_vec();
        let text = String::from_utf8(r.to_bytes()).unwrap_or_default();
        assert!(text.ends_with("Content-Length: 5\r\n\r\nv=0\r\n"), "{text}");
    }
}
