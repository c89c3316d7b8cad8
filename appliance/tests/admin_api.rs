//! The admin API over 127.0.0.1 with a fake box: authentication, every
//! endpoint's status and body, and the limits that protect the box from its
//! admin clients.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton::admin::{
    self, AdminError, AdminServer, AdminSource, CacheStatus, Limits, Metric, PeerStatus,
    StatusReport, WorkerStatus,
};

const TOKEN: &str = "s3cret-token";

/// A box with fixed answers that records what it was asked to do.
#[derive(Default)]
struct FakeBox {
    calls: Mutex<Vec<String>>,
    refuse_moves: bool,
}

impl FakeBox {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl AdminSource for FakeBox {
    fn status(&self) -> StatusReport {
        StatusReport {
            box_id: 2,
            name: "box2".into(),
            epoch: 7,
            state: "alive".into(),
            uptime_ms: 12_345,
            connections: 42,
            checkpoints: 9_001,
            load: None,
            workers: vec![
                WorkerStatus {
                    index: 0,
                    connections: 20,
                },
                WorkerStatus {
                    index: 1,
                    connections: 22,
                },
            ],
            peers: vec![
                PeerStatus {
                    id: 1,
                    state: "alive".into(),
                    heartbeat_age_ms: Some(12),
                    connections: 5,
                    load: Some(baton::admin::LoadStatus {
                        bytes_per_sec: 1_000,
                        busy_ppm: 250_000,
                    }),
                },
                PeerStatus {
                    id: 3,
                    state: "never started".into(),
                    heartbeat_age_ms: None,
                    connections: 0,
                    load: None,
                },
            ],
            cache: CacheStatus {
                hits: 100,
                misses: 3,
                objects: 4,
                bytes: 1 << 20,
                bytes_served: 5 << 20,
            },
            view: None,
        }
    }

    fn metrics(&self) -> Vec<Metric> {
        vec![
            Metric::counter("baton_cache_hits_total", "Cache hits.", 100),
            Metric::counter("baton_cache_misses_total", "Cache misses.", 3),
            Metric::counter("baton_bytes_served_total", "Body bytes served.", 5 << 20),
            Metric::gauge("baton_connections", "Client connections owned.", 42.0),
            Metric::error("bad_request", 2),
            Metric::dataplane("rx_frames", 1000),
            Metric::error("header_too_large", 1),
            Metric::counter("baton_checkpoints_total", "Checkpoints written.", 9_001),
            Metric::counter("baton_takeovers_total", "Connections taken over.", 0),
        ]
    }

    fn purge(&self, url: &str) -> bool {
        self.calls.lock().unwrap().push(format!("purge {url}"));
        url == "/1M.bin"
    }

    fn drain(&self) -> Result<String, String> {
        self.calls.lock().unwrap().push("drain".into());
        if self.refuse_moves {
            Err("no other box is alive".into())
        } else {
            Ok("moving 42 connections".into())
        }
    }

    fn migrate(&self, to: u16, count: usize) -> Result<String, String> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("migrate {to} {count}"));
        if self.refuse_moves {
            Err(format!("box {to} is dead"))
        } else {
            Ok(format!("moving {count} connections to box {to}"))
        }
    }
}

/// A server on an ephemeral loopback port.
fn start(fake: Arc<FakeBox>, limits: Limits) -> AdminServer {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    admin::spawn_with(listen, TOKEN.into(), fake, limits).expect("admin server starts")
}

fn start_default() -> (AdminServer, Arc<FakeBox>) {
    let fake = Arc::new(FakeBox::default());
    (start(fake.clone(), Limits::default()), fake)
}

/// Sends `bytes` as is and returns the whole answer as text.
fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn get(server: &AdminServer, method: &str, path: &str) -> (u16, String) {
    admin::request(server.local_addr(), TOKEN, method, path).expect("admin request")
}

// ---- Authentication (RFC 6750) ----

