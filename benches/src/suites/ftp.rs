//! Suite ftp (issue 17): 100M.bin over FTP (curl, EPSV) next to the same
//! object over HTTP from the same box, alternated in rounds; then a few
//! rate-limited FTP and HTTP downloads through box1 while box1 is
//! SIGKILLed, with the longest stall each saw. Transfers are curl's in the
//! client namespace (the same client for both protocols, so the ratio is
//! the box's). Knows the lab only through `Bench` and `baton_lab::driver`.
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::suites::bench::{progress, Bench};

/// What curl's `-w '%{speed_download} %{size_download} %{response_code}'`
/// printed: bytes per second, bytes, the last reply code.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CurlWrite {
    pub(crate) bytes_per_s: f64,
    pub(crate) bytes: u64,
    pub(crate) code: u32,
}

/// Parses the `-w` line (the last non-empty line of curl's stdout).
pub(crate) fn parse_curl_write(out: &str) -> Option<CurlWrite> {
    let line = out.lines().rev().find(|l| !l.trim().is_empty())?;
    let mut f = line.split_whitespace();
    let bytes_per_s: f64 = f.next()?.parse().ok()?;
    // curl prints size_download as an integer, but tolerate "123.000".
    let bytes = f.next()?.parse::<f64>().ok()?;
    let code: u32 = f.next()?.parse().ok()?;
    if f.next().is_some() || !bytes_per_s.is_finite() || bytes < 0.0 {
        return None;
    }
    Some(CurlWrite {
        bytes_per_s,
        bytes: bytes as u64,
        code,
    })
}

/// One download seen through its stdout pipe: bytes, digest, and the
/// longest gap between two reads before and after the kill.
#[derive(Debug, Default)]
struct Watched {
    bytes: u64,
    sha256: String,
    stall_before_ms: f64,
    stall_after_ms: f64,
    ok: bool,
}

const OBJECT: &str = "100M.bin";
const OBJECT_BYTES: u64 = 100 << 20;
const FAILOVER_OBJECT: &str = "50M.bin";
const BOX1: &str = "198.18.0.11";

impl Bench {
    /// One timed curl download of `url` to /dev/null; MB/s.
    fn curl_mbps(&mut self, tag: &str, url: &str) -> Result<f64> {
        let mut argv: Vec<String> = self.pinning.map(|p| p.client_prefix(1)).unwrap_or_default();
        argv.extend(
            [
                "curl",
                "-sS",
                "--max-time",
                "120",
                "-o",
                "/dev/null",
                "-w",
                "%{speed_download} %{size_download} %{response_code}\n",
                url,
            ]
            .map(String::from),
        );
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = self
            .lab
            .exec_cmd("client", &a)
            .output()
            .context("running curl")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let w = parse_curl_write(&text)
            .with_context(|| format!("{tag}: curl printed no -w line: {text}"))?;
        let expect = if url.starts_with("ftp://") { 226 } else { 200 };
        if !out.status.success() || w.code != expect || w.bytes != OBJECT_BYTES {
            let msg = format!(
                "{tag}: curl {} code {} {} bytes: {}",
                out.status,
                w.code,
                w.bytes,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            self.errors.push(msg.clone());
            bail!(msg);
        }
        let mbps = w.bytes_per_s / 1e6;
        progress(format!("  {tag}: {mbps:.1} MB/s"));
        Ok(mbps)
    }

    pub(crate) fn ftp(&mut self) -> Result<()> {
        progress("suite ftp: 100M.bin over FTP (EPSV) vs HTTP from box1; FTP and HTTP across a kill of box1");
        let quick = self.args.quick;
        for b in 1..=3 {
            self.lab.ensure_running(b)?;
        }
        // Warm box1's cache (FTP's RETR reads the same cache as HTTP).
        self.curl_mbps("ftp-warm", &format!("http://{BOX1}/{OBJECT}"))?;
        let pinned = self.pin_for_rates(None);
        let rounds = self.args.rounds.unwrap_or(if quick { 1 } else { 5 });
        let (mut f, mut h) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            // Alternate which goes first, so neither always follows the other.
            let order = if round % 2 == 1 {
                ["ftp", "http"]
            } else {
                ["http", "ftp"]
            };
            for proto in order {
                let v = self.curl_mbps(
                    &format!("{proto}-100M-r{round}"),
                    &format!("{proto}://{BOX1}/{OBJECT}"),
                )?;
                if proto == "ftp" {
                    f.push(v)
                } else {
                    h.push(v)
                }
            }
        }
        self.unpin(None);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let (mf, mh) = (mean(&f), mean(&h));
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.md.push_str(&format!(
            "## FTP (issue 17)\n\n100M.bin from box1 ({BOX1}) with curl in the client namespace, `ftp://` (EPSV, binary) and `http://` alternated, {rounds} round(s), cache warm. {pinned}\n\nFTP {mf:.1} MB/s, HTTP {mh:.1} MB/s, FTP/HTTP {:.2} (runs: FTP {}; HTTP {}).\n\n",
            mf / mh.max(1e-9), list(&f), list(&h)
        ));
        let failover = self.ftp_failover(if quick { 2 } else { 4 })?;
        self.results.insert(
            "ftp".into(),
            json!({"rounds": rounds, "mb_per_s_100M": {"ftp": mf, "http": mh, "ftp_over_http": mf / mh.max(1e-9), "ftp_runs": f, "http_runs": h}, "failover": failover}),
        );
        Ok(())
    }

