//! Suite https (issue 14): Baton's HTTPS next to nginx with TLS on the same
//! certificate, alternated in rounds: 1K keep-alive requests per second,
//! 100M throughput on one connection, and full handshakes per second (a
//! new connection and one 1K request each, no resumption). Needs the lab
//! up with `--tls` ([`super::run`] asks for it when this suite is chosen).
use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::json;

use crate::harness::report::{md_rows, Row};
use crate::harness::stats::LoadSummary;
use crate::suites::bench::{progress, Bench, NGINX_PLAIN};
use crate::suites::nginx::Serve;

/// The name every lab certificate carries, so one check fits both servers.
const NAME: &str = "lab.baton.test";

impl Bench {
    pub(crate) fn https(&mut self) -> Result<()> {
        progress(
            "suite https: 1K req/s, 100M throughput and handshakes/s, Baton vs nginx with TLS",
        );
        let quick = self.args.quick;
        let nginx = self.start_nginx("box2", &[(NGINX_PLAIN, Serve::Tls)], 1)?;
        let pinned = self.pin_for_rates(Some(nginx));
        let ca = self.lab.state_dir().join("ca.pem").display().to_string();
        let tls = |extra: &[&str]| -> Vec<String> {
            ["--cacert", &ca, "--server-name", NAME]
                .iter()
                .chain(extra)
                .map(|s| s.to_string())
                .collect()
        };
        let targets = [("baton", "198.18.0.11"), ("nginx", NGINX_PLAIN)];
        for (name, ip) in targets {
            for obj in ["1K.bin", "100M.bin"] {
                self.load(
                    &format!("warm-tls-{name}-{obj}"),
                    &format!("https://{ip}/{obj}"),
                    &tls(&["--timeout-secs", "60"]),
                )?;
            }
        }
        let conns: &[u64] = if quick { &[1, 64] } else { &[1, 64, 256] };
        let rounds = self.args.rounds.unwrap_or(if quick { 1 } else { 2 });
        let secs = if quick { 2 } else { 5 };
        let handshakes = if quick { 500 } else { 3000 };
        let mut rps: BTreeMap<(&str, u64), Vec<LoadSummary>> = BTreeMap::new();
        let mut mbps: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut hps: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for round in 1..=rounds {
            for &c in conns {
                for (name, ip) in targets {
                    let c_s = c.to_string();
                    let secs_s = secs.to_string();
                    let s = self.load(
                        &format!("tls-rps-{name}-c{c}-r{round}"),
                        &format!("https://{ip}/1K.bin"),
                        &tls(&[
                            "--connections",
                            &c_s,
                            "--requests",
                            "0",
                            "--hold-secs",
                            &secs_s,
                        ]),
                    )?;
                    rps.entry((name, c)).or_default().push(s);
                }
            }
            for (name, ip) in targets {
                let reqs = if quick { "1" } else { "3" };
                let s = self.load(
                    &format!("tls-mbps-{name}-r{round}"),
                    &format!("https://{ip}/100M.bin"),
                    &tls(&["--requests", reqs, "--timeout-secs", "120"]),
                )?;
                mbps.entry(name)
                    .or_default()
                    .push(s.bytes as f64 / s.seconds / 1e6);
                // Handshakes: each connection is a full handshake and one
                // request; 32 at a time, so the server's CPU is the limit.
                let n = handshakes.to_string();
                let s = self.load(
                    &format!("tls-handshakes-{name}-r{round}"),
                    &format!("https://{ip}/1K.bin"),
                    &tls(&[
                        "--connections",
                        &n,
                        "--connect-burst",
                        "32",
                        "--timeout-secs",
                        "120",
                    ]),
                )?;
                hps.entry(name)
                    .or_default()
                    .push(s.requests_ok as f64 / s.seconds);
            }
        }
        self.unpin(Some(nginx));
        self.stop_nginx("box2", &[NGINX_PLAIN]);

        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let mut rows = Vec::new();
        for &c in conns {
            let r = |name: &str| {
                let v = rps.get(&(name, c)).cloned().unwrap_or_default();
                (
                    mean(&v.iter().map(|s| s.requests_per_s).collect::<Vec<_>>()),
                    v.iter().map(|s| s.errors).sum::<u64>(),
                )
            };
            let ((rb, eb), (rn, en)) = (r("baton"), r("nginx"));
            rows.push(
                Row::new()
                    .value("connections", c)
                    .text(c.to_string())
                    .num("baton_rps", rb, 0)
                    .num("nginx_rps", rn, 0)
                    .num("baton_over_nginx", rb / rn.max(1e-9), 2)
                    .value("errors", json!({"baton": eb, "nginx": en}))
                    .text(format!("{eb} / {en}")),
            );
        }
        let get = |m: &BTreeMap<&str, Vec<f64>>, k: &str| {
            mean(m.get(k).map(Vec::as_slice).unwrap_or(&[]))
        };
        let (mb, mn) = (get(&mbps, "baton"), get(&mbps, "nginx"));
        let (hb, hn) = (get(&hps, "baton"), get(&hps, "nginx"));
        self.results.insert(
            "https".into(),
            json!({"rounds": rounds, "seconds_per_run": secs,
                "request_rate": rows.iter().map(Row::json).collect::<Vec<_>>(),
                "mb_per_s_100M": {"baton": mb, "nginx": mn, "baton_over_nginx": mb / mn.max(1e-9)},
                "handshakes_per_s": {"baton": hb, "nginx": hn, "baton_over_nginx": hb / hn.max(1e-9), "connections": handshakes}}),
        );
        self.md.push_str(&format!("## HTTPS\n\nBaton box1 (198.18.0.11:443, userspace stack, its own record layer) vs nginx 1 worker with TLS in box2's namespace ({NGINX_PLAIN}:443, kernel TCP, OpenSSL), the same lab certificate (`{NAME}`), {rounds} alternated round(s), {secs} s per request-rate run; the client offers TLS 1.3 and 1.2 (rustls). {pinned}\n\n"));
        self.md.push_str(&md_rows(
            &[
                "connections",
                "Baton req/s",
                "nginx req/s",
                "Baton/nginx",
                "errors B/n",
            ],
            &rows,
        ));
        self.md.push_str(&format!(
            "\n100M.bin, one connection: Baton {mb:.1} MB/s, nginx {mn:.1} MB/s (Baton/nginx {:.2}). Full handshakes + one 1K request, {handshakes} connections 32 at a time: Baton {hb:.0}/s, nginx {hn:.0}/s (Baton/nginx {:.2}).\n\n",
            mb / mn.max(1e-9),
            hb / hn.max(1e-9)
        ));
        Ok(())
    }
}
