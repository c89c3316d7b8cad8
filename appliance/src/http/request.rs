//! Request heads: parsing with httparse under the box's limits (RFC 9112 §2,
//! §3, §9.3).
//!
//! Limits protect the box before any work is done: a request line longer
//! than `max_request_line` is 414 (RFC 9110 §15.5.15), a header section
//! larger than `max_header_bytes` (or with more than [`MAX_HEADERS`] lines)
//! is 431 (RFC 6585 §5), anything httparse refuses is 400 (obs-fold,
//! whitespace before a colon, control characters: RFC 9112 §5), and so is
//! a bare LF line end (§2.2) and an invalid Host (§3.2). Another major
//! version is 505, a later 1.x minor is read as 1.1 (RFC 9110 §2.5). The
//! checks run on incomplete heads too, so a client cannot make the box
//! buffer an endless line.
//!
//! Framing is read strictly, since a hop that reads it differently is how
//! requests are smuggled (RFC 9112 §6.3, §11.2): Content-Length is digits
//! only and duplicates must agree; Transfer-Encoding with Content-Length is
//! 400; chunked must be the last coding and appear once (400); any other
//! coding is 501 (§6.1), this box implements none.
//!
//! Pure parsing: it knows nothing of connections, answers or the cache.

use std::time::Duration;

/// Most header lines in one request.
pub const MAX_HEADERS: usize = 100;

/// The limits a session enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, bytes (without CRLF).
    pub max_request_line: usize,
    /// Largest header section, bytes (everything after the request line).
    pub max_header_bytes: usize,
    /// A connection with no request in progress is closed after this.
    pub idle_timeout: Duration,
    /// A request head must be complete this long after its first byte
    /// (slow-request protection), else 408.
    pub request_timeout: Duration,
    /// Largest request body (upload) accepted; beyond it 413.
    pub max_upload_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&baton_config::LimitsConfig::default())
    }
}

impl Limits {
    /// From the `[limits]` section.
    pub fn from_config(c: &baton_config::LimitsConfig) -> Limits {
        Limits {
            max_request_line: c.max_request_line,
            max_header_bytes: c.max_header_bytes,
            idle_timeout: Duration::from_millis(c.idle_timeout_ms),
            request_timeout: Duration::from_millis(c.request_timeout_ms),
            max_upload_bytes: c.max_upload_bytes,
        }
    }
}

/// Request methods the session distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET: served from the cache.
    Get,
    /// HEAD: the GET head without a body.
    Head,
    /// POST: an upload, passed to the origin with its body (never cached).
    Post,
    /// PUT: an upload, passed to the origin with its body (never cached).
    Put,
    /// Anything else: refused with 405 (this box is a cache; it passes
    /// uploads on, nothing else).
    Other,
}

impl Method {
    /// The code stored in a checkpoint's application block.
    pub fn code(self) -> u8 {
        match self {
            Method::Other => 0,
            Method::Get => 1,
            Method::Head => 2,
            Method::Post => 3,
            Method::Put => 4,
        }
    }

    /// Whether the request carries a body the box passes to the origin.
    pub fn is_upload(self) -> bool {
        matches!(self, Method::Post | Method::Put)
    }

    /// RFC 9110 §9.2.2: may be sent again after a failure without changing
    /// the outcome (PUT), unlike POST.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Method::Post | Method::Other)
    }

    /// Back from a checkpoint code.
    pub fn from_code(c: u8) -> Method {
        match c {
            1 => Method::Get,
            2 => Method::Head,
            3 => Method::Post,
            4 => Method::Put,
            _ => Method::Other,
        }
    }
}

/// How a request's own body is framed (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// No body.
    None,
    /// This many bytes follow the head.
    Length(u64),
    /// Transfer-Encoding: the session answers, then closes, rather than
    /// decode a body it has no use for.
    Unframed,
}

/// A parsed request head: what the session needs, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// HTTP/1.x minor version: 0 or 1.
    pub minor: u8,
    /// Path and query: the cache key.
    pub url: String,
    /// Whether the connection stays open after the answer (RFC 9112 §9.3).
    pub persistent: bool,
    /// `Range`.
    pub range: Option<String>,
    /// `If-None-Match` (several lines joined with ", ").
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<String>,
    /// `If-Range`.
    pub if_range: Option<String>,
    /// `If-Match` (several lines joined with ", ").
    pub if_match: Option<String>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<String>,
    /// The request's own body.
    pub body: RequestBody,
    /// `Content-Type` of the body (passed to the origin with an upload).
    pub content_type: Option<String>,
    /// `Expect: 100-continue` (RFC 9110 §10.1.1): the client waits for an
    /// interim 100 before it sends the body.
    pub expect_continue: bool,
}

