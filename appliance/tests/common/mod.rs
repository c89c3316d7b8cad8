//! The harness every lab end-to-end test shares: root check, a guard that
//! serializes lab tests (flock) and removes the lab whatever happened, curl
//! and capture helpers. The lab itself is driven through `baton_lab`'s one
//! driver, which runs this build's `baton lab …` command line.
#![allow(dead_code)]
use std::fs;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use baton_lab::curl::{box_url, Download as CurlDownload};
use baton_lab::driver::Lab;
use sha2::{Digest, Sha256};

mod client;
mod pipelined;
mod proof;
#[allow(unused_imports)]
pub use client::*;
#[allow(unused_imports)]
pub use pipelined::*;
#[allow(unused_imports)]
pub use proof::*;

pub const BATON: &str = env!("CARGO_BIN_EXE_baton");

pub fn require_root() {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the lab tests need root (network namespaces, raw sockets): run them as root, e.g. `sudo -E cargo test -p baton --test lab`"
    );
}

/// Runs `baton lab --prefix P ARGS…`.
pub fn lab(prefix: &str, args: &[&str]) -> Output {
    Lab::attach(std::path::Path::new(BATON), prefix)
        .output(args)
        .expect("cannot run the baton binary")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "command failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Our namespaces, from `ip netns list`.
pub fn namespaces_of(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| ns.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect()
}

/// Holds the test lock; on drop, removes the lab whatever happened.
pub struct LabGuard {
    pub prefix: String,
    /// The driver, not owning the lab: the guard takes it down itself, so
    /// that a failing `down` is reported.
    pub driver: Lab,
    _lock: fs::File,
}

impl LabGuard {
    /// Takes the lock and clears any lab of this prefix that a killed
    /// earlier run left, without building anything.
    pub fn new(prefix: &str) -> LabGuard {
        require_root();
        fs::create_dir_all("/run/baton-lab").expect("create /run/baton-lab");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/run/baton-lab/.test.lock")
            .expect("open the test lock");
        // SAFETY: flock on a descriptor we own; blocks until the lab tests
        // before us are done.
        let r = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
        ok(lab(prefix, &["down"]));
        LabGuard {
            prefix: prefix.to_string(),
            driver: Lab::attach(std::path::Path::new(BATON), prefix),
            _lock: lock,
        }
    }

    /// As `new`, then `lab up ARGS…`.
    pub fn up(prefix: &str, args: &[&str]) -> LabGuard {
        let g = LabGuard::new(prefix);
        let mut all = vec!["up"];
        all.extend_from_slice(args);
        ok(lab(prefix, &all));
        g
    }

    pub fn lab(&self, args: &[&str]) -> Output {
        self.driver
            .output(args)
            .expect("cannot run the baton binary")
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.driver.file(name)
    }

    /// `lab exec NODE -- CMD…`.
    pub fn exec(&self, node: &str, cmd: &[&str]) -> Output {
        let mut all = vec!["exec", node, "--"];
        all.extend_from_slice(cmd);
        self.lab(&all)
    }

    /// The sha256 that objects.sha256 lists for `name`.
    pub fn listed_sha(&self, name: &str) -> String {
        self.driver
            .listed_sha256(name)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failed test: what the boxes said goes into the test's
            // output (CI shows it), since the lab is removed next.
            for n in 1..=9 {
                let log = self.driver.box_log(n);
                if log.is_empty() {
                    continue;
                }
                let notable: Vec<&str> = log
                    .lines()
                    .filter(|l| {
                        l.contains("WARN")
                            || l.contains("ERROR")
                            || l.contains("takeover")
                            || l.contains("not ready")
                            || l.contains("declared")
                            || l.contains("not resumed")
                    })
                    .collect();
                // BATON_KEEP_FAILED_LOGS=DIR keeps the whole logs of a
                // failed test, for what the last 60 lines do not show.
                if let Some(dir) = std::env::var_os("BATON_KEEP_FAILED_LOGS") {
                    let dir = PathBuf::from(dir).join(&self.prefix);
                    let _ = fs::create_dir_all(&dir);
                    let _ = fs::write(dir.join(format!("box{n}.log")), &log);
                }
                let skip = notable.len().saturating_sub(60);
                eprintln!("---- box{n}.log: warnings and takeovers (last 60) ----");
                for l in &notable[skip..] {
                    eprintln!("{l}");
                }
            }
        }
        let o = lab(&self.prefix, &["down"]);
        if !o.status.success() {
            eprintln!("lab down --prefix {} failed: {}", self.prefix, text(&o));
        }
    }
}

pub fn sha256_file(path: &PathBuf) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    sha256_hex(&bytes)
}

