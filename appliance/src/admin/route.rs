//! From a parsed request head to a response: authentication, then the
//! endpoint table. No sockets here, so every answer is testable as a value.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/status` | 200, JSON [`StatusReport`](super::StatusReport) |
//! | GET | `/metrics` | 200, Prometheus text 0.0.4 |
//! | POST | `/purge?url=/path` | 200, `{"url":…,"purged":bool}` |
//! | DELETE | `/cache/<path>` | same as purge of `/<path>` |
//! | POST | `/drain` | 202 `{"accepted":true,"message":…}` or 409 |
//! | POST | `/migrate?to=ID&count=K` | 202 or 409, as drain |
//! | POST | `/adopt?from=ID&slots=A,B` | 202 or 409: restore connections another box handed over |

use super::auth::{self, Auth};
use super::json;
use super::prometheus;
use super::source::{AdminSource, Metric};

/// An answer, before it is written to the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Content-Type of `body`.
    pub content_type: &'static str,
    /// Extra header fields (WWW-Authenticate, Allow, Retry-After).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: String,
}

const JSON: &str = "application/json";

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: JSON,
            headers: Vec::new(),
            body,
        }
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, json::object(&[("error", json::string(message))]))
    }

    /// The same answer with one more header field.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Response {
        self.headers.push((name, value.to_string()));
        self
    }

    /// The whole HTTP/1.1 message. Every answer closes the connection: the
    /// admin API is called a few times a minute, and one request per
    /// connection keeps the server free of keep-alive state.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

/// The reason phrase for the codes the admin API uses (RFC 9110 §15).
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Answers one request. `authorization` is the raw Authorization field
/// value, if any; `admin_metrics` gives the server's own counters, appended
/// to the source's on `/metrics`.
pub fn route(
    method: &str,
    target: &str,
    authorization: Option<&[u8]>,
    token: &str,
    source: &dyn AdminSource,
    admin_metrics: &dyn Fn() -> Vec<Metric>,
) -> Response {
    // RFC 6750 §3: a request without credentials gets the challenge alone;
    // one with a wrong token also gets error="invalid_token".
    // A peer's `migrate` presents this box's adopt token, which opens
    // `/adopt` and nothing else.
    let peer = target.split('?').next() == Some("/adopt")
        && source
            .adopt_token()
            .is_some_and(|t| !t.is_empty() && auth::check(authorization, &t) == Auth::Granted);
    let verdict = if peer {
        Auth::Granted
    } else {
        auth::check(authorization, token)
    };
    match verdict {
        Auth::Granted => {}
        Auth::Missing => {
            return Response::error(401, "this API needs Authorization: Bearer <token>")
                .with_header("WWW-Authenticate", "Bearer realm=\"baton\"")
        }
        Auth::Invalid => {
            return Response::error(401, "wrong token").with_header(
                "WWW-Authenticate",
                "Bearer realm=\"baton\", error=\"invalid_token\"",
            )
        }
    }
    let Some((path, query)) = split_target(target) else {
        return Response::error(400, "request target must be a path");
    };
    let Some(path) = percent_decode(path) else {
        return Response::error(400, "bad percent-encoding in the path");
    };
    let Some(query) = parse_query(query) else {
        return Response::error(400, "bad percent-encoding in the query");
    };
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    match (method, path.as_str()) {
        ("GET", "/status") => Response::json(200, json::status(&source.status())),
        ("GET", "/balance") => Response::json(200, json::balance(&source.balance())),
        ("GET", "/metrics") => {
            let mut metrics = source.metrics();
            metrics.extend(admin_metrics());
            Response {
                status: 200,
                content_type: prometheus::CONTENT_TYPE,
                headers: Vec::new(),
                body: prometheus::render(&metrics),
            }
        }
        ("POST", "/purge") => match param("url") {
            Some(url) => purge(source, url),
            None => Response::error(400, "purge needs ?url=/path"),
        },
        ("DELETE", p) if p.starts_with("/cache/") => purge(source, &p["/cache".len()..]),
        ("POST", "/drain") => {
            tracing::info!("admin: drain requested");
            moved(source.drain())
        }
        ("POST", "/migrate") => {
            let to = param("to").and_then(|v| v.parse::<u16>().ok());
            let count = param("count")
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|&c| c > 0);
            match (to, count) {
                (Some(to), Some(count)) => {
                    tracing::info!(to, count, "admin: migrate requested");
                    moved(source.migrate(to, count))
                }
                _ => Response::error(400, "migrate needs ?to=BOX_ID&count=K (K > 0)"),
            }
        }
        (_, "/status" | "/metrics" | "/balance") => not_allowed("GET"),
        ("POST", "/adopt") => {
            let from = param("from").and_then(|v| v.parse::<u16>().ok());
            let slots: Option<Vec<u32>> = param("slots")
                .map(|v| {
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.parse::<u32>().ok())
                        .collect()
                })
                .unwrap_or(Some(Vec::new()));
            match (from, slots) {
                (Some(from), Some(slots)) if !slots.is_empty() => {
                    tracing::info!(from, count = slots.len(), "admin: adopt requested");
                    moved(source.adopt(from, slots))
                }
                _ => Response::error(400, "adopt needs ?from=BOX_ID&slots=A,B,…"),
            }
        }
        (_, "/purge" | "/drain" | "/migrate" | "/adopt") => not_allowed("POST"),
        (_, p) if p.starts_with("/cache/") => not_allowed("DELETE"),
        _ => Response::error(404, "no such endpoint (see docs/ADMIN.md)"),
    }
}

