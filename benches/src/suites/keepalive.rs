//! Suites drain and idlekill: idle keep-alive connections to box1 that
//! all ask for 1K.bin again, round after round, across a move of box1's
//! connections — issue 19's "a planned move is invisible" (drain: 5,000
//! connections, `lab drain box1`) and "15,000 idle keep-alive connections
//! each asking again right after the kill" (idlekill: 15,000, box1
//! SIGKILLed). Three rounds per run: before, right after the move (the
//! drain returned, or the kill was sent) and 1.5 s later; per round the
//! answers' latency p50/p99/max, how many were answered, and the client's
//! retransmissions; for a drain, box1's own account of the hand-over from
//! its log, for a kill the survivors' `takeover done` lines. The client is
//! `baton-load --rounds` on the kernel's TCP (the protocol of the lab's
//! Python `KEEPALIVE_ROUNDS`, at a fraction of its CPU: the Python
//! clients took half of the machine at 300,000); the suites know nothing
//! of the box beyond its address and its log lines.
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::harness::report::md_table;
use crate::suites::bench::{progress, Bench, PER_PROCESS};
use baton_lab::logs::strip_ansi;

/// Connections held (drain, idlekill), and runs per invocation (the tail
/// moves).
const N_DRAIN: usize = 5_000;
const N_KILL: usize = 15_000;
const RUNS: u32 = 3;

/// How box1's connections move between the first and second round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Move {
    /// `lab drain box1`.
    Drain,
    /// SIGKILL to box1.
    Kill,
}

impl Move {
    fn name(self) -> &'static str {
        match self {
            Move::Drain => "drain",
            Move::Kill => "idlekill",
        }
    }
}
/// The rounds of each run, in order.
const ROUNDS: [&str; 3] = ["before", "right after", "+1.5 s"];

impl Bench {
    pub(crate) fn drain_suite(&mut self) -> Result<()> {
        self.keepalive_suite(Move::Drain)
    }

    pub(crate) fn idle_kill_suite(&mut self) -> Result<()> {
        self.keepalive_suite(Move::Kill)
    }