impl Request {
    /// A request with no headers of interest (for answers the box makes
    /// up, and for requests rebuilt from a checkpoint).
    pub fn bare(method: Method, minor: u8, url: String, persistent: bool) -> Request {
        Request {
            method,
            minor,
            url,
            persistent,
            range: None,
            if_none_match: None,
            if_modified_since: None,
            if_range: None,
            if_match: None,
            if_unmodified_since: None,
            body: RequestBody::None,
            content_type: None,
            expect_continue: false,
        }
    }
}

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The request line is longer than the limit: 414.
    #[error("request line too long")]
    LineTooLong,
    /// The header section is too large: 431.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// Not HTTP/1.x, or a framing error: 400.
    #[error("malformed request")]
    Malformed,
    /// A transfer coding this box does not implement (RFC 9112 §6.1):
    /// 501.
    #[error("unknown transfer coding")]
    UnknownCoding,
    /// A major HTTP version other than 1 (RFC 9110 §15.6.6): 505.
    #[error("HTTP version not supported")]
    VersionNotSupported,
}

impl ParseError {
    /// The status code answered.
    pub fn status(self) -> u16 {
        match self {
            ParseError::LineTooLong => 414,
            ParseError::HeadersTooLarge => 431,
            ParseError::Malformed => 400,
            ParseError::UnknownCoding => 501,
            ParseError::VersionNotSupported => 505,
        }
    }
}

/// A parse result.
// Made once per request and moved once: boxing would cost an allocation
// per request for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Partial,
    /// A whole head: the request and the bytes it took.
    Complete(Request, usize),
}

/// Parses the head at the start of `buf` (leading empty lines already
/// removed by the caller, RFC 9112 §2.2).
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Parsed, ParseError> {
    parse_head(buf, limits, true)
}

/// [`parse`]; `other_versions` is false once a 1.x version was rewritten
/// to 1.1, so a second version fault is 400 and never a loop.
fn parse_head(buf: &[u8], limits: &Limits, other_versions: bool) -> Result<Parsed, ParseError> {
    let line_end = buf.iter().position(|&b| b == b'\n');
    let line_len = match line_end {
        // Without its CRLF (a bare LF is tolerated by httparse).
        Some(i) => i - usize::from(i > 0 && buf[i - 1] == b'\r'),
        None => buf.len(),
    };
    if line_len > limits.max_request_line {
        return Err(ParseError::LineTooLong);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(buf);
    let head_len = match status {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => buf.len(),
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::HeadersTooLarge),
        Err(httparse::Error::Version) if other_versions => {
            return other_version(buf, line_end, limits)
        }
        Err(_) => return Err(ParseError::Malformed),
    };
    // RFC 9112 §2.2: a recipient MAY take a bare LF as a line end; this
    // one does not, since a hop in front that splits only at CRLF would
    // see one field where this box saw two (a smuggled Transfer-Encoding).
    if has_bare_lf(&buf[..head_len]) {
        return Err(ParseError::Malformed);
    }
    if let Some(i) = line_end {
        if head_len.saturating_sub(i + 1) > limits.max_header_bytes {
            return Err(ParseError::HeadersTooLarge);
        }
    }
    match status {
        Ok(httparse::Status::Complete(n)) => Ok(Parsed::Complete(build(&req)?, n)),
        _ => Ok(Parsed::Partial),
    }
}

/// Whether a line of `head` ends in LF without CR.
fn has_bare_lf(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
}

