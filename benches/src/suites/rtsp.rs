//! Suite rtsp (issue 18): how many RTP-over-UDP streams of `clip.ts` one
//! box holds (N players from `baton-rtp` in the client namespace, N in
//! steps until packets are lost or late, with box1's CPU and counters at
//! each step), then K streams and one rate-limited HTTP download through
//! box1 while box1 is SIGKILLed: per stream the longest silence in RTP
//! arrivals (kernel receive timestamps) and missing or repeated sequence
//! numbers, next to the HTTP download's stall from the failover suite's
//! run. Knows the lab only through `Bench` and `baton_lab::driver`, RTP
//! only through `crate::harness::rtp` and `baton-rtp`'s report.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::harness::rtp::percentile;
use crate::players::PlayersReport;
use crate::suites::bench::{progress, Bench};

const BOX1: &str = "198.18.0.11";
const CLIP: &str = "clip.ts";
/// A step holds its streams when no packet is lost and the spread of
/// arrival against the stream's own schedule is at most this: the first
/// packets leave up to `pacing_lead_ms` (100 in the lab) early, so 100 is
/// on time and this allows 100 ms behind; a player's jitter buffer is
/// larger, a box falling behind its pacing grows well past it.
const LATE_MS: f64 = 200.0;

/// One capacity step's figures.
#[derive(Debug, Default)]
struct Step {
    n: usize,
    playing: usize,
    torn_down: usize,
    missing: u64,
    repeats: u64,
    socket_drops: u64,
    /// The client namespace's `Udp:RcvbufErrors` and `Udp:InErrors` over
    /// the step: a socket's buffer full, or (the difference) the kernel's
    /// UDP memory (`udp_mem`) exhausted.
    rcvbuf_errors: i64,
    udp_in_errors: i64,
    /// `Udp:InDatagrams` over the step: proof the counters were read.
    udp_in: i64,
    lateness_p99_ms: f64,
    longest_gap_max_ms: f64,
    mbit_per_stream: f64,
    received: u64,
    box_sent: u64,
    /// Spawn to the last PLAY answered, s (handshakes one after another).
    setup_s: f64,
    box_cpu: f64,
    box_busy: f64,
    client_cpu: f64,
}

impl Step {
    fn held(&self) -> bool {
        self.playing == self.n
            && self.missing == 0
            && self.socket_drops == 0
            && self.lateness_p99_ms <= LATE_MS
    }
}

/// The figures of one `baton-rtp` report.
fn summarise(n: usize, r: &PlayersReport) -> Step {
    let playing: Vec<_> = r.players.iter().filter(|p| p.playing).collect();
    let late: Vec<f64> = playing.iter().map(|p| p.stream.lateness_ms).collect();
    let rates: Vec<f64> = playing.iter().map(|p| p.stream.bits_per_s()).collect();
    Step {
        n,
        playing: playing.len(),
        torn_down: playing.iter().filter(|p| p.teardown_ok).count(),
        missing: playing.iter().map(|p| p.stream.missing).sum(),
        repeats: playing.iter().map(|p| p.stream.repeats).sum(),
        socket_drops: playing.iter().map(|p| u64::from(p.socket_drops)).sum(),
        lateness_p99_ms: percentile(&late, 99.0),
        longest_gap_max_ms: playing
            .iter()
            .map(|p| p.stream.longest_gap_ms)
            .fold(0.0, f64::max),
        mbit_per_stream: rates.iter().sum::<f64>() / rates.len().max(1) as f64 / 1e6,
        received: playing.iter().map(|p| p.stream.packets).sum(),
        client_cpu: r.cpu_s / r.window_s.max(1e-9),
        ..Default::default()
    }
}

/// User + system CPU time of process `pid` (all its threads), s.
fn proc_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "pid (comm) ": state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz.max(1.0))
}

impl Bench {
    /// The first value of box `n`'s metric whose line starts with `prefix`.
    fn box_metric(&self, n: u32, prefix: &str) -> Option<f64> {
        let config = self.lab.file(&format!("box{n}.toml")).display().to_string();
        let baton = self.args.baton.display().to_string();
        self.lab
            .exec(
                &format!("box{n}"),
                &[&baton, "admin", "--config", &config, "metrics"],
            )
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
    }

    fn box_rtp_sent(&self, n: u32) -> u64 {
        self.box_metric(n, "baton_rtp_packets_total{transport=\"udp\"} ")
            .map_or(0, |v| v as u64)
    }