    /// `n` FTP and `n` HTTP downloads of 50M.bin from box1 at 10 MB/s each,
    /// box1 killed 2 s in; the longest gap between two reads of each.
    fn ftp_failover(&mut self, n: usize) -> Result<serde_json::Value> {
        let want = self.lab.listed_sha256(FAILOVER_OBJECT)?;
        for ip in ["198.18.0.11", "198.18.0.12", "198.18.0.13"] {
            self.curl_fetch_ok(&format!("http://{ip}/{FAILOVER_OBJECT}"))?;
        }
        let kill_at = Instant::now() + Duration::from_secs(2);
        let mut threads = Vec::new();
        for i in 0..2 * n {
            let proto = if i % 2 == 0 { "ftp" } else { "http" };
            let url = format!("{proto}://{BOX1}/{FAILOVER_OBJECT}");
            let mut child = self
                .lab
                .exec_cmd(
                    "client",
                    &[
                        "curl",
                        "-sS",
                        "--max-time",
                        "60",
                        "--limit-rate",
                        "10M",
                        "-o",
                        "-",
                        &url,
                    ],
                )
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .context("spawning curl")?;
            let mut out = child.stdout.take().context("curl stdout")?;
            threads.push((
                proto,
                std::thread::spawn(move || {
                    let mut w = Watched::default();
                    let mut h = Sha256::new();
                    let mut buf = vec![0u8; 256 << 10];
                    let mut last = Instant::now();
                    let mut first = true;
                    while let Ok(k) = out.read(&mut buf) {
                        if k == 0 {
                            break;
                        }
                        let now = Instant::now();
                        // The gap before the first byte is the connect, not a stall.
                        if !first {
                            let gap = now.duration_since(last).as_secs_f64() * 1e3;
                            let slot = if last < kill_at {
                                if now < kill_at {
                                    &mut w.stall_before_ms
                                } else {
                                    &mut w.stall_after_ms
                                }
                            } else {
                                &mut w.stall_after_ms
                            };
                            *slot = slot.max(gap);
                        }
                        first = false;
                        last = now;
                        h.update(&buf[..k]);
                        w.bytes += k as u64;
                    }
                    w.ok = child.wait().map(|s| s.success()).unwrap_or(false);
                    w.sha256 = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
                    w
                }),
            ));
        }
        std::thread::sleep(kill_at.saturating_duration_since(Instant::now()));
        self.kill_box_marked(1)?;
        let mut rows = Vec::new();
        let mut md = String::from(
            "| transfer | bytes | sha256 ok | exit ok | longest gap before kill ms | longest stall across kill ms |\n|---|---|---|---|---|---|\n",
        );
        let mut worst = [("ftp", 0.0f64), ("http", 0.0f64)];
        for (i, (proto, t)) in threads.into_iter().enumerate() {
            let w = t
                .join()
                .map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
            let same = w.sha256 == want;
            if !same || !w.ok {
                self.errors.push(format!(
                    "ftp-failover {proto} #{i}: {} bytes, sha256 {}, exit ok {}",
                    w.bytes,
                    if same { "ok" } else { "WRONG" },
                    w.ok
                ));
            }
            for x in worst.iter_mut().filter(|x| x.0 == proto) {
                x.1 = x.1.max(w.stall_after_ms);
            }
            md.push_str(&format!(
                "| {proto} #{i} | {} | {same} | {} | {:.0} | {:.0} |\n",
                w.bytes, w.ok, w.stall_before_ms, w.stall_after_ms
            ));
            rows.push(json!({"protocol": proto, "bytes": w.bytes, "sha256_ok": same, "exit_ok": w.ok,
                "stall_before_kill_ms": w.stall_before_ms, "stall_across_kill_ms": w.stall_after_ms}));
        }
        self.lab.ensure_running(1)?;
        self.md.push_str(&format!(
            "Failover: {n} FTP and {n} HTTP downloads of {FAILOVER_OBJECT} from box1 at the same time, each `curl --limit-rate 10M`, box1 SIGKILLed 2 s in; the longest gap between two reads of curl's output per transfer. Longest stall: FTP {:.0} ms, HTTP {:.0} ms.\n\n{md}\n",
            worst[0].1, worst[1].1
        ));
        Ok(
            json!({"per_protocol": n, "limit_rate": "10M", "object": FAILOVER_OBJECT,
            "longest_stall_ms": {"ftp": worst[0].1, "http": worst[1].1}, "transfers": rows}),
        )
    }

    /// Fetches `url` once to /dev/null (to warm a cache); fails on error.
    fn curl_fetch_ok(&self, url: &str) -> Result<()> {
        let out = self.lab.exec_output(
            "client",
            &["curl", "-sSf", "--max-time", "60", "-o", "/dev/null", url],
        )?;
        if !out.status.success() {
            bail!(
                "warming {url}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_curl_write_line() {
        let w = parse_curl_write("104857600.000 104857600 226\n").unwrap();
        assert_eq!(w.bytes, 104_857_600);
        assert_eq!(w.code, 226);
        assert!((w.bytes_per_s - 104_857_600.0).abs() < 1e-6);
        // Newer curl prints speed as an integer; stray output before it.
        let w = parse_curl_write("junk\n98765432 104857600 200\n\n").unwrap();
        assert_eq!((w.bytes, w.code), (104_857_600, 200));
    }

    #[test]
    fn rejects_broken_curl_write_lines() {
        assert_eq!(parse_curl_write(""), None);
        assert_eq!(parse_curl_write("fast 10 226"), None);
        assert_eq!(parse_curl_write("1.0 10"), None);
        assert_eq!(parse_curl_write("1.0 10 226 extra"), None);
        assert_eq!(parse_curl_write("inf 10 226"), None);
    }
}
