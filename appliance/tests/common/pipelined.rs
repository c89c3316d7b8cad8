//! Pipelined requests across a kill, for the lab tests of plain HTTP and
//! HTTPS: `https_pipelined.py` sends every request in one write.
use std::io::BufRead;

use super::{ok, LabGuard};

/// `https_pipelined.py` against box 1 with `paths` pipelined in one write
/// (`tls`: the CA file and TLS version; `None`: plain HTTP on port 80),
/// read at 8 MB/s; box 1 is killed once a quarter of the first answer
/// arrived. The client's lines (one per path at most) and its exit.
pub fn pipelined_across_a_kill(
    g: &LabGuard,
    tls: Option<(&str, &str)>,
    paths: &[&str],
) -> (Vec<String>, std::process::Output) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/common/https_pipelined.py"
    );
    let (ca, version) = tls.unwrap_or(("-", "-"));
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &g.driver.ns("client"), "python3", script])
        .args([ca, "198.18.0.11", version, "8000000"])
        .args(paths)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (install it)");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("progress");
    assert_eq!(line.trim(), "under way", "the first answer did not start");
    ok(g.lab(&["kill", "box1"]));
    let mut answers = Vec::new();
    for _ in paths {
        let mut a = String::new();
        if out.read_line(&mut a).expect("an answer") > 0 {
            answers.push(a.trim().to_string());
        }
    }
    (answers, child.wait_with_output().expect("python"))
}