    /// Starts `baton-rtp` with `players` streams from box1 for `seconds`;
    /// returns it once every PLAY was answered.
    fn start_players(
        &mut self,
        tag: &str,
        players: usize,
        seconds: f64,
        port_base: u16,
    ) -> Result<(Child, PathBuf)> {
        self.runs += 1;
        let json_path = self
            .out
            .join("raw")
            .join(format!("{:03}-{tag}.json", self.runs));
        let exe = self.load.with_file_name("baton-rtp").display().to_string();
        let argv = [
            exe,
            "--server".into(),
            BOX1.into(),
            "--path".into(),
            CLIP.into(),
            "--players".into(),
            players.to_string(),
            "--seconds".into(),
            seconds.to_string(),
            "--port-base".into(),
            port_base.to_string(),
            "--json".into(),
            json_path.display().to_string(),
        ];
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut child = self.lab.spawn("client", &argv)?;
        let stdout = child.stdout.take().context("baton-rtp stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("ALL PLAYING") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = child.kill();
            let status = child.wait()?;
            bail!("{tag}: baton-rtp did not get every stream playing in 120 s ({status})");
        }
        Ok((child, json_path))
    }

    pub(crate) fn rtsp(&mut self) -> Result<()> {
        progress("suite rtsp: RTP/UDP streams of clip.ts per box; RTP gap across a kill of box1");
        let quick = self.args.quick;
        for b in 1..=3 {
            self.lab.ensure_running(b)?;
        }
        // Every box caches the clip: a survivor looks the object up again
        // when it restores a session.
        for ip in ["198.18.0.11", "198.18.0.12", "198.18.0.13"] {
            let out = self.lab.exec_output(
                "client",
                &[
                    "curl",
                    "-sSf",
                    "--max-time",
                    "60",
                    "-o",
                    "/dev/null",
                    &format!("http://{ip}/{CLIP}"),
                ],
            )?;
            if !out.status.success() {
                bail!(
                    "warming {CLIP} on {ip}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        let (steps, window) = if quick {
            (vec![8], 5.0)
        } else {
            (
                vec![8, 32, 128, 256, 512, 1024, 1536, 2048, 3072, 4096],
                10.0,
            )
        };
        let mut rows = Vec::new();
        let mut jrows = Vec::new();
        let mut best = 0;
        for n in steps {
            let s = self.rtsp_step(n, window)?;
            progress(format!(
                "  rtsp-{n}: {} playing, {} missing, {} socket drops, lateness p99 {:.0} ms, box1 CPU {:.2}, client CPU {:.2}",
                s.playing, s.missing, s.socket_drops, s.lateness_p99_ms, s.box_cpu, s.client_cpu
            ));
            rows.push(format!(
                "| {} | {:.1} | {} | {} | {} | {} | {} | {} / {} | {:.0} | {:.0} | {:.3} | {} | {} | {:.2} | {:.2} | {:.2} | {} |\n",
                s.n, s.setup_s, s.playing, s.torn_down, s.missing, s.repeats, s.socket_drops, s.rcvbuf_errors, s.udp_in_errors, s.lateness_p99_ms,
                s.longest_gap_max_ms, s.mbit_per_stream, s.received, s.box_sent, s.box_cpu,
                s.box_busy, s.client_cpu, if s.held() { "yes" } else { "no" }
            ));
            jrows.push(json!({"streams": s.n, "setup_s": s.setup_s, "playing": s.playing, "teardown_ok": s.torn_down, "missing": s.missing,
                "repeats": s.repeats, "socket_drops": s.socket_drops, "udp_rcvbuf_errors": s.rcvbuf_errors, "udp_in_errors": s.udp_in_errors, "udp_in_datagrams": s.udp_in,
                "lateness_p99_ms": s.lateness_p99_ms, "longest_gap_max_ms": s.longest_gap_max_ms,
                "mbit_per_stream": s.mbit_per_stream, "received": s.received, "box1_sent": s.box_sent,
                "box1_cpu_cores": s.box_cpu, "box1_busy_ratio": s.box_busy,
                "client_cpu_cores": s.client_cpu, "held": s.held()}));
            if !s.held() {
                break;
            }
            best = n;
        }
        self.md.push_str(&format!(
            "## RTSP (issue 18)\n\nStreams per box: N players (`baton-rtp`, one process in the client namespace) play {CLIP} from box1 over RTP/UDP at once, {window} s each step; a step holds when every stream plays, no sequence number is missing, the receiver's sockets dropped nothing and the p99 lateness (spread of arrival time against the stream's RTP clock; the first packets leave up to `pacing_lead_ms` = 100 ms early, so 100 ms is on schedule) is at most {LATE_MS} ms. Packets received count from each PLAY, box1's RTP sent over the window only. Largest N held: **{best}**. CPU in cores (box1's process over the window; busy: the box's published `baton_box_busy_ratio`).\n\n| streams | setup s | playing | TEARDOWN 200 | missing | repeats | socket drops | client Udp RcvbufErrors / InErrors | lateness p99 ms | longest gap ms | Mbit/s per stream | packets received | box1 RTP sent | box1 CPU | box1 busy | client CPU | held |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n{}\n",
            rows.concat()
        ));
        let failover = self.rtsp_failover(if quick { 4 } else { 16 })?;
        self.results.insert(
            "rtsp".into(),
            json!({"window_s": window, "late_ms": LATE_MS, "largest_held": best, "steps": jrows, "failover": failover}),
        );
        Ok(())
    }

    /// `n` streams for `window` seconds; box1's CPU and RTP counter over
    /// the window.
    fn rtsp_step(&mut self, n: usize, window: f64) -> Result<Step> {
        let pid = self.lab.box_pid(1).context("box1 has no pid")?;
        let udp0 = self.client_netstat();
        let spawned = Instant::now();
        let (mut child, json_path) = self.start_players(&format!("rtsp-{n}"), n, window, 20_000)?;
        let t0 = Instant::now();
        let setup_s = t0.duration_since(spawned).as_secs_f64();
        let cpu0 = proc_cpu_s(pid);
        let sent0 = self.box_rtp_sent(1);
        // The window starts at ALL PLAYING; the metrics call took some of it.
        std::thread::sleep(Duration::from_secs_f64(window).saturating_sub(t0.elapsed()));
        let cpu1 = proc_cpu_s(pid);
        let elapsed = t0.elapsed().as_secs_f64();
        let sent1 = self.box_rtp_sent(1);
        let busy = self
            .box_metric(1, "baton_box_busy_ratio{box=\"1\"} ")
            .unwrap_or(f64::NAN);
        let status = child.wait()?;
        let udp1 = self.client_netstat();
        let udp = |k: &str| udp1.get(k).copied().unwrap_or(0) - udp0.get(k).copied().unwrap_or(0);
        let report = read_report(&json_path)
            .with_context(|| format!("rtsp-{n}: baton-rtp ({status}) wrote no report"))?;
        let mut s = summarise(n, &report);
        s.rcvbuf_errors = udp("Udp:RcvbufErrors");
        s.udp_in_errors = udp("Udp:InErrors");
        s.udp_in = udp("Udp:InDatagrams");
        s.box_cpu = match (cpu0, cpu1) {
            (Some(a), Some(b)) => (b - a) / elapsed,
            _ => f64::NAN,
        };
        s.box_sent = sent1.saturating_sub(sent0);
        s.setup_s = setup_s;
        s.box_busy = busy;
        if s.playing < n {
            let first = report
                .players
                .iter()
                .find_map(|p| p.error.clone())
                .unwrap_or_default();
            progress(format!(
                "  rtsp-{n}: {} of {n} did not play: {first}",
                n - s.playing
            ));
        }
        Ok(s)
    }

    /// `k` streams and one HTTP download from box1, box1 SIGKILLed in the
    /// failover suite's run (`failover_run`, 2 s after the download started).
    fn rtsp_failover(&mut self, k: usize) -> Result<Value> {
        let (mut rtp, json_path) = self.start_players("rtsp-kill", k, 12.0, 30_000)?;
        let (_, tl, _) = self.failover_run(
            "rtsp-kill-http",
            &format!("http://{BOX1}/50M.bin"),
            1,
            10,
            &[],
            &mut |b: &Bench| b.kill_box_marked(1),
        )?;
        let status = rtp.wait()?;
        let report = read_report(&json_path)
            .with_context(|| format!("rtsp-kill: baton-rtp ({status}) wrote no report"))?;
        self.lab.ensure_running(1)?;
        let kill_us = (tl.started_unix_ms as f64 + tl.mark_ms) * 1e3;
        let http = tl.failover().unwrap_or_default();
        let mut gaps = Vec::new();
        let mut md = String::from("| stream | packets | missing | repeats | SSRCs | longest gap ms | gap began ms after the kill | TEARDOWN 200 |\n|---|---|---|---|---|---|---|---|\n");
        let mut jplayers = Vec::new();
        let (mut missing, mut repeats, mut bad) = (0, 0, Vec::new());
        for (i, p) in report.players.iter().enumerate() {
            let s = &p.stream;
            let from = (s.longest_gap_from_us as f64 - kill_us) / 1e3;
            gaps.push(s.longest_gap_ms);
            missing += s.missing;
            repeats += s.repeats;
            if !p.playing || s.missing > 0 || s.ssrcs != 1 || !p.teardown_ok {
                bad.push(format!(
                    "rtsp-kill stream #{i}: playing {}, {} missing, {} SSRCs, TEARDOWN 200 {}{}",
                    p.playing,
                    s.missing,
                    s.ssrcs,
                    p.teardown_ok,
                    p.error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ));
            }
            md.push_str(&format!(
                "| #{i} | {} | {} | {} | {} | {:.0} | {from:.0} | {} |\n",
                s.packets, s.missing, s.repeats, s.ssrcs, s.longest_gap_ms, p.teardown_ok
            ));
            jplayers.push(json!({"packets": s.packets, "missing": s.missing, "repeats": s.repeats,
                "ssrcs": s.ssrcs, "longest_gap_ms": s.longest_gap_ms, "gap_began_after_kill_ms": from,
                "teardown_ok": p.teardown_ok, "socket_drops": p.socket_drops}));
        }
        self.errors.extend(bad);
        let (p50, p99, max) = (
            percentile(&gaps, 50.0),
            percentile(&gaps, 99.0),
            percentile(&gaps, 100.0),
        );
        progress(format!(
            "  rtsp-kill: {k} streams, longest RTP gap p50 {p50:.0} p99 {p99:.0} max {max:.0} ms, {missing} missing, {repeats} repeats; HTTP stall {:.0} ms",
            http.stall_ms.max
        ));
        self.md.push_str(&format!(
            "RTP gap across a kill: {k} streams from box1 (`baton-rtp`) and one HTTP download of 50M.bin (`baton-load`, 5 MB/s, the failover suite's run), box1 SIGKILLed 2 s after the download started. Per stream the longest time between two RTP arrivals (kernel receive timestamps): p50 **{p50:.0} ms**, p99 **{p99:.0} ms**, max **{max:.0} ms**; {missing} sequence numbers missing, {repeats} repeated in all. The HTTP download's stall in the same run: **{:.0} ms** (kill to first data after it: {:.0} ms).\n\n{md}\n",
            http.stall_ms.max, http.resume_ms.max
        ));
        Ok(
            json!({"streams": k, "longest_gap_ms": {"p50": p50, "p99": p99, "max": max},
            "missing": missing, "repeats": repeats, "http_stall_ms": http.stall_ms.max,
            "http_resume_ms": http.resume_ms.max, "players": jplayers}),
        )
    }
}

fn read_report(path: &Path) -> Result<PlayersReport> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::rtp::StreamStats;
    use crate::players::PlayerReport;

    fn player(missing: u64, lateness_ms: f64) -> PlayerReport {
        PlayerReport {
            playing: true,
            stream: StreamStats {
                packets: 100,
                payload_bytes: 100 * 1316,
                missing,
                lateness_ms,
                rtp_seconds: 2.0,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_step_holds_only_without_loss_drops_lateness_or_players_missing() {
        let mut r = PlayersReport {
            window_s: 10.0,
            cpu_s: 1.0,
            players: vec![player(0, 10.0), player(0, 30.0)],
            ..Default::default()
        };
        let s = summarise(2, &r);
        assert!(s.held());
        assert!((s.mbit_per_stream - 100.0 * 1316.0 * 8.0 / 2.0 / 1e6).abs() < 1e-9);
        assert!((s.client_cpu - 0.1).abs() < 1e-9);
        assert!(!summarise(3, &r).held(), "a player short");
        r.players[1] = player(1, 30.0);
        assert!(!summarise(2, &r).held(), "a packet lost");
        r.players[1] = player(0, LATE_MS + 1.0);
        assert!(!summarise(2, &r).held(), "late");
        r.players[1] = player(0, 30.0);
        r.players[1].socket_drops = 1;
        assert!(!summarise(2, &r).held(), "the receiver dropped");
    }

    #[test]
    fn reads_a_process_cpu_time() {
        let me = std::process::id();
        assert!(proc_cpu_s(me).is_some_and(|s| s >= 0.0));
        assert_eq!(proc_cpu_s(u32::MAX), None);
    }
}