    fn keepalive_suite(&mut self, how: Move) -> Result<()> {
        let n = match (self.args.keepalive_connections, self.args.quick, how) {
            (Some(n), _, _) => n,
            (None, true, _) => 500,
            (None, false, Move::Drain) => N_DRAIN,
            (None, false, Move::Kill) => N_KILL,
        };
        if n as u64 > PER_PROCESS {
            // One client process and address per PER_PROCESS connections
            // (the file cap), and a slot on every box for each, plus the
            // warm-up's. The first process to finish connecting waits for
            // the others, longer than the default 60 s idle limits of TCP
            // and HTTP at 100,000 (measured: its 5,000 closed by box1
            // before the first round).
            for b in 1..=3 {
                self.lab
                    .set_box_option(b, "dataplane", "tcp_idle_timeout_ms", "600000")?;
                self.lab
                    .set_box_option(b, "limits", "idle_timeout_ms", "600000")?;
            }
            self.raise_box_limits(n as u64 + 1_000)?;
        } else {
            // One client process opens them all.
            self.allow_one_client(n as u64)?;
        }
        // `--drain-spread-ms`: 500 by default, 10,000 requests a second at
        // N; all at once, the box's receive ring must hold the burst, and
        // that, not the drain, is what a round measures.
        let spread_ms = self.args.drain_spread_ms;
        let act = match how {
            Move::Drain => "`lab drain box1`",
            Move::Kill => "box1's SIGKILL",
        };
        progress(format!(
            "suite {}: {n} idle keep-alive connections to box1 ask (over {spread_ms} ms) before, right after and 1.5 s after {act}",
            how.name()
        ));
        let runs = if self.args.quick { 1 } else { RUNS };
        let mut rows = Vec::new();
        let mut jruns = Vec::new();
        for run in 1..=runs {
            // A drained box stays up with its workers stopped: start it
            // afresh, then give the heir time to hand its address back.
            if run > 1 && how == Move::Drain {
                self.lab.kill(1)?;
                self.lab.start(1)?;
            }
            for b in 1..=3 {
                self.lab.ensure_running(b)?;
            }
            std::thread::sleep(Duration::from_secs(2));
            for ip in ["198.18.0.11", "198.18.0.12", "198.18.0.13"] {
                self.load("keepalive-warm", &format!("http://{ip}/1K.bin"), &[])?;
            }
            let lines = self.rounds_run(n, spread_ms, how, run)?;
            let logs: Vec<String> = [1, 2, 3]
                .iter()
                .map(|b| {
                    std::fs::read_to_string(self.lab.state_dir().join(format!("box{b}.log")))
                        .unwrap_or_default()
                })
                .collect();
            let last = |log: &str, what: &str| {
                log.lines()
                    .rev()
                    .find(|l| l.contains(what))
                    .map(strip_ansi)
                    .unwrap_or_default()
            };
            let handed = match how {
                Move::Drain => last(&logs[0], "draining: connections handed over"),
                Move::Kill => format!(
                    "{} | {}",
                    last(&logs[1], "takeover done"),
                    last(&logs[2], "takeover done")
                ),
            };
            let field = |k: &str| {
                handed
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{k}=")))
                    .unwrap_or("?")
                    .to_string()
            };
            for (round, line) in ROUNDS.iter().zip(&lines) {
                let f = |k: &str| {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(&format!("{k}=")))
                        .unwrap_or("?")
                        .to_string()
                };
                progress(format!("  run {run} {round}: {line}"));
                rows.push(vec![
                    format!("{run}"),
                    round.to_string(),
                    format!("{}/{}", f("ok"), f("of")),
                    f("p50_ms"),
                    f("p99_ms"),
                    f("max_ms"),
                    f("retrans"),
                    match (*round == "right after", how) {
                        (false, _) => String::new(),
                        (true, Move::Drain) => {
                            format!("{} / {}", field("handed_over_ms"), field("recorded_ms"))
                        }
                        (true, Move::Kill) => format!(
                            "ready p99 {} ms, ring drops {}",
                            field("ready_p99_ms"),
                            field("ring_drops")
                        ),
                    },
                ]);
                if f("ok") != f("of") {
                    self.note_errors(
                        how.name(),
                        "http://198.18.0.11/1K.bin",
                        1,
                        &Default::default(),
                    );
                }
            }
            jruns.push(json!({"run": run, "rounds": lines, "move": handed}));
        }
        if how == Move::Drain {
            // A drained box1 stays up with its workers stopped and its
            // address with the heir: the next suite needs it serving
            // (idlekill after drain in one invocation could not connect).
            self.lab.kill(1)?;
            self.lab.start(1)?;
        }
        self.results.insert(how.name().into(), json!(jruns));
        let (title, goal, account) = match how {
            Move::Drain => (
                "Drain",
                "answers right after the drain p99 ≤ 100 ms",
                "box1's log: hand-over and adopters' first checkpoints, ms",
            ),
            Move::Kill => (
                "Kill",
                "0 reset, answers right after the kill p99 ≤ 1 s",
                "the first survivor's `takeover done` line (the heir's, box2)",
            ),
        };
        self.md.push_str(&format!("## {title} under {n} idle keep-alive connections (issue 19)\n\n{n} connections to box1's address, each answered once; then every connection asks for 1K.bin (the requests spread evenly over {spread_ms} ms), three times: before, right after {act}, and 1.5 s later. Latency of each round's answers (ms), how many were answered, and the client's TCP retransmissions during it (a lost request costs one); {account}. Goal: {goal}.\n\n"));
        self.md.push_str(&md_table(
            &[
                "run",
                "round",
                "answered",
                "p50 ms",
                "p99 ms",
                "max ms",
                "client retransmissions",
                "the move, from the boxes",
            ],
            &rows,
        ));
        Ok(())
    }

    /// One run: the client's three round lines (one client process per
    /// [`PER_PROCESS`] connections, each from its own address above that,
    /// their lines merged by [`merge_round_lines`]).
    fn rounds_run(&mut self, n: usize, spread_ms: u64, how: Move, run: u32) -> Result<Vec<String>> {
        let per = PER_PROCESS as usize;
        let procs = n.div_ceil(per).max(1);
        let all = self.lab.client_sources();
        if procs > 1 && all.len() < procs {
            bail!(
                "{n} connections need {procs} client addresses, the lab has {}",
                all.len()
            );
        }
        // Each run from addresses the previous run did not use (as far as
        // the lab has them): a restarted box1 forwards the previous run's
        // connections to the survivors that took them over, and a new
        // connection on one of their 4-tuples followed them there (run 2
        // of 100,000 on run 1's addresses lost 43 % after the kill while
        // box1's log said it forwarded 100,000 of its previous
        // incarnation's: the cause is inferred from that line).
        let offset = (run as usize - 1) * procs;
        let sources: Vec<&String> = (0..procs).map(|p| &all[(offset + p) % all.len()]).collect();
        let mut children = Vec::new();
        let load = self.load.display().to_string();
        for (p, source) in sources.iter().enumerate() {
            let count = (n - p * per).min(per).to_string();
            let spread = spread_ms.to_string();
            let rounds = ROUNDS.len().to_string();
            let mut argv = vec![
                load.as_str(),
                "--url",
                "http://198.18.0.11/1K.bin",
                "--connections",
                &count,
                "--rounds",
                &rounds,
                "--spread-ms",
                &spread,
                // 32 handshakes at a time a process (512 for 300,000):
                // 256 each, 4,096 SYNs at once overran box1's receive
                // ring and 90 connects timed out (the Python client
                // opened one at a time a process).
                "--connect-burst",
                "32",
            ];
            if procs > 1 {
                argv.extend(["--source", source]);
                // Niced: the clients stand for machines of their own.
                // A single client runs as it always has.
                argv.splice(0..0, ["nice", "-n", "19"]);
            }
            let mut child = self
                .lab
                .exec_cmd("client", &argv)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .context("baton-load --rounds in the client namespace")?;
            let stdin = child.stdin.take().context("the client's stdin")?;
            let out = BufReader::new(child.stdout.take().context("the client's stdout")?);
            children.push((child, stdin, out));
        }
        let read_all = |children: &mut Vec<(
            std::process::Child,
            std::process::ChildStdin,
            BufReader<std::process::ChildStdout>,
        )>|
         -> Result<Vec<String>> {
            let mut lines = Vec::new();
            for (_, _, out) in children.iter_mut() {
                let mut line = String::new();
                out.read_line(&mut line)?;
                lines.push(line.trim().to_string());
            }
            Ok(lines)
        };
        let ready = read_all(&mut children)?;
        if let Some(bad) = ready.iter().find(|l| *l != "READY") {
            for (child, _, _) in &mut children {
                let _ = child.kill();
            }
            bail!("the keep-alive client did not get its {n} connections answered: {bad:?}");
        }
        let mut lines = Vec::new();
        for round in 0..ROUNDS.len() {
            match round {
                1 if how == Move::Drain => self.lab.drain(1)?,
                1 => self.lab.kill(1)?,
                2 => std::thread::sleep(Duration::from_millis(1500)),
                _ => {}
            }
            for (_, stdin, _) in &mut children {
                writeln!(stdin, "go")?;
            }
            lines.push(merge_round_lines(&read_all(&mut children)?));
        }
        for (mut child, stdin, _) in children {
            drop(stdin);
            let status = child.wait()?;
            if !status.success() {
                progress(format!(
                    "  a keep-alive client failed ({status}): {lines:?}"
                ));
            }
        }
        Ok(lines)
    }
}