/// A request line httparse refused for its version (it knows HTTP/1.0 and
/// HTTP/1.1 only). RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT,
/// case-sensitive. Another major version is 505 (RFC 9110 §15.6.6); a
/// higher 1.x minor is read as 1.1 (RFC 9110 §2.5: "SHOULD process the
/// message as if it were in the highest minor version within that major
/// version to which the recipient is conformant"); anything else (an
/// HTTP/0.9 line without a version, `HTTP/1.10`, `http/1.1`) is 400.
fn other_version(
    buf: &[u8],
    line_end: Option<usize>,
    limits: &Limits,
) -> Result<Parsed, ParseError> {
    let line = match line_end {
        Some(i) => &buf[..i - usize::from(i > 0 && buf[i - 1] == b'\r')],
        None => buf,
    };
    // request-line = method SP request-target SP HTTP-version (RFC 9112
    // §3): the version is what follows the second space, as httparse
    // reads it.
    let mut spaces = line
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b' ')
        .map(|(i, _)| i);
    let (Some(_), Some(space)) = (spaces.next(), spaces.next()) else {
        return Err(ParseError::Malformed);
    };
    let version = &line[space + 1..];
    const PATTERN: &[u8] = b"HTTP/d.d";
    let fits = version.len() <= PATTERN.len()
        && version.iter().zip(PATTERN).all(|(&b, &p)| match p {
            b'd' => b.is_ascii_digit(),
            p => b == p,
        });
    if !fits {
        return Err(ParseError::Malformed);
    }
    if line_end.is_none() || version.len() < PATTERN.len() {
        // A version still arriving: whether it is 505 or 400 is known
        // once the line ends (the line limit bounds the wait).
        return if line_end.is_none() {
            Ok(Parsed::Partial)
        } else {
            Err(ParseError::Malformed)
        };
    }
    if version[5] != b'1' {
        return Err(ParseError::VersionNotSupported);
    }
    // HTTP/1.2 to HTTP/1.9: the same head as HTTP/1.1 (same length, so the
    // head's byte count holds).
    let mut as_11 = buf.to_vec();
    as_11[space + 1 + 7] = b'1';
    parse_head(&as_11, limits, false)
}

/// The path of a request target (RFC 9112 §3.2): origin-form as is, the
/// path of an absolute-form.
fn target_path(target: &str) -> Option<String> {
    // RFC 9112 §3.2: a request-target is a URI without a fragment, ASCII
    // only (RFC 3986 §2). httparse lets both through; a fragment or a raw
    // non-ASCII byte would be one more spelling of a URL in the cache key
    // and one the origin may read differently.
    if !target.is_ascii() || target.contains('#') {
        return None;
    }
    if target.starts_with('/') {
        return Some(target.to_string());
    }
    let lower = target.get(..7).map(str::to_ascii_lowercase);
    if lower.as_deref() == Some("http://") {
        let rest = &target[7..];
        return Some(match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => rest[i..].to_string(),
            Some(i) => format!("/{}", &rest[i..]),
            None => "/".to_string(),
        });
    }
    if target == "*" {
        return Some(target.to_string());
    }
    None
}

