//! The RTSP 1.0 request parser (RFC 2326 §6): request line, headers and a
//! `Content-Length` body, read incrementally from a connection's bytes,
//! plus the `$`-framed interleaved binary data (§10.12) a client sends on
//! the same connection (its RTCP receiver reports, for TCP transport).
//!
//! Every limit is checked before anything is kept, and malformed input is
//! a [`ParseError`], never a panic. This module knows nothing of sessions,
//! transports or what a method does.

use thiserror::Error;

/// Limits on one request; beyond them the request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the request line and headers, CRLFs included.
    pub max_head: usize,
    /// Bytes of the request line.
    pub max_request_line: usize,
    /// Number of header fields.
    pub max_headers: usize,
    /// Bytes of a body (`Content-Length`).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 8192,
            max_request_line: 2048,
            max_headers: 32,
            max_body: 4096,
        }
    }
}

/// Why bytes are not a request. Each maps to one answer (see
/// [`ParseError::status`]) after which the connection is closed: the
/// framing of what follows cannot be trusted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The head is longer than [`Limits::max_head`].
    #[error("request head longer than {0} bytes")]
    HeadTooLong(usize),
    /// The request line is longer than [`Limits::max_request_line`].
    #[error("request line longer than {0} bytes")]
    RequestLineTooLong(usize),
    /// More header fields than [`Limits::max_headers`].
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    /// A body larger than [`Limits::max_body`].
    #[error("body of {0} bytes is over the limit")]
    BodyTooLarge(u64),
    /// The request line is not `Method SP Request-URI SP RTSP-Version`.
    #[error("malformed request line")]
    BadRequestLine,
    /// A method token with characters outside RFC 2616's `token`.
    #[error("malformed method")]
    BadMethod,
    /// A version other than `RTSP/1.0`.
    #[error("unsupported version {0:?}")]
    BadVersion(String),
    /// A header line without a colon or with a bad name.
    #[error("malformed header line")]
    BadHeader,
    /// Bytes that are not UTF-8 (RTSP heads are ISO 10646 in UTF-8, §4).
    #[error("request head is not UTF-8")]
    NotUtf8,
    /// A `Content-Length` that is not a decimal number, or two that differ.
    #[error("bad Content-Length")]
    BadContentLength,
    /// No `CSeq`, or one that is not a number (§12.17: every request has one).
    #[error("missing or malformed CSeq")]
    BadCseq,
}

impl ParseError {
    /// The status to answer with (§7.1.1), when an answer makes sense.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::HeadTooLong(_) | ParseError::TooManyHeaders(_) => 400,
            ParseError::RequestLineTooLong(_) => 414,
            ParseError::BodyTooLarge(_) => 413,
            ParseError::BadVersion(_) => 505,
            _ => 400,
        }
    }
}

/// The methods of RFC 2326 §10, and any other token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// §10.1.
    Options,
    /// §10.2.
    Describe,
    /// §10.3.
    Announce,
    /// §10.4.
    Setup,
    /// §10.5.
    Play,
    /// §10.6.
    Pause,
    /// §10.7.
    Teardown,
    /// §10.8.
    GetParameter,
    /// §10.9.
    SetParameter,
    /// §10.10.
    Redirect,
    /// §10.11.
    Record,
    /// Any other token (answered 501).
    Other(String),
}

impl Method {
    fn from_token(t: &str) -> Method {
        match t {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "ANNOUNCE" => Method::Announce,
            "SETUP" => Method::Setup,
            "PLAY" => Method::Play,
            "PAUSE" => Method::Pause,
            "TEARDOWN" => Method::Teardown,
            "GET_PARAMETER" => Method::GetParameter,
            "SET_PARAMETER" => Method::SetParameter,
            "REDIRECT" => Method::Redirect,
            "RECORD" => Method::Record,
            other => Method::Other(other.to_string()),
        }
    }
}

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI as sent (`*` or an absolute `rtsp://` URL).
    pub uri: String,
    /// The `CSeq` (§12.17), echoed in the response.
    pub cseq: u32,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (case-insensitive, §4.2 via
    /// RFC 2616 §4.2).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the front of a connection's buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request of `len` bytes.
    Request(Request, usize),
    /// An interleaved binary frame (§10.12): channel and payload length;
    /// `4 + len` bytes to skip.
    Interleaved {
        /// The channel byte.
        channel: u8,
        /// Payload bytes after the 4-byte header.
        len: u16,
    },
}

