//! What the lab origin answers, decided without sockets: the request and
//! object metadata it needs, the path rules that keep a request inside the
//! served folder, and [`plan`], which leaves ranges and conditionals to
//! `baton_http::decide` (RFC 9110 §13.2.2's order) so the origin and the
//! cache under test answer by the same rules. No I/O here.
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use baton_http::{decide, Decision, Preconditions, Validators};

/// One request as the server needs it.
#[derive(Debug, Default)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    /// HTTP/1.x minor version.
    pub(crate) minor: u8,
    pub(crate) headers: Vec<(String, String)>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Persistent per RFC 9112 §9.3: HTTP/1.1 unless "close", HTTP/1.0 only
    /// with "keep-alive".
    pub(crate) fn keep_alive(&self) -> bool {
        let tokens: Vec<String> = self
            .header("connection")
            .unwrap_or("")
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        if self.minor >= 1 {
            !tokens.iter().any(|t| t == "close")
        } else {
            tokens.iter().any(|t| t == "keep-alive")
        }
    }
}

/// The object behind a request, as validators see it.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) len: u64,
    pub(crate) etag: String,
    pub(crate) last_modified: SystemTime,
    pub(crate) cache_control: Option<String>,
}

impl Meta {
    pub(crate) fn etag(&self) -> String {
        self.etag.clone()
    }

    pub(crate) fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.last_modified)
    }
}

/// The strong entity tag nginx gives a file: "mtime-size" in hex.
pub(crate) fn file_etag(mtime: SystemTime, len: u64) -> String {
    let secs = mtime
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("\"{secs:x}-{len:x}\"")
}

/// The body of the origin's 404.
pub const NOT_FOUND_BODY: &str = "not found\n";

/// What to send back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Byte range of the file to send as the body (start, length).
    pub(crate) body: Option<(u64, u64)>,
    /// A short text body for errors.
    pub(crate) text: Option<&'static str>,
}

impl Plan {
    pub(crate) fn error(status: u16, text: &'static str) -> Plan {
        Plan {
            status,
            headers: vec![("Content-Type", "text/plain".into())],
            body: None,
            text: Some(text),
        }
    }
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        507 => "Insufficient Storage",
        _ => "Internal Server Error",
    }
}

/// Maps a request target to a file under `root`, refusing anything that
/// could leave it: only plain names of [A-Za-z0-9._-] joined by '/', no
/// empty, "." or ".." segment.
pub(crate) fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let rel = path.strip_prefix('/')?;
    let mut out = root.to_path_buf();
    for seg in rel.split('/') {
        let plain = seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if seg.is_empty() || seg == "." || seg == ".." || !plain {
            return None;
        }
        out.push(seg);
    }
    Some(out)
}