fn purge(source: &dyn AdminSource, url: &str) -> Response {
    if !url.starts_with('/') || url.len() < 2 {
        return Response::error(400, "url must be a path such as /1M.bin");
    }
    let purged = source.purge(url);
    tracing::info!(url, purged, "admin: purge");
    Response::json(
        200,
        json::object(&[("url", json::string(url)), ("purged", purged.to_string())]),
    )
}

/// Drain and migrate start work that finishes later (RFC 9110 §15.3.3:
/// 202 Accepted); a refusal is a conflict with the box's state (§15.5.10).
fn moved(answer: Result<String, String>) -> Response {
    match answer {
        Ok(message) => Response::json(
            202,
            json::object(&[
                ("accepted", "true".into()),
                ("message", json::string(&message)),
            ]),
        ),
        Err(error) => Response::json(
            409,
            json::object(&[
                ("accepted", "false".into()),
                ("error", json::string(&error)),
            ]),
        ),
    }
}

/// RFC 9110 §15.5.6: a 405 lists the methods the resource has.
fn not_allowed(allow: &str) -> Response {
    Response::error(405, &format!("this endpoint takes {allow}")).with_header("Allow", allow)
}

/// Path and query of an origin-form target (`/a?b`), or of an absolute-form
/// one (`http://host/a?b`), which RFC 9112 §3.2.2 says a server must accept.
fn split_target(target: &str) -> Option<(&str, &str)> {
    let target = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => &rest[rest.find('/')?..],
        None => target,
    };
    if !target.starts_with('/') {
        return None;
    }
    Some(target.split_once('?').unwrap_or((target, "")))
}

/// `a=1&b=%2F` into decoded pairs; `None` if any escape is malformed.
/// `+` stays a plus: these are paths, not HTML form data.
fn parse_query(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// RFC 3986 §2.1 percent-decoding; `None` on a bad escape or if the bytes
/// are not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::source::StatusReport;
    use super::*;

    /// Box 2, whose adopt token comes from the cluster key.
    struct Box2;

    impl AdminSource for Box2 {
        fn status(&self) -> StatusReport {
            StatusReport::default()
        }
        fn metrics(&self) -> Vec<Metric> {
            Vec::new()
        }
        fn purge(&self, _: &str) -> bool {
            true
        }
        fn drain(&self) -> Result<String, String> {
            Ok("drained".into())
        }
        fn migrate(&self, _: u16, _: usize) -> Result<String, String> {
            Ok("migrated".into())
        }
        fn adopt(&self, _: u16, _: Vec<u32>) -> Result<String, String> {
            Ok("adopted".into())
        }
        fn adopt_token(&self) -> Option<String> {
            Some(auth::adopt_token(b"cluster key of this test", 2))
        }
    }

    fn post(target: &str, token: &str) -> u16 {
        let header = format!("Bearer {token}");
        route(
            "POST",
            target,
            Some(header.as_bytes()),
            "box2-own-token",
            &Box2,
            &Vec::new,
        )
        .status
    }

    #[test]
    fn another_boxs_token_drives_nothing_and_the_adopt_token_opens_adopt_only() {
        let key = b"cluster key of this test";
        assert_eq!(post("/drain", "box2-own-token"), 202);
        // Box 1's operator token is not box 2's.
        assert_eq!(post("/drain", "box1-own-token"), 401);
        assert_eq!(post("/migrate?to=3&count=1", "box1-own-token"), 401);
        // Box 2's adopt token: /adopt, and nothing else.
        let adopt = auth::adopt_token(key, 2);
        assert_eq!(post("/adopt?from=1&slots=4", &adopt), 202);
        assert_eq!(post("/drain", &adopt), 401);
        assert_eq!(post("/migrate?to=3&count=1", &adopt), 401);
        // Box 3's adopt token does not open box 2, nor does another key's.
        assert_eq!(
            post("/adopt?from=1&slots=4", &auth::adopt_token(key, 3)),
            401
        );
        let foreign = auth::adopt_token(b"another cluster", 2);
        assert_eq!(post("/adopt?from=1&slots=4", &foreign), 401);
    }
}