/// Parses the front of `buf`: `Ok(None)` while more bytes are needed.
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<Message>, ParseError> {
    if buf.first() == Some(&b'$') {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u16::from_be_bytes([buf[2], buf[3]]);
        return Ok(Some(Message::Interleaved {
            channel: buf[1],
            len,
        }));
    }
    // Clients may send CRLFs between requests (RFC 2616 §4.1 robustness).
    let skip = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let rest = &buf[skip..];
    let Some(head_end) = find_head_end(rest) else {
        check_partial(rest, limits)?;
        return Ok(None);
    };
    if head_end > limits.max_head {
        return Err(ParseError::HeadTooLong(limits.max_head));
    }
    let head = std::str::from_utf8(&rest[..head_end]).map_err(|_| ParseError::NotUtf8)?;
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let line = lines.next().ok_or(ParseError::BadRequestLine)?;
    if line.len() > limits.max_request_line {
        return Err(ParseError::RequestLineTooLong(limits.max_request_line));
    }
    let (method, uri) = request_line(line)?;
    let mut headers = Vec::new();
    for l in lines {
        if headers.len() == limits.max_headers {
            return Err(ParseError::TooManyHeaders(limits.max_headers));
        }
        let (name, value) = l.split_once(':').ok_or(ParseError::BadHeader)?;
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(ParseError::BadHeader);
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut body_len: Option<u64> = None;
    for (n, v) in &headers {
        if n.eq_ignore_ascii_case("content-length") {
            let len: u64 = v.parse().map_err(|_| ParseError::BadContentLength)?;
            if body_len.is_some_and(|b| b != len) {
                return Err(ParseError::BadContentLength);
            }
            body_len = Some(len);
        }
    }
    let body_len = body_len.unwrap_or(0);
    if body_len > limits.max_body as u64 {
        return Err(ParseError::BodyTooLarge(body_len));
    }
    let cseq = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("cseq"))
        .and_then(|(_, v)| v.parse::<u32>().ok())
        .ok_or(ParseError::BadCseq)?;
    let total = skip + head_end + 4 + body_len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let body = buf[skip + head_end + 4..total].to_vec();
    Ok(Some(Message::Request(
        Request {
            method,
            uri,
            cseq,
            headers,
            body,
        },
        total,
    )))
}

/// Offset of the `\r\n\r\n` ending the head.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Limits that an incomplete head already breaks.
fn check_partial(buf: &[u8], limits: &Limits) -> Result<(), ParseError> {
    if buf.len() > limits.max_head + 3 {
        return Err(ParseError::HeadTooLong(limits.max_head));
    }
    let line_len = buf.iter().position(|b| *b == b'\r').unwrap_or(buf.len());
    if line_len > limits.max_request_line {
        return Err(ParseError::RequestLineTooLong(limits.max_request_line));
    }
    Ok(())
}

fn request_line(line: &str) -> Result<(Method, String), ParseError> {
    let mut parts = line.split(' ');
    let (Some(m), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadRequestLine);
    };
    if m.is_empty() || !m.bytes().all(is_token) {
        return Err(ParseError::BadMethod);
    }
    if uri.is_empty() || uri.bytes().any(|b| b.is_ascii_control()) {
        return Err(ParseError::BadRequestLine);
    }
    if version != "RTSP/1.0" {
        return Err(ParseError::BadVersion(version.chars().take(16).collect()));
    }
    Ok((Method::from_token(m), uri.to_string()))
}