fn build(req: &httparse::Request<'_, '_>) -> Result<Request, ParseError> {
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        Some(_) => Method::Other,
        None => return Err(ParseError::Malformed),
    };
    let minor = req.version.ok_or(ParseError::Malformed)?;
    let url = req
        .path
        .and_then(target_path)
        .ok_or(ParseError::Malformed)?;
    let mut out = Request::bare(method, minor, url, false);
    let (mut hosts, mut close, mut keep_alive) = (0, false, false);
    let mut content_length: Option<u64> = None;
    let mut codings = Codings::default();
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| ParseError::Malformed)?
            .trim();
        let name = h.name;
        // A hop that maps `_` to `-` in field names (as CGI does) would
        // frame the request by a field this box ignores: refused, as the
        // ambiguity RFC 9112 §11.2 warns of.
        if name.eq_ignore_ascii_case("content_length")
            || name.eq_ignore_ascii_case("transfer_encoding")
        {
            return Err(ParseError::Malformed);
        }
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad
            // Request) status code to any request message that contains
            // [...] a Host header field with an invalid field value."
            if !value.bytes().all(is_host_byte) {
                return Err(ParseError::Malformed);
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            // RFC 9112 §6.3 rule 5: an invalid or conflicting length is
            // unrecoverable. Content-Length = 1*DIGIT (RFC 9110 §8.6):
            // `+5`, `5, 5`, ` 0x5` are refused, not read as 5 by a lenient
            // number parser another hop may not share.
            let n = content_length_value(value)?;
            if content_length.is_some_and(|c| c != n) {
                return Err(ParseError::Malformed);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            codings.add(value)?;
        } else if name.eq_ignore_ascii_case("range") {
            // Range is not a list (RFC 9110 §14.2), so a second line makes
            // the field invalid; joined, it reads as several ranges and is
            // ignored like them, rather than the last line winning where a
            // hop in front may have used the first.
            out.range = Some(match out.range.take() {
                Some(prev) => format!("{prev}, {value}"),
                None => value.to_string(),
            });
        } else if name.eq_ignore_ascii_case("if-none-match") {
            out.if_none_match = Some(match out.if_none_match.take() {
                Some(prev) => format!("{prev}, {value}"),
                None => value.to_string(),
            });
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            out.if_modified_since = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("if-range") {
            out.if_range = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("if-match") {
            out.if_match = Some(match out.if_match.take() {
                Some(prev) => format!("{prev}, {value}"),
                None => value.to_string(),
            });
        } else if name.eq_ignore_ascii_case("if-unmodified-since") {
            out.if_unmodified_since = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("content-type") {
            out.content_type = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("expect") {
            out.expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host is 400.
    if minor == 1 && hosts != 1 {
        return Err(ParseError::Malformed);
    }
    let chunked = codings.present;
    // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is a framing fault.
    if chunked && minor == 0 {
        return Err(ParseError::Malformed);
    }
    if chunked {
        codings.check()?;
        // RFC 9112 §6.3 rule 3: both framings at once is how requests are
        // smuggled past a hop that believes the other one; a server MAY
        // refuse it, and this one does.
        if content_length.is_some() {
            return Err(ParseError::Malformed);
        }
    }
    out.body = match (chunked, content_length) {
        (true, _) => RequestBody::Unframed,
        (false, Some(0)) | (false, None) => RequestBody::None,
        (false, Some(n)) => RequestBody::Length(n),
    };
    // RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with keep-alive.
    out.persistent = !close && (minor == 1 || keep_alive) && out.body != RequestBody::Unframed;
    Ok(out)
}

/// A Content-Length field value: digits only, and no more than a u64.
fn content_length_value(v: &str) -> Result<u64, ParseError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Malformed);
    }
    v.parse::<u64>().map_err(|_| ParseError::Malformed)
}

/// The transfer codings of a request, over every Transfer-Encoding line
/// (RFC 9112 §6.1, a comma-separated list).
#[derive(Default)]
struct Codings {
    /// Some Transfer-Encoding line was present.
    present: bool,
    /// How many times `chunked` was listed.
    chunked: usize,
    /// Whether the last coding listed is `chunked`.
    last_chunked: bool,
    /// A coding other than `chunked` that is registered (RFC 9110 §8.4.1):
    /// understood, but not implemented here.
    registered_other: bool,
    /// A coding nobody registered.
    unknown: bool,
    /// Whether the last coding listed is not `chunked` but registered.
    last_registered_other: bool,
}

impl Codings {
    /// Adds one field line's list; a malformed element is 400.
    fn add(&mut self, value: &str) -> Result<(), ParseError> {
        self.present = true;
        for element in value.split(',') {
            let element = element.trim_matches([' ', '\t']);
            // RFC 9110 §5.6.1: empty list elements are ignored.
            if element.is_empty() {
                continue;
            }
            // transfer-coding = token *( OWS ";" OWS transfer-parameter )
            let name = element
                .split(';')
                .next()
                .unwrap_or("")
                .trim_end_matches([' ', '\t']);
            if name.is_empty() || !name.bytes().all(is_tchar) {
                return Err(ParseError::Malformed);
            }
            let chunked = name.eq_ignore_ascii_case("chunked");
            let registered = ["gzip", "x-gzip", "deflate", "compress", "x-compress"]
                .iter()
                .any(|c| name.eq_ignore_ascii_case(c));
            self.chunked += usize::from(chunked);
            self.registered_other |= registered;
            self.unknown |= !chunked && !registered;
            self.last_chunked = chunked;
            self.last_registered_other = registered;
        }
        Ok(())
    }

    /// Whether the request can be framed by its codings: 400 when its
    /// length cannot be known (chunked not last, or twice: RFC 9112 §6.3
    /// rule 4, §7), 501 for a coding this box does not implement (every
    /// one but chunked, RFC 9112 §6.1).
    fn check(&self) -> Result<(), ParseError> {
        if self.last_registered_other || self.chunked > 1 {
            return Err(ParseError::Malformed);
        }
        if self.unknown || self.registered_other {
            return Err(ParseError::UnknownCoding);
        }
        if !self.last_chunked {
            // No coding at all (an empty field value).
            return Err(ParseError::Malformed);
        }
        Ok(())
    }
}

/// A byte of `uri-host [ ":" port ]` (RFC 3986 §3.2.2: reg-name's
/// unreserved, pct-encoded and sub-delims, an IP-literal's brackets and
/// colons, the port's digits).
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b)
}

/// tchar (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