#[test]
fn request_without_token_is_401_with_a_bearer_challenge() {
    let (server, _) = start_default();
    let answer = raw(
        server.local_addr(),
        b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(status_of(&answer), 401, "{answer}");
    // RFC 6750 §3: "If the protected resource request does not include
    // authentication credentials ... the resource server SHOULD NOT include
    // an error code".
    assert_eq!(
        header(&answer, "WWW-Authenticate"),
        Some("Bearer realm=\"baton\"")
    );
    assert!(
        !answer.contains("box2"),
        "no status leaks without a token: {answer}"
    );
}

#[test]
fn request_with_a_wrong_token_is_401_invalid_token() {
    let (server, fake) = start_default();
    let (code, body) =
        admin::request(server.local_addr(), "s3cret-tokem", "POST", "/drain").unwrap();
    assert_eq!(code, 401, "{body}");
    let answer = raw(
        server.local_addr(),
        b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n",
    );
    assert_eq!(status_of(&answer), 401);
    assert_eq!(
        header(&answer, "WWW-Authenticate"),
        Some("Bearer realm=\"baton\", error=\"invalid_token\"")
    );
    assert!(
        fake.calls().is_empty(),
        "a refused drain never reaches the box: {:?}",
        fake.calls()
    );
}

#[test]
fn another_auth_scheme_is_401_and_the_bearer_scheme_is_case_insensitive() {
    let (server, _) = start_default();
    let basic = raw(
        server.local_addr(),
        b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Basic czNjcmV0LXRva2Vu\r\n\r\n",
    );
    assert_eq!(status_of(&basic), 401);
    let lower = raw(
        server.local_addr(),
        b"GET /status HTTP/1.1\r\nHost: x\r\nauthorization: bearer s3cret-token\r\n\r\n",
    );
    assert_eq!(status_of(&lower), 200, "{lower}");
}

#[test]
fn request_with_the_token_is_200() {
    let (server, _) = start_default();
    let (code, _) = get(&server, "GET", "/status");
    assert_eq!(code, 200);
}

// ---- Endpoints ----

#[test]
fn status_is_json_with_box_peers_workers_and_cache() {
    let (server, _) = start_default();
    let answer = raw(
        server.local_addr(),
        format!("GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(status_of(&answer), 200);
    assert_eq!(header(&answer, "Content-Type"), Some("application/json"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(
        body,
        concat!(
            r#"{"box_id":2,"name":"box2","epoch":7,"state":"alive","uptime_ms":12345,"connections":42,"checkpoints":9001,"#,
            r#""workers":[{"index":0,"connections":20},{"index":1,"connections":22}],"#,
            r#""peers":[{"id":1,"state":"alive","heartbeat_age_ms":12,"connections":5,"load":{"bytes_per_sec":1000,"busy_ppm":250000}},"#,
            r#"{"id":3,"state":"never started","heartbeat_age_ms":null,"connections":0,"load":null}],"#,
            r#""cache":{"hits":100,"misses":3,"objects":4,"bytes":1048576,"bytes_served":5242880},"load":null}"#
        )
    );
    assert_eq!(
        header(&answer, "Content-Length"),
        Some(body.len().to_string().as_str())
    );
}

/// One sample line of the text format: `name{k="v",...} value`.
fn parse_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("no value: {line}"));
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("value is not a float: {line}"));
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels: {line}"));
            let labels = inner
                .split(',')
                .map(|pair| {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("label without =: {line}"));
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or_else(|| panic!("unquoted: {line}"));
                    (k.to_string(), v.to_string())
                })
                .collect();
            (name, labels)
        }
    };
    assert!(
        admin::prometheus::valid_metric_name(name),
        "bad metric name in {line}"
    );
    (name.to_string(), labels, value)
}