/// RFC 2616 §2.2 `token` characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Result<Option<Message>, ParseError> {
        parse(text.as_bytes(), &Limits::default())
    }

    #[test]
    fn options_request_is_parsed_with_its_cseq_and_length() {
        let t = "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: x\r\n\r\n";
        let Ok(Some(Message::Request(r, len))) = req(t) else {
            panic!("not parsed")
        };
        assert_eq!(r.method, Method::Options);
        assert_eq!(r.uri, "*");
        assert_eq!(r.cseq, 1);
        assert_eq!(r.header("user-agent"), Some("x"));
        assert_eq!(len, t.len());
    }

    #[test]
    fn a_partial_head_or_body_asks_for_more() {
        assert_eq!(req("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n"), Ok(None));
        assert_eq!(
            req("SET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 5\r\n\r\nab"),
            Ok(None)
        );
    }

    #[test]
    fn body_is_taken_by_content_length_and_the_next_request_left() {
        let t =
            "GET_PARAMETER rtsp://h/a RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 2\r\n\r\nokOPTIONS";
        let Ok(Some(Message::Request(r, len))) = req(t) else {
            panic!("not parsed")
        };
        assert_eq!(r.body, b"ok");
        assert_eq!(&t[len..], "OPTIONS");
    }

    #[test]
    fn interleaved_frames_are_recognised() {
        assert_eq!(
            parse(b"$\x01\x00\x20rest", &Limits::default()),
            Ok(Some(Message::Interleaved {
                channel: 1,
                len: 32
            }))
        );
        assert_eq!(parse(b"$\x01", &Limits::default()), Ok(None));
    }

    #[test]
    fn rfc_2326_s12_17_a_request_without_cseq_is_refused() {
        assert_eq!(req("OPTIONS * RTSP/1.0\r\n\r\n"), Err(ParseError::BadCseq));
        assert_eq!(
            req("OPTIONS * RTSP/1.0\r\nCSeq: x\r\n\r\n"),
            Err(ParseError::BadCseq)
        );
    }

    #[test]
    fn malformed_lines_are_typed_errors() {
        assert_eq!(
            req("OPTIONS *\r\nCSeq: 1\r\n\r\n"),
            Err(ParseError::BadRequestLine)
        );
        assert_eq!(
            req("OPTIONS * HTTP/1.1\r\nCSeq: 1\r\n\r\n"),
            Err(ParseError::BadVersion("HTTP/1.1".into()))
        );
        assert_eq!(
            req("OPTIONS * RTSP/1.0\r\nno colon\r\n\r\n"),
            Err(ParseError::BadHeader)
        );
        assert_eq!(
            req("OPT(ONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            Err(ParseError::BadMethod)
        );
        assert_eq!(
            req("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -1\r\n\r\n"),
            Err(ParseError::BadContentLength)
        );
        assert_eq!(
            parse(
                b"OPTIONS * RTSP/1.0\r\nCSeq: \xff\r\n\r\n",
                &Limits::default()
            ),
            Err(ParseError::NotUtf8)
        );
    }

    #[test]
    fn limits_are_enforced_before_the_head_is_complete() {
        let long = format!("OPTIONS /{} RTSP/1.0", "a".repeat(3000));
        assert_eq!(req(&long), Err(ParseError::RequestLineTooLong(2048)));
        let mut many = String::from("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n");
        for i in 0..40 {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(req(&many), Err(ParseError::TooManyHeaders(32)));
        let huge = format!("OPTIONS * RTSP/1.0\r\nX: {}", "b".repeat(9000));
        assert_eq!(req(&huge), Err(ParseError::HeadTooLong(8192)));
        assert_eq!(
            req("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999\r\n\r\n"),
            Err(ParseError::BodyTooLarge(99999))
        );
    }

    #[test]
    fn unknown_methods_parse_as_other() {
        let Ok(Some(Message::Request(r, _))) = req("FROB * RTSP/1.0\r\nCSeq: 9\r\n\r\n") else {
            panic!("not parsed")
        };
        assert_eq!(r.method, Method::Other("FROB".into()));
    }
}
