//! Suite throughput: request rates and 100M transfer rates of Baton,
//! nginx and nginx as a caching proxy, alternated in rounds.
use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::json;

use crate::harness::report::{line_plot, md_rows, Row, Series};
use crate::harness::stats::LoadSummary;
use crate::suites::bench::{progress, Bench, NGINX_PLAIN, NGINX_PROXY};
use crate::suites::nginx::Serve;

impl Bench {
    pub(crate) fn throughput(&mut self) -> Result<()> {
        progress(
            "suite throughput: 1K req/s and 100M throughput, Baton vs nginx (plain, caching proxy)",
        );
        let quick = self.args.quick;
        let nginx = self.start_nginx(
            "box2",
            &[(NGINX_PLAIN, Serve::Plain), (NGINX_PROXY, Serve::Proxy)],
            1,
        )?;
        let pinned = self.pin_for_rates(Some(nginx));
        let targets = [
            ("baton", "198.18.0.11"),
            ("nginx", NGINX_PLAIN),
            ("nginx-proxy", NGINX_PROXY),
        ];
        // Warm every cache (Baton's and nginx's proxy_cache) before measuring.
        for (name, ip) in targets {
            for obj in ["1K.bin", "100M.bin"] {
                self.load(
                    &format!("warm-{name}-{obj}"),
                    &format!("http://{ip}/{obj}"),
                    &["--timeout-secs".into(), "60".into()],
                )?;
            }
        }
        let conns: &[u64] = if quick { &[1, 64] } else { &[1, 64, 1024] };
        let rounds = self.args.rounds.unwrap_or(if quick { 1 } else { 2 });
        let secs = if quick { 2 } else { 5 };
        let mut rps: BTreeMap<(String, u64), Vec<LoadSummary>> = BTreeMap::new();
        // The server's CPU time per request answered, per run: what a
        // request costs the server whatever the client can send (on this
        // machine the client's kernel bounds the rate at one connection).
        let mut cpu: BTreeMap<(String, u64), Vec<f64>> = BTreeMap::new();
        let box_pid = self.lab.box_pid(1);
        let server_pids = |name: &str| -> Vec<u32> {
            if name == "baton" {
                box_pid.into_iter().collect()
            } else {
                baton_lab::driver::with_children(nginx)
            }
        };
        let mut mbps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for round in 1..=rounds {
            for &c in conns {
                for (name, ip) in targets {
                    let before = cpu_ticks(&server_pids(name));
                    let s = self.load(
                        &format!("rps-{name}-c{c}-r{round}"),
                        &format!("http://{ip}/1K.bin"),
                        &[
                            "--connections".into(),
                            c.to_string(),
                            "--requests".into(),
                            "0".into(),
                            "--hold-secs".into(),
                            secs.to_string(),
                            "--connect-burst".into(),
                            "1024".into(),
                        ],
                    )?;
                    let spent = cpu_ticks(&server_pids(name)).saturating_sub(before);
                    if s.requests_ok > 0 {
                        cpu.entry((name.to_string(), c))
                            .or_default()
                            .push(spent as f64 * 1e6 / ticks_per_second() / s.requests_ok as f64);
                    }
                    rps.entry((name.to_string(), c)).or_default().push(s);
                }
            }
            for (name, ip) in targets {
                let reqs = if quick { 1 } else { 3 };
                let s = self.load(
                    &format!("mbps-{name}-r{round}"),
                    &format!("http://{ip}/100M.bin"),
                    &[
                        "--requests".into(),
                        reqs.to_string(),
                        "--timeout-secs".into(),
                        "120".into(),
                    ],
                )?;
                mbps.entry(name.to_string())
                    .or_default()
                    .push(s.bytes as f64 / s.seconds / 1e6);
            }
        }
        self.unpin(Some(nginx));
        self.stop_nginx("box2", &[NGINX_PLAIN, NGINX_PROXY]);

        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let mut rows = Vec::new();
        let mut series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        for &c in conns {
            let get = |name: &str| rps.get(&(name.to_string(), c)).cloned().unwrap_or_default();
            let (b, n, p) = (get("baton"), get("nginx"), get("nginx-proxy"));
            let r =
                |v: &[LoadSummary]| mean(&v.iter().map(|s| s.requests_per_s).collect::<Vec<_>>());
            let p99 =
                |v: &[LoadSummary]| mean(&v.iter().map(|s| s.latency_ms.p99).collect::<Vec<_>>());
            let errs = |v: &[LoadSummary]| v.iter().map(|s| s.errors).sum::<u64>();
            let (rb, rn, rp) = (r(&b), r(&n), r(&p));
            let us = |name: &str| {
                mean(
                    cpu.get(&(name.to_string(), c))
                        .map_or(&[][..], Vec::as_slice),
                )
            };
            let (ub, un) = (us("baton"), us("nginx"));
            series.entry("baton").or_default().push((c as f64, rb));
            series.entry("nginx").or_default().push((c as f64, rn));
            series
                .entry("nginx-proxy")
                .or_default()
                .push((c as f64, rp));
            rows.push(
                Row::new()
                    .value("connections", c)
                    .text(c.to_string())
                    .num("baton_rps", rb, 0)
                    .num("nginx_rps", rn, 0)
                    .num("nginx_proxy_rps", rp, 0)
                    .num("baton_over_nginx", rb / rn.max(1e-9), 2)
                    .num("baton_over_nginx_proxy", rb / rp.max(1e-9), 2)
                    .value("baton_cpu_us_per_request", ub)
                    .value("nginx_cpu_us_per_request", un)
                    .text(format!("{ub:.2} / {un:.2}"))
                    .num("baton_over_nginx_per_cpu", un / ub.max(1e-9), 2)
                    .value(
                        "p99_ms",
                        json!({"baton": p99(&b), "nginx": p99(&n), "nginx_proxy": p99(&p)}),
                    )
                    .text(format!("{:.2} / {:.2} / {:.2}", p99(&b), p99(&n), p99(&p)))
                    .value(
                        "errors",
                        json!({"baton": errs(&b), "nginx": errs(&n), "nginx_proxy": errs(&p)}),
                    )
                    .text(format!("{} / {} / {}", errs(&b), errs(&n), errs(&p))),
            );
        }
        let (mb, mn, mp) = (
            mean(mbps.get("baton").map(Vec::as_slice).unwrap_or(&[])),
            mean(mbps.get("nginx").map(Vec::as_slice).unwrap_or(&[])),
            mean(mbps.get("nginx-proxy").map(Vec::as_slice).unwrap_or(&[])),
        );
        self.results.insert("throughput".into(), json!({"rounds": rounds, "seconds_per_run": secs, "request_rate": rows.iter().map(Row::json).collect::<Vec<_>>(),
            "mb_per_s_100M": {"baton": mb, "nginx": mn, "nginx_proxy": mp, "baton_over_nginx": mb / mn.max(1e-9), "baton_over_nginx_proxy": mb / mp.max(1e-9)}}));
        self.md.push_str(&format!("## Throughput and request rate\n\n1K.bin keep-alive requests back to back, {secs} s per run, {rounds} alternated round(s); Baton box1 (198.18.0.11, userspace stack) vs nginx 1 worker in box2's namespace (kernel TCP), plain ({NGINX_PLAIN}) and as proxy_cache of the origin ({NGINX_PROXY}); caches warmed first. Server CPU µs/req: the server process's user and system time during the run over the requests answered (Baton: the whole box, its polling worker included; nginx: master and worker); the kernel's softirq work for either server's frames, done in the sender's context on veth, is not in it. {pinned}\n\n"));
        self.md.push_str(&md_rows(
            &[
                "connections",
                "Baton req/s",
                "nginx req/s",
                "nginx proxy req/s",
                "Baton/nginx",
                "Baton/proxy",
                "server CPU µs/req B/n",
                "Baton/nginx per CPU",
                "p99 ms B/n/p",
                "errors B/n/p",
            ],
            &rows,
        ));
        self.md.push_str(&format!("\n100M.bin, one connection: Baton {mb:.1} MB/s, nginx {mn:.1} MB/s, nginx proxy {mp:.1} MB/s (Baton/nginx {:.2}, Baton/proxy {:.2}).\n\n![request rate](rps.png)\n\n", mb / mn.max(1e-9), mb / mp.max(1e-9)));
        let s: Vec<Series> = series
            .into_iter()
            .map(|(k, v)| Series {
                name: k.into(),
                points: v,
            })
            .collect();
        if let Err(e) = line_plot(
            &self.out.join("rps.png"),
            "1K requests/s by connections",
            "connections",
            "requests/s",
            &s,
            None,
        ) {
            progress(format!("plot: {e}"));
        }
        Ok(())
    }
}

/// User and system CPU time of `pids` so far, in clock ticks (fields 14
/// and 15 of /proc/PID/stat, after the parenthesised command name).
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let rest = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .collect::<Vec<_>>();
            // After the name: state is field 3, utime field 14, stime 15.
            let utime: u64 = rest.get(11)?.parse().ok()?;
            let stime: u64 = rest.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .sum()
}

/// Clock ticks a second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}
