//! `lab exec boxN` in a VM lab: runs a command inside box N's VM, not in
//! its namespace on the host. The image has no login and no network
//! service but Baton's admin API, so the command travels over a serial
//! line of its own: the VM's second 16550 (`ttyS1`), which QEMU joins to
//! a unix socket on the host (`boxN.exec.sock`), and which the image's
//! `baton-lab-exec` agent reads, but only when the box's config disk asks
//! for it (the lab's does; an operator's does not). A 16550 is emulated
//! the same under KVM and TCG, and a tty never reports the host going
//! away, so the agent needs no reconnect logic.
//!
//! The line protocol (one line each way; the output base64 so that it
//! cannot be mistaken for the marker):
//!   host -> VM  `@@baton-exec-run ID CMD` (CMD shell-quoted for `sh -c`)
//!   VM -> host  `@@baton-exec-done ID STATUS BASE64(stdout+stderr)`
//! Anything else on the line (an echo before the agent set the tty raw, a
//! reply to an earlier host that gave up) is skipped by its marker or ID.
//! It must not know what the commands do; no stdin reaches them.
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::bail;
use crate::error::{Context, Error, Result};
use crate::names::Lab;

/// How long a command may run in the VM before `lab exec` gives up.
const EXEC_TIMEOUT: Duration = Duration::from_secs(300);
/// The markers of the protocol above.
const RUN: &str = "@@baton-exec-run";
const DONE: &str = "@@baton-exec-done";

/// The host's end of box `n`'s command line.
pub fn socket_path(lab: &Lab, n: u8) -> PathBuf {
    lab.file(&format!("box{n}.exec.sock"))
}

/// QEMU's arguments that give box `n` its command line as ttyS1.
pub fn qemu_args(lab: &Lab, n: u8) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!(
            "socket,id=labexec,path={},server=on,wait=off",
            socket_path(lab, n).display()
        ),
        "-serial".into(),
        "chardev:labexec".into(),
    ]
}

/// What the guest's agent is told to run: `cmd` quoted for `sh -c`.
fn quote(cmd: &[String]) -> Result<String> {
    let mut out = Vec::with_capacity(cmd.len());
    for arg in cmd {
        if arg.contains(['\n', '\r']) {
            bail!("lab exec into a VM takes one line: an argument holds a line break");
        }
        out.push(format!("'{}'", arg.replace('\'', r"'\''")));
    }
    Ok(out.join(" "))
}

/// Runs `cmd` in box `n`'s VM; prints its output (stdout and stderr
/// merged) to our stdout and returns its exit status.
pub fn exec(lab: &Lab, n: u8, cmd: &[String]) -> Result<i32> {
    let (status, output) = run(lab, n, cmd)?;
    std::io::stdout()
        .write_all(&output)
        .context("cannot write the command's output")?;
    Ok(status)
}

/// Runs `cmd` in box `n`'s VM: its exit status and output.
pub fn run(lab: &Lab, n: u8, cmd: &[String]) -> Result<(i32, Vec<u8>)> {
    let path = socket_path(lab, n);
    let mut stream = UnixStream::connect(&path).with_context(|| {
        format!(
            "cannot reach box{n}'s VM over {} (is it running? `lab status`)",
            path.display()
        )
    })?;
    let id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    stream
        .write_all(format!("{RUN} {id} {}\n", quote(cmd)?).as_bytes())
        .with_context(|| format!("cannot write to {}", path.display()))?;
    let deadline = Instant::now() + EXEC_TIMEOUT;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "box{n}'s VM did not answer within {} s (is its baton-lab-exec agent up? see box{n}.log)",
                EXEC_TIMEOUT.as_secs()
            );
        }
        reader.get_ref().set_read_timeout(Some(left))?;
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("no answer from box{n}'s VM"))?;
        if read == 0 {
            bail!("box{n}'s VM went away before the command finished");
        }
        if let Some(done) = parse_done(&String::from_utf8_lossy(&line), &id) {
            return done;
        }
    }
}

/// The status and output of a `DONE` line for `id`; `None` for any other
/// line.
fn parse_done(line: &str, id: &str) -> Option<Result<(i32, Vec<u8>)>> {
    let rest = line.trim_end().strip_prefix(DONE)?.strip_prefix(' ')?;
    let mut parts = rest.splitn(3, ' ');
    if parts.next()? != id {
        return None;
    }
    let Some(status) = parts.next().and_then(|s| s.parse::<i32>().ok()) else {
        return Some(Err(Error::Msg(format!(
            "a garbled answer from the VM: {line:?}"
        ))));
    };
    let output = base64_decode(parts.next().unwrap_or("").trim());
    Some(match output {
        Some(o) => Ok((status, o)),
        None => Err(Error::Msg(
            "the VM's answer holds output that is not base64".to_string(),
        )),
    })
}

/// Decodes standard base64 (`base64 -w0`'s output, padded).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = s.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut acc = 0u32;
        for &c in &chunk[..4 - pad] {
            acc = acc << 6 | value(c)?;
        }
        acc <<= 6 * pad as u32;
        let three = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_for_sh() {
        let cmd: Vec<String> = ["systemctl", "kill", "-s", "SIGKILL", "it's"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            quote(&cmd).unwrap(),
            r"'systemctl' 'kill' '-s' 'SIGKILL' 'it'\''s'"
        );
        assert!(quote(&["a\nb".to_string()]).is_err());
    }

    #[test]
    fn only_our_answer_is_taken() {
        assert!(parse_done("@@baton-exec-run 7 'true'\n", "7").is_none());
        assert!(parse_done("@@baton-exec-done 6 0 \n", "7").is_none());
        assert!(parse_done("Debian GNU/Linux 12\n", "7").is_none());
        let (status, out) = parse_done("@@baton-exec-done 7 3 aGVsbG8K\r\n", "7")
            .unwrap()
            .unwrap();
        assert_eq!((status, out.as_slice()), (3, &b"hello\n"[..]));
        let (status, out) = parse_done("@@baton-exec-done 7 0\n", "7").unwrap().unwrap();
        assert_eq!((status, out.len()), (0, 0));
        assert!(parse_done("@@baton-exec-done 7 x aGk=\n", "7")
            .unwrap()
            .is_err());
        assert!(parse_done("@@baton-exec-done 7 0 a!\n", "7")
            .unwrap()
            .is_err());
    }

    #[test]
    fn base64_round_trips_what_coreutils_writes() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("TnJlc3RhcnRzPTEK").unwrap(), b"Nrestarts=1\n");
        assert!(base64_decode("YQ=").is_none());
        assert!(base64_decode("Y===").is_none());
    }
}
