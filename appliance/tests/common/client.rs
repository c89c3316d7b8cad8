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