#[test]
fn metrics_are_prometheus_text_with_help_and_type_for_each_family() {
    let (server, _) = start_default();
    let answer = raw(
        server.local_addr(),
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(status_of(&answer), 200);
    assert_eq!(
        header(&answer, "Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    assert!(body.ends_with('\n'), "the format ends every line with \\n");

    let mut typed: Vec<(String, String)> = Vec::new();
    let mut helped: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.push(rest.split(' ').next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
            assert!(
                !typed.iter().any(|(n, _)| n == name),
                "TYPE given twice for {name}"
            );
            typed.push((name.to_string(), kind.to_string()));
        } else {
            let (name, labels, value) = parse_sample(line);
            // A family's samples follow its TYPE line, together.
            assert_eq!(
                typed.last().map(|(n, _)| n.as_str()),
                Some(name.as_str()),
                "{name} outside its family"
            );
            samples.push((name, labels, value));
        }
    }
    assert_eq!(
        helped,
        typed.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "HELP and TYPE for each family"
    );
    let value = |name: &str, label: Option<(&str, &str)>| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name && label.is_none_or(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| *v)
    };
    assert_eq!(value("baton_cache_hits_total", None), Some(100.0));
    assert_eq!(value("baton_cache_misses_total", None), Some(3.0));
    assert_eq!(value("baton_bytes_served_total", None), Some(5242880.0));
    assert_eq!(value("baton_connections", None), Some(42.0));
    assert_eq!(
        value("baton_errors_total", Some(("kind", "bad_request"))),
        Some(2.0)
    );
    assert_eq!(
        value("baton_errors_total", Some(("kind", "header_too_large"))),
        Some(1.0)
    );
    assert_eq!(value("baton_dataplane_rx_frames_total", None), Some(1000.0));
    assert_eq!(value("baton_checkpoints_total", None), Some(9001.0));
    assert_eq!(value("baton_takeovers_total", None), Some(0.0));
    assert!(typed.contains(&("baton_connections".into(), "gauge".into())));
    assert!(typed.contains(&("baton_cache_hits_total".into(), "counter".into())));
    // The admin server's own counters ride along; this scrape is request 1.
    assert_eq!(
        value("baton_admin_errors_total", Some(("kind", "unauthorized"))),
        Some(0.0)
    );
    assert_eq!(value("baton_admin_connections", None), Some(1.0));
}

#[test]
fn purge_is_routed_to_the_box_and_says_whether_the_object_was_cached() {
    let (server, fake) = start_default();
    let (code, body) = get(&server, "POST", "/purge?url=%2F1M.bin");
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"url":"/1M.bin","purged":true}"#)
    );
    let (code, body) = get(&server, "POST", "/purge?url=/never%20cached.bin");
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"url":"/never cached.bin","purged":false}"#)
    );
    assert_eq!(
        fake.calls(),
        vec!["purge /1M.bin", "purge /never cached.bin"]
    );
}

#[test]
fn delete_of_a_cache_path_purges_that_url() {
    let (server, fake) = start_default();
    let (code, body) = get(&server, "DELETE", "/cache/1M.bin");
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"url":"/1M.bin","purged":true}"#)
    );
    assert_eq!(fake.calls(), vec!["purge /1M.bin"]);
}