/// Fetches `http://198.18.0.(10+n){path}` from the client namespace with
/// curl; returns (status, response headers, body).
pub fn curl_box(g: &LabGuard, n: u8, path: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let body = g.file("client.body");
    let head = g.file("client.head");
    let _ = fs::remove_file(&body);
    let _ = fs::remove_file(&head);
    let (b, h) = (body.display().to_string(), head.display().to_string());
    let url = box_url(n, path);
    let mut args = vec![
        "curl",
        "-sS",
        "--max-time",
        "120",
        "-o",
        &b,
        "-D",
        &h,
        "-w",
        "%{http_code}",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let out = ok(g.exec("client", &args));
    let code = out
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl printed {out:?}"));
    let headers = fs::read_to_string(&head).unwrap_or_default();
    (code, headers, fs::read(&body).unwrap_or_default())
}

/// Downloads `name` from box `n` and asserts the bytes are the origin's.
#[track_caller]
pub fn download_identical(g: &LabGuard, n: u8, name: &str) {
    let (code, _, body) = curl_box(g, n, &format!("/{name}"), &[]);
    assert_eq!(code, 200, "GET /{name} from box{n}");
    assert_eq!(
        sha256_hex(&body),
        g.listed_sha(name),
        "{name}: bytes differ from the origin's ({} bytes received)",
        body.len()
    );
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn header(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// A tcpdump in the client namespace writing what `filter` matches on
/// `eth0` to a file; `start` returns once tcpdump says it listens, so
/// nothing sent after it is missed.
pub struct Capture {
    child: Child,
    file: std::path::PathBuf,
}

impl Capture {
    pub fn start(g: &LabGuard, name: &str, filter: &str) -> Capture {
        use std::io::BufRead;
        assert!(
            Command::new("tcpdump").arg("--version").output().is_ok(),
            "tcpdump is not installed: apt-get install tcpdump (scripts/test does)"
        );
        let file = g.file(name);
        let _ = fs::remove_file(&file);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &format!("{}-client", g.prefix)])
            // --immediate-mode: each packet is handed over at once, not
            // when libpcap's ring block fills or times out (1 s), which
            // lost a run's last packets at SIGINT.
            .args([
                "tcpdump",
                "-i",
                "eth0",
                "-n",
                "-U",
                "--immediate-mode",
                "-w",
            ])
            .arg(&file)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump is not installed: apt-get install tcpdump (scripts/test does)");
        // "listening on eth0, ..." comes once the interface is open and
        // the filter set; the rest of stderr is drained so tcpdump never
        // blocks on it.
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("tcpdump did not start listening within 10 s");
        Capture { child, file }
    }

    /// Stops the capture (after `linger`, for frames still in flight) and
    /// returns `tcpdump -n -r` of the file, a line a packet.
    pub fn finish(mut self, linger: Duration) -> Vec<String> {
        sleep(linger);
        // SAFETY: SIGINT to our own child, so tcpdump flushes its file.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        let out = Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(&self.file)
            .output()
            .expect("tcpdump -r");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A capture of every RST that reaches the client from anyone but itself,
/// and of the client's FINs (an RST to a connection the client had closed
/// broke nothing), over IPv4 and IPv6 (TCP right after the IPv6 header:
/// libpcap's `tcp[]` is IPv4's only, so its flags are `ip6[40 + 13]`).
pub struct RstCapture(Capture);

impl RstCapture {
    pub fn start(g: &LabGuard) -> RstCapture {
        RstCapture(Capture::start(
            g,
            "rst.pcap",
            "((tcp[tcpflags] & tcp-rst) != 0 and not src host 198.18.0.100) \
             or ((tcp[tcpflags] & tcp-fin) != 0 and src host 198.18.0.100) \
             or (ip6 and ip6[6] == 6 and (ip6[53] & 4) != 0 and not src host 2001:2:0:18::100) \
             or (ip6 and ip6[6] == 6 and (ip6[53] & 1) != 0 and src host 2001:2:0:18::100)",
        ))
    }

    /// Stops the capture and fails the test if any RST reached a
    /// connection the client was still using, or if the capture saw no
    /// client FIN: every test closes at least one connection, so a capture
    /// that saw none was dead, not a clean wire.
    #[track_caller]
    pub fn assert_none(self) {
        self.assert_none_with_fins(1);
    }

    /// `assert_none`, requiring at least `fins` client FINs (one a
    /// connection the client closed).
    #[track_caller]
    pub fn assert_none_with_fins(self, fins: usize) {
        let seen = self.finish_counted();
        assert!(
            seen.resets.is_empty(),
            "RSTs reached the client:\n{}",
            seen.resets.join("\n")
        );
        assert!(
            seen.client_fins >= fins,
            "the RST capture saw {} client FIN(s), expected at least {fins}: the capture did not work, \
             so no RST is not proof of a clean wire",
            seen.client_fins
        );
    }

    /// Stops the capture and returns the RSTs that reached a connection
    /// the client had not closed yet, one line each.
    pub fn finish(self) -> Vec<String> {
        self.finish_counted().resets
    }

    /// Stops the capture: the RSTs that reached a connection the client had
    /// not closed yet, and how many connections the client closed (FIN).
    /// `assert_none_with_fins` counting the families apart: at least `v4`
    /// client FINs over IPv4 and `v6` over IPv6.
    #[allow(dead_code)]
    pub fn assert_none_with_fins_by_family(self, v4: usize, v6: usize) {
        let seen = self.finish_counted();
        assert!(
            seen.resets.is_empty(),
            "RSTs reached the client:\n{}",
            seen.resets.join("\n")
        );
        let fins4 = seen.client_fins - seen.client_fins_v6;
        assert!(
            fins4 >= v4 && seen.client_fins_v6 >= v6,
            "the capture saw {fins4} IPv4 and {} IPv6 client FINs, expected at least {v4} and {v6}: \
             no RST is no proof of a clean wire",
            seen.client_fins_v6
        );
    }

    pub fn finish_counted(self) -> RstSeen {
        let mut closed_by_client = std::collections::HashSet::new();
        // Client endpoints (address.port), not lines: a FIN retransmitted
        // after a takeover is one connection closed.
        let mut resets = Vec::new();
        for line in self.0.finish(Duration::from_millis(300)) {
            // "TIME IP SRC.PORT > DST.PORT: Flags [..], ..."
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(src), Some(dst)) = (fields.get(2), fields.get(4)) else {
                continue;
            };
            let endpoint = |addr: &str| addr.trim_end_matches(':').to_string();
            if src.starts_with("198.18.0.100.") || src.starts_with("2001:2:0:18::100.") {
                closed_by_client.insert(endpoint(src));
            } else if !closed_by_client.contains(&endpoint(dst)) {
                resets.push(line.clone());
            }
        }
        let closed_v6 = closed_by_client
            .iter()
            .filter(|e| e.starts_with("2001:"))
            .count();
        RstSeen {
            resets,
            client_fins: closed_by_client.len(),
            client_fins_v6: closed_v6,
        }
    }
}

/// What an `RstCapture` saw.
pub struct RstSeen {
    /// RSTs to connections the client had not closed, one line each.
    pub resets: Vec<String>,
    /// Connections (client address and port) the client closed with a FIN.
    pub client_fins: usize,
    /// Connections the client closed over IPv6 (proof the capture's IPv6
    /// half saw traffic).
    #[allow(dead_code)]
    pub client_fins_v6: usize,
}

/// One curl download running in the client namespace.
pub struct Download {
    pub child: Child,
    pub out: std::path::PathBuf,
    pub url: String,
}

pub fn start_download(g: &LabGuard, i: usize, box_n: usize, object: &str, rate: &str) -> Download {
    start_download_url(g, i, box_url(box_n as u8, &format!("/{object}")), rate)
}

/// `start_download` of any URL (an IPv6 one: `http://[2001:2:0:18::11]/…`).
pub fn start_download_url(g: &LabGuard, i: usize, url: String, rate: &str) -> Download {
    start_download_with(g, i, url, rate, &[])
}

/// `start_download_url` with more curl options (`--cacert`, a TLS
/// version, `-H 'Connection: close'`).
pub fn start_download_with(
    g: &LabGuard,
    i: usize,
    url: String,
    rate: &str,
    extra: &[&str],
) -> Download {
    let dir = g.file("dl");
    fs::create_dir_all(&dir).expect("download dir");
    let out = dir.join(format!("{i}"));
    let out_str = out.display().to_string();
    let child = g
        .driver
        .client_download(
            &CurlDownload::new(&url, &out_str)
                .limit_rate(rate)
                .with_args(extra),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl");
    Download { child, out, url }
}

/// Waits for every download; asserts exit 0 and the origin's bytes.
#[track_caller]
pub fn assert_all_identical(g: &LabGuard, downloads: Vec<Download>, object: &str) {
    let expected = g.listed_sha(object);
    let total = downloads.len();
    let mut failures = Vec::new();
    for d in downloads {
        let out = d.child.wait_with_output().expect("curl wait");
        if !out.status.success() {
            failures.push(format!(
                "{}: curl {} {}",
                d.url,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        }
        let got = sha256_file(&d.out);
        if got != expected {
            failures.push(format!("{}: sha256 {got} (expected {expected})", d.url));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} downloads failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Waits until `since + at`, then SIGKILLs box `n`.
pub fn kill_at(g: &LabGuard, since: Instant, at: Duration, n: usize) {
    if let Some(left) = (since + at).checked_duration_since(Instant::now()) {
        sleep(left);
    }
    ok(g.lab(&["kill", &format!("box{n}")]));
}

/// Fills the caches of boxes 1..=`boxes` with `object`, one full download
/// from each, so that what a test measures next is not the origin fetch.
#[track_caller]
pub fn warm_caches(g: &LabGuard, boxes: usize, object: &str) {
    for n in 1..=boxes {
        assert_all_identical(
            g,
            vec![start_download(g, 1000 + n, n, object, "200M")],
            object,
        );
    }
}
