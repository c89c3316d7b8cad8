//! Running real clients in the lab's client namespace: a missing tool
//! fails the test loudly (never a silent skip).
use std::process::{Child, Output, Stdio};

use super::{ok, LabGuard};

/// Fails unless `tool` is installed.
pub fn require_tool(tool: &str) {
    let found = std::process::Command::new("which")
        .arg(tool)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{tool} is not installed (scripts/test installs it)");
}

/// The tool `cmd` runs (`timeout N TOOL ...` runs TOOL).
fn tool_of<'a>(cmd: &[&'a str]) -> &'a str {
    match cmd {
        ["timeout", _, tool, ..] => tool,
        _ => cmd[0],
    }
}

/// Runs `cmd` in the client namespace to its end.
pub fn run_client(g: &LabGuard, cmd: &[&str]) -> Output {
    require_tool(tool_of(cmd));
    g.exec("client", cmd)
}

/// Starts `cmd` in the client namespace, its output piped.
pub fn spawn_client(g: &LabGuard, cmd: &[&str]) -> Child {
    require_tool(tool_of(cmd));
    g.driver
        .exec_cmd("client", cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client")
}

/// Starts `cmd` in the client namespace for a dialogue: its stdin and
/// stdout piped (the test writes to it and reads its lines), its stderr
/// the test's own.
pub fn spawn_client_dialogue(g: &LabGuard, cmd: &[&str]) -> Child {
    require_tool(tool_of(cmd));
    g.driver
        .exec_cmd("client", cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("client")
}

/// ffprobe's duration of the media file at `path`, in milliseconds.
pub fn media_duration_ms(g: &LabGuard, path: &str) -> u64 {
    let out = ok(run_client(
        g,
        &[
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            path,
        ],
    ));
    let secs: f64 = out
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe printed {out:?} for {path}"));
    (secs * 1000.0) as u64
}

/// `baton_lab::clients::KEEPALIVE_ROUNDS` in the client namespace: idle
/// keep-alive connections to one address that all ask again, round after
/// round, when told.
pub struct KeepaliveClient {
    child: Child,
    stdin: std::process::ChildStdin,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl KeepaliveClient {
    /// Opens `count` connections to `host`:80, each answered once for
    /// `path`, ready for `rounds` more; fails unless every one was.
    pub fn connect(g: &LabGuard, host: &str, count: usize, path: &str, rounds: u32) -> Self {
        use std::io::BufRead;
        let count = count.to_string();
        let rounds = rounds.to_string();
        let mut child = spawn_client_dialogue(
            g,
            &[
                "python3",
                "-c",
                baton_lab::clients::KEEPALIVE_ROUNDS,
                host,
                &count,
                path,
                &rounds,
            ],
        );
        let stdin = child.stdin.take().expect("stdin");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("READY");
        assert_eq!(
            line.trim(),
            "READY",
            "the connections were not all answered"
        );
        KeepaliveClient { child, stdin, out }
    }

    /// One round: every connection asks again; the client's line
    /// (`ROUND n ok=K of=N sha=… p50_ms=… … retrans=R`).
    pub fn round(&mut self) -> String {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "go").expect("the client is gone");
        let mut line = String::new();
        self.out.read_line(&mut line).expect("a round's line");
        line.trim().to_string()
    }

    /// Closes the connections; true if every answer of every round was
    /// complete.
    pub fn finish(self) -> bool {
        let KeepaliveClient {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        child.wait().expect("the client").success()
    }
}