#[test]
fn purge_without_a_path_is_400_and_reaches_no_box() {
    let (server, fake) = start_default();
    assert_eq!(get(&server, "POST", "/purge").0, 400);
    assert_eq!(get(&server, "POST", "/purge?url=1M.bin").0, 400);
    assert_eq!(get(&server, "POST", "/purge?url=%zz").0, 400);
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[test]
fn drain_is_routed_to_the_box_and_accepted_with_202() {
    let (server, fake) = start_default();
    let (code, body) = get(&server, "POST", "/drain");
    assert_eq!(
        (code, body.as_str()),
        (
            202,
            r#"{"accepted":true,"message":"moving 42 connections"}"#
        )
    );
    assert_eq!(fake.calls(), vec!["drain"]);
}

#[test]
fn migrate_passes_target_and_count_to_the_box() {
    let (server, fake) = start_default();
    let (code, body) = get(&server, "POST", "/migrate?to=3&count=25");
    assert_eq!(
        (code, body.as_str()),
        (
            202,
            r#"{"accepted":true,"message":"moving 25 connections to box 3"}"#
        )
    );
    assert_eq!(fake.calls(), vec!["migrate 3 25"]);
}

#[test]
fn migrate_without_a_valid_target_or_count_is_400() {
    let (server, fake) = start_default();
    for path in [
        "/migrate",
        "/migrate?to=3",
        "/migrate?count=2",
        "/migrate?to=70000&count=2",
        "/migrate?to=3&count=0",
        "/migrate?to=3&count=-1",
    ] {
        assert_eq!(get(&server, "POST", path).0, 400, "{path}");
    }
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[test]
fn refused_drain_and_migrate_are_409_with_the_reason() {
    let fake = Arc::new(FakeBox {
        refuse_moves: true,
        ..FakeBox::default()
    });
    let server = start(fake.clone(), Limits::default());
    let (code, body) = get(&server, "POST", "/drain");
    assert_eq!(
        (code, body.as_str()),
        (409, r#"{"accepted":false,"error":"no other box is alive"}"#)
    );
    let (code, body) = get(&server, "POST", "/migrate?to=1&count=1");
    assert_eq!(
        (code, body.as_str()),
        (409, r#"{"accepted":false,"error":"box 1 is dead"}"#)
    );
}

#[test]
fn wrong_method_is_405_with_allow_and_unknown_path_is_404() {
    let (server, fake) = start_default();
    let answer = raw(
        server.local_addr(),
        format!("GET /drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(status_of(&answer), 405);
    assert_eq!(header(&answer, "Allow"), Some("POST"));
    assert_eq!(get(&server, "POST", "/status").0, 405);
    assert_eq!(get(&server, "GET", "/nothing-here").0, 404);
    assert!(
        fake.calls().is_empty(),
        "a GET never drains: {:?}",
        fake.calls()
    );
}

#[test]
fn http_1_0_without_host_and_a_post_with_a_body_are_answered() {
    let (server, fake) = start_default();
    let answer = raw(
        server.local_addr(),
        format!("GET /status HTTP/1.0\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").as_bytes(),
    );
    assert_eq!(status_of(&answer), 200, "{answer}");
    // The body is ignored, but read, so the answer is not lost to an RST.
    let answer = raw(
        server.local_addr(),
        format!("POST /drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 11\r\n\r\nhello world").as_bytes(),
    );
    assert_eq!(status_of(&answer), 202, "{answer}");
    assert_eq!(fake.calls(), vec!["drain"]);
}

#[test]
fn a_request_trickling_in_byte_by_byte_within_the_timeout_is_answered() {
    let (server, _) = start_default();
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request =
        format!("GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    for byte in request.as_bytes() {
        s.write_all(std::slice::from_ref(byte)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(status_of(&out), 200, "{out}");
    assert!(out.contains("\"name\":\"box2\""), "{out}");
}

// ---- Limits ----

#[test]
fn oversized_request_head_is_431() {
    let (server, _) = start_default();
    let big = format!(
        "GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let answer = raw(server.local_addr(), big.as_bytes());
    assert_eq!(status_of(&answer), 431, "{answer}");
    // A head of just under 8 KiB is fine.
    let fits = format!(
        "GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(7 * 1024)
    );
    assert_eq!(status_of(&raw(server.local_addr(), fits.as_bytes())), 200);
    assert_eq!(server.stats().header_too_large, 1);
}

#[test]
fn garbage_is_400_and_the_server_keeps_serving() {
    let (server, _) = start_default();
    // The first bytes of a TLS ClientHello.
    let answer = raw(
        server.local_addr(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    );
    assert_eq!(status_of(&answer), 400, "{answer}");
    let answer = raw(
        server.local_addr(),
        b"GET /status HTTP/1.1\r\nAuthorization: Bearer s3cret-token\r\n\r\n",
    );
    assert_eq!(
        status_of(&answer),
        400,
        "HTTP/1.1 without Host (RFC 9112 3.2): {answer}"
    );
    assert_eq!(get(&server, "GET", "/status").0, 200);
    assert_eq!(server.stats().bad_request, 2);
}

#[test]
fn request_head_not_complete_in_time_is_408() {
    let fake = Arc::new(FakeBox::default());
    let server = start(
        fake,
        Limits {
            read_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
    );
    // Before the connection exists, so before the server's timer starts.
    let started = Instant::now();
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A slow client: half a request line, then nothing.
    s.write_all(b"GET /sta").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(status_of(&out), 408, "{out}");
    // The timeout counter, not a stopwatch, says why it was answered; the
    // client's 5 s read timeout only stops a hung server. A timer never
    // fires early, so the lower bound cannot flake: it proves the 408
    // waited for the configured timeout rather than judging half a line.
    assert_eq!(server.stats().timeout, 1);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "answered after {waited:?}, before the 300 ms read timeout"
    );
}

#[test]
fn seventeenth_connection_is_503_until_one_closes() {
    let (server, _) = start_default();
    let held: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    // Connections are counted by the accept thread; give it time to see all 16.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.stats().connections < 16 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.stats().connections, 16);
    let answer = raw(
        server.local_addr(),
        format!("GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(status_of(&answer), 503, "{answer}");
    assert_eq!(header(&answer, "Retry-After"), Some("1"));
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.stats().connections > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(get(&server, "GET", "/status").0, 200);
    assert_eq!(server.stats().overloaded, 1);
}

#[test]
fn errors_are_counted_by_kind_in_the_admin_metrics() {
    let (server, _) = start_default();
    raw(
        server.local_addr(),
        b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    raw(
        server.local_addr(),
        b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    raw(server.local_addr(), b"not http at all\r\n\r\n");
    get(&server, "GET", "/nowhere");
    let (_, body) = get(&server, "GET", "/metrics");
    let line = |needle: &str| {
        body.lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no {needle} in\n{body}"))
            .to_string()
    };
    assert_eq!(
        line("baton_admin_errors_total{kind=\"unauthorized\"}"),
        "baton_admin_errors_total{kind=\"unauthorized\"} 2"
    );
    assert_eq!(
        line("baton_admin_errors_total{kind=\"bad_request\"}"),
        "baton_admin_errors_total{kind=\"bad_request\"} 1"
    );
    assert_eq!(
        line("baton_admin_errors_total{kind=\"not_found\"}"),
        "baton_admin_errors_total{kind=\"not_found\"} 1"
    );
    // This scrape is answered after the metrics are taken: 4 before it.
    assert_eq!(
        line("baton_admin_requests_total"),
        "baton_admin_requests_total 4"
    );
}

// ---- Lifecycle and the client ----

struct Panicking;

impl AdminSource for Panicking {
    fn status(&self) -> StatusReport {
        panic!("the box is confused")
    }
    fn metrics(&self) -> Vec<Metric> {
        Vec::new()
    }
    fn purge(&self, _: &str) -> bool {
        false
    }
    fn drain(&self) -> Result<String, String> {
        Ok(String::new())
    }
    fn migrate(&self, _: u16, _: usize) -> Result<String, String> {
        Ok(String::new())
    }
}

#[test]
fn a_panicking_box_is_500_and_the_server_keeps_serving() {
    let server = admin::spawn(
        "127.0.0.1:0".parse().unwrap(),
        TOKEN.into(),
        Arc::new(Panicking),
    )
    .unwrap();
    assert_eq!(get(&server, "GET", "/status").0, 500);
    assert_eq!(get(&server, "GET", "/metrics").0, 200);
    assert_eq!(server.stats().internal, 1);
}

#[test]
fn an_empty_token_is_refused_at_start() {
    let err = admin::spawn(
        "127.0.0.1:0".parse().unwrap(),
        String::new(),
        Arc::new(FakeBox::default()),
    )
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn shutdown_closes_the_listening_socket() {
    let (server, _) = start_default();
    let addr = server.local_addr();
    assert_eq!(get(&server, "GET", "/status").0, 200);
    server.shutdown();
    match admin::request(addr, TOKEN, "GET", "/status") {
        Err(AdminError::Connect { .. }) => {}
        other => panic!("expected a refused connection after shutdown, got {other:?}"),
    }
}

#[test]
fn client_refuses_to_send_a_path_with_spaces_or_line_breaks() {
    let (server, fake) = start_default();
    for path in ["/purge?url=/a b", "/drain\r\nX: y", "drain"] {
        assert!(
            matches!(
                admin::request(server.local_addr(), TOKEN, "POST", path),
                Err(AdminError::BadRequest(_))
            ),
            "{path:?}"
        );
    }
    assert!(fake.calls().is_empty());
}