/// One round line from the lines of several client processes, in the
/// client's own format: answers and connections summed, p50 the mean of
/// the processes' medians, p99 and max the worst process's, the sha when
/// all agree, and the namespace's retransmission counters (each process
/// reads the same namespace-wide counters) the largest.
fn merge_round_lines(lines: &[String]) -> String {
    if lines.len() == 1 {
        return lines[0].clone();
    }
    let field = |l: &str, k: &str| -> Option<String> {
        l.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
    };
    let nums = |k: &str| -> Vec<f64> {
        lines
            .iter()
            .filter_map(|l| field(l, k)?.parse::<f64>().ok())
            .collect()
    };
    let sum = |k: &str| nums(k).iter().sum::<f64>();
    let max = |k: &str| nums(k).into_iter().fold(f64::NAN, f64::max);
    let p50 = nums("p50_ms");
    let mean = p50.iter().sum::<f64>() / p50.len().max(1) as f64;
    let shas: std::collections::BTreeSet<String> =
        lines.iter().filter_map(|l| field(l, "sha")).collect();
    let sha = match shas.len() {
        1 => shas.into_iter().next().unwrap_or_default(),
        _ => "mixed".to_string(),
    };
    let round = lines[0].split_whitespace().nth(1).unwrap_or("?");
    format!(
        "ROUND {round} ok={} of={} sha={sha} p50_ms={mean:.1} p99_ms={:.1} max_ms={:.1} timeouts={} retrans={} processes={}",
        sum("ok"),
        sum("of"),
        max("p99_ms"),
        max("max_ms"),
        max("timeouts"),
        max("retrans"),
        lines.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_lines_of_several_clients_merge_into_one() {
        let a = "ROUND 2 ok=19000 of=19000 sha=ab p50_ms=10.0 p99_ms=300.0 max_ms=900.0 timeouts=0 retrans=5".to_string();
        let b = "ROUND 2 ok=18990 of=19000 sha=ab p50_ms=20.0 p99_ms=500.0 max_ms=700.0 timeouts=1 retrans=5".to_string();
        let m = merge_round_lines(&[a.clone(), b]);
        assert_eq!(
            m,
            "ROUND 2 ok=37990 of=38000 sha=ab p50_ms=15.0 p99_ms=500.0 max_ms=900.0 timeouts=1 retrans=5 processes=2"
        );
        assert_eq!(merge_round_lines(std::slice::from_ref(&a)), a);
    }
}