/// Decides the response to `req` for an object with `meta` (None: no such
/// object). Pure, so the rules are tested without sockets; the conditional
/// and range rules are `baton_http::decide`'s, the appliance's own.
pub(crate) fn plan(req: &Request, meta: Option<&Meta>) -> Plan {
    if req.method != "GET" && req.method != "HEAD" {
        let mut p = Plan::error(405, "method not allowed\n");
        p.headers.push(("Allow", "GET, HEAD, POST, PUT".into()));
        return p;
    }
    let Some(meta) = meta else {
        return Plan::error(404, NOT_FOUND_BODY);
    };
    let etag = meta.etag();
    let last_modified = meta.last_modified();
    let pre = Preconditions {
        if_match: req.header("if-match"),
        if_unmodified_since: req.header("if-unmodified-since"),
        if_none_match: req.header("if-none-match"),
        if_modified_since: req.header("if-modified-since"),
        if_range: req.header("if-range"),
        range: req.header("range"),
    };
    let validators = Validators {
        etag: Some(&etag),
        last_modified: Some(&last_modified),
        length: Some(meta.len),
    };
    let decision = decide(req.method == "GET", &pre, &validators);
    let mut headers = vec![
        ("ETag", etag.clone()),
        ("Last-Modified", last_modified.clone()),
    ];
    if let Some(cc) = &meta.cache_control {
        headers.push(("Cache-Control", cc.clone()));
    }
    match decision {
        Decision::PreconditionFailed => Plan::error(412, "precondition failed\n"),
        Decision::NotModified => Plan {
            status: 304,
            headers,
            body: None,
            text: None,
        },
        Decision::Full => {
            headers.push(("Accept-Ranges", "bytes".into()));
            headers.push(("Content-Type", "application/octet-stream".into()));
            Plan {
                status: 200,
                headers,
                body: Some((0, meta.len)),
                text: None,
            }
        }
        Decision::Partial {
            first,
            last,
            length,
        } => {
            headers.push(("Accept-Ranges", "bytes".into()));
            headers.push(("Content-Type", "application/octet-stream".into()));
            headers.push(("Content-Range", format!("bytes {first}-{last}/{length}")));
            Plan {
                status: 206,
                headers,
                body: Some((first, last - first + 1)),
                text: None,
            }
        }
        Decision::Unsatisfiable { length } => {
            let mut p = Plan::error(416, "range not satisfiable\n");
            p.headers
                .push(("Content-Range", format!("bytes */{length}")));
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn get(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/1K.bin".into(),
            minor: 1,
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    fn meta() -> Meta {
        let mtime = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Meta {
            len: 1000,
            etag: file_etag(mtime, 1000),
            last_modified: mtime,
            cache_control: None,
        }
    }

    /// Status and body bytes (start, length) of a GET with `range`.
    fn body_of(range: &str) -> (u16, Option<(u64, u64)>) {
        let p = plan(&get(&[("Range", range)]), Some(&meta()));
        (p.status, p.body)
    }

    fn header<'a>(p: &'a Plan, name: &str) -> Option<&'a str> {
        p.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn single_range_is_answered_206_with_content_range() {
        let p = plan(&get(&[("Range", "bytes=100-199")]), Some(&meta()));
        assert_eq!(p.status, 206);
        assert_eq!(p.body, Some((100, 100)));
        assert_eq!(header(&p, "Content-Range"), Some("bytes 100-199/1000"));
    }

    #[test]
    fn open_and_suffix_ranges_are_clamped_to_the_object() {
        assert_eq!(body_of("bytes=900-"), (206, Some((900, 100))));
        assert_eq!(body_of("bytes=900-5000"), (206, Some((900, 100))));
        assert_eq!(body_of("bytes=-10"), (206, Some((990, 10))));
        assert_eq!(body_of("bytes=-5000"), (206, Some((0, 1000))));
    }

    #[test]
    fn range_past_the_end_is_416_with_the_length() {
        let p = plan(&get(&[("Range", "bytes=1000-")]), Some(&meta()));
        assert_eq!(p.status, 416);
        assert_eq!(header(&p, "Content-Range"), Some("bytes */1000"));
        assert_eq!(body_of("bytes=-0"), (416, None));
    }

    #[test]
    fn several_ranges_or_bad_syntax_send_the_whole_object() {
        for ignored in ["bytes=0-1,5-6", "bytes=5-1", "items=0-1", "bytes=a-b"] {
            assert_eq!(body_of(ignored), (200, Some((0, 1000))), "{ignored}");
        }
    }

    #[test]
    fn if_range_with_current_etag_or_date_honours_range() {
        let m = meta();
        let p = plan(
            &get(&[("Range", "bytes=0-9"), ("If-Range", &m.etag())]),
            Some(&m),
        );
        assert_eq!(p.status, 206);
        let p = plan(
            &get(&[("Range", "bytes=0-9"), ("If-Range", &m.last_modified())]),
            Some(&m),
        );
        assert_eq!(p.status, 206);
    }

    #[test]
    fn if_range_mismatch_sends_whole_object_200() {
        let m = meta();
        let p = plan(
            &get(&[("Range", "bytes=0-9"), ("If-Range", "\"other\"")]),
            Some(&m),
        );
        assert_eq!(p.status, 200);
        assert_eq!(p.body, Some((0, 1000)));
        let p = plan(
            &get(&[
                ("Range", "bytes=0-9"),
                ("If-Range", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ]),
            Some(&m),
        );
        assert_eq!(p.status, 200);
        // A weak tag never matches for If-Range (strong comparison).
        let weak = format!("W/{}", m.etag());
        let p = plan(
            &get(&[("Range", "bytes=0-9"), ("If-Range", &weak)]),
            Some(&m),
        );
        assert_eq!(p.status, 200);
    }

    #[test]
    fn if_none_match_current_etag_is_304_without_body() {
        let m = meta();
        let p = plan(
            &get(&[("If-None-Match", &format!("\"x\", {}", m.etag()))]),
            Some(&m),
        );
        assert_eq!(p.status, 304);
        assert_eq!(p.body, None);
        assert_eq!(header(&p, "ETag"), Some(m.etag().as_str()));
        let p = plan(&get(&[("If-None-Match", "\"x\"")]), Some(&m));
        assert_eq!(p.status, 200);
    }

    #[test]
    fn if_modified_since_later_date_is_304_and_earlier_is_200() {
        let m = meta();
        let p = plan(&get(&[("If-Modified-Since", &m.last_modified())]), Some(&m));
        assert_eq!(p.status, 304);
        let p = plan(
            &get(&[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")]),
            Some(&m),
        );
        assert_eq!(p.status, 200);
        // If-None-Match takes precedence over If-Modified-Since (§13.2.2).
        let p = plan(
            &get(&[
                ("If-None-Match", "\"x\""),
                ("If-Modified-Since", &m.last_modified()),
            ]),
            Some(&m),
        );
        assert_eq!(p.status, 200);
    }

    #[test]
    fn cache_control_is_sent_only_when_the_object_has_one() {
        let p = plan(&get(&[]), Some(&meta()));
        assert_eq!(header(&p, "Cache-Control"), None);
        let mut m = meta();
        m.cache_control = Some("max-age=0".into());
        let p = plan(&get(&[("If-None-Match", &m.etag())]), Some(&m));
        assert_eq!(p.status, 304);
        assert_eq!(header(&p, "Cache-Control"), Some("max-age=0"));
    }

    #[test]
    fn if_match_mismatch_is_412() {
        let p = plan(&get(&[("If-Match", "\"x\"")]), Some(&meta()));
        assert_eq!(p.status, 412);
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        let mut r = get(&[]);
        r.method = "DELETE".into();
        let p = plan(&r, Some(&meta()));
        assert_eq!(p.status, 405);
        assert_eq!(header(&p, "Allow"), Some("GET, HEAD, POST, PUT"));
    }

    #[test]
    fn head_ignores_range() {
        let mut r = get(&[("Range", "bytes=0-9")]);
        r.method = "HEAD".into();
        assert_eq!(plan(&r, Some(&meta())).status, 200);
    }

    #[test]
    fn paths_that_could_leave_the_root_are_refused() {
        let root = Path::new("/srv");
        assert_eq!(
            resolve(root, "/1K.bin?x=1"),
            Some(PathBuf::from("/srv/1K.bin"))
        );
        assert_eq!(
            resolve(root, "/a/b.bin"),
            Some(PathBuf::from("/srv/a/b.bin"))
        );
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/./x",
            "//x",
            "/",
            "x",
            "/%2e%2e/x",
            "/a\\b",
        ] {
            assert_eq!(resolve(root, bad), None, "{bad}");
        }
    }
}
