//! The one lab driver: the `baton demo` command, the end-to-end tests and
//! the benchmark harness all drive a lab through [`Lab`], a handle that runs
//! `baton lab … --prefix P` (so the command line is what gets exercised),
//! reads the run state under `/run/baton-lab/P`, and takes the lab down when
//! dropped. Every address used is inside 198.18.0.0/15 and every namespace
//! is one the lab created under the handle's prefix.
//!
//! It must not know how the lab is built: that is [`crate::cluster`]'s job,
//! reached only through the command line.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

/// What can go wrong while driving the lab.
#[derive(Debug, Error)]
pub enum LabError {
    /// A command could not be started at all.
    #[error("running {cmd}: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("{cmd} failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: String,
        /// The tail of its stderr.
        stderr: String,
    },
    /// A run-state file was missing or unreadable.
    #[error("{path}: {what}")]
    State {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
}

/// How to bring a lab up: `baton lab up --prefix P --boxes N
/// --client-addrs K EXTRA…`.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The `baton` binary that runs the `lab` commands (and, unless
    /// `BATON_LAB_BOX_EXE` says otherwise, the boxes): see [`baton_exe`].
    pub baton: PathBuf,
    /// The lab's prefix.
    pub prefix: String,
    /// Number of boxes.
    pub boxes: u32,
    /// Extra client addresses (`--client-addrs`).
    pub client_addrs: u32,
    /// Further `lab up` arguments (`--segment-mode replicated`, …).
    pub extra: Vec<String>,
}

impl LabOptions {
    /// `boxes` boxes under `prefix`, run by `baton`, nothing else asked.
    pub fn new(baton: impl Into<PathBuf>, prefix: &str, boxes: u32) -> LabOptions {
        LabOptions {
            baton: baton.into(),
            prefix: prefix.to_string(),
            boxes,
            client_addrs: 0,
            extra: Vec::new(),
        }
    }
}

/// The one rule for finding the `baton` binary that drives a lab from
/// outside it: `BATON_EXE` when set; else `baton` beside the running
/// binary, or one folder up (a test or bench binary lives in
/// `target/PROFILE/deps/`, `baton` in `target/PROFILE/`). Inside `baton`
/// itself that is the running binary. Boxes are run by the lab's `baton`
/// unless `BATON_LAB_BOX_EXE` names another build.
pub fn baton_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("BATON_EXE") {
        return PathBuf::from(p);
    }
    let Ok(me) = std::env::current_exe() else {
        return PathBuf::from("baton");
    };
    if me.file_stem().is_some_and(|s| s == "baton") {
        return me;
    }
    let beside = me.with_file_name("baton");
    if beside.exists() {
        return beside;
    }
    me.parent()
        .and_then(Path::parent)
        .map(|up| up.join("baton"))
        .filter(|p| p.exists())
        .unwrap_or(beside)
}

/// A handle on one lab, driving it through `baton lab … --prefix P`; the
/// lab is taken down when the handle is dropped if this handle brought it
/// up (or [`Lab::attach`] was told to own it).
pub struct Lab {
    /// The `baton` binary that runs `lab` commands.
    pub baton: PathBuf,
    /// The lab's prefix.
    pub prefix: String,
    /// Number of boxes.
    pub boxes: u32,
    /// Extra client addresses (`--client-addrs`).
    pub client_addrs: u32,
    up: bool,
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd`, returning its output when it exits 0.
pub fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let line = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: line.clone(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .chars()
            .rev()
            .take(600)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(LabError::Failed {
            cmd: line,
            status: out.status.to_string(),
            stderr: tail,
        });
    }
    Ok(out)
}

impl Lab {
    /// Brings a lab up (after taking down any leftover lab of that prefix).
    pub fn up(opts: &LabOptions) -> Result<Lab, LabError> {
        let mut lab = Lab::attach(&opts.baton, &opts.prefix);
        lab.boxes = opts.boxes;
        lab.client_addrs = opts.client_addrs;
        lab.down();
        let mut args = vec![
            "up".to_string(),
            "--boxes".into(),
            opts.boxes.to_string(),
            "--client-addrs".into(),
            opts.client_addrs.to_string(),
        ];
        args.extend(opts.extra.iter().cloned());
        lab.up = true;
        run(&mut lab.command(&args))?;
        Ok(lab)
    }

    /// A handle on the lab `prefix` (which may or may not exist), run by
    /// `baton`; it takes nothing down when dropped until [`Lab::own`].
    pub fn attach(baton: &Path, prefix: &str) -> Lab {
        Lab {
            baton: baton.to_path_buf(),
            prefix: prefix.to_string(),
            boxes: 0,
            client_addrs: 0,
            up: false,
        }
    }

    /// Makes this handle take the lab down when it is dropped.
    pub fn own(&mut self) {
        self.up = true;
    }

    /// `baton lab --prefix P ARGS…`, not yet run (the prefix first, so
    /// that nothing after an `exec … --` is taken for it).
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(&self.baton);
        c.arg("lab").arg("--prefix").arg(&self.prefix).args(args);
        c
    }

    /// Runs `baton lab ARGS…` and returns what it did, success or not;
    /// fails only when the binary cannot run.
    pub fn output<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<Output, LabError> {
        let mut c = self.command(args);
        let line = describe(&c);
        c.stdin(Stdio::null())
            .output()
            .map_err(|source| LabError::Spawn { cmd: line, source })
    }

    /// `lab status`, as printed.
    pub fn status(&self) -> Result<String, LabError> {
        let out = run(&mut self.command(&["status"]))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `lab drain boxN`: returns once the box table says it drains.
    pub fn drain(&self, n: u32) -> Result<(), LabError> {
        run(&mut self.command(&["drain".to_string(), format!("box{n}")]))?;
        Ok(())
    }

    /// `lab impair NODE ARGS…` (`--loss 2`, `--clear`, …).
    pub fn impair(&self, node: &str, args: &[&str]) -> Result<(), LabError> {
        let mut all = vec!["impair", node];
        all.extend_from_slice(args);
        run(&mut self.command(&all))?;
        Ok(())
    }

    /// A file of the run state, `/run/baton-lab/P/NAME`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.state_dir().join(name)
    }

    /// Box `n`'s log so far (empty when there is none).
    pub fn box_log(&self, n: u32) -> String {
        std::fs::read_to_string(self.file(&format!("box{n}.log"))).unwrap_or_default()
    }

    /// The sha256 that `objects.sha256` lists for object `name`.
    pub fn listed_sha256(&self, name: &str) -> Result<String, LabError> {
        let path = self.file("objects.sha256");
        let text = std::fs::read_to_string(&path).map_err(|e| LabError::State {
            path: path.clone(),
            what: e.to_string(),
        })?;
        listed_sha256(&text, name).ok_or_else(|| LabError::State {
            path,
            what: format!("{name} is not listed"),
        })
    }

    /// A curl download in the client namespace (`ip netns exec P-client
    /// curl …`), not yet started.
    pub fn client_download(&self, d: &crate::curl::Download<'_>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns("client")]).args(d.argv());
        c
    }

    /// `lab down`; safe to call twice.
    pub fn down(&mut self) {
        let _ = self
            .command(&["down"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.up = false;
    }

    /// The run-state folder `/run/baton-lab/P`.
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from("/run/baton-lab").join(&self.prefix)
    }

    /// The namespace name of a node (`client`, `origin`, `boxN`).
    pub fn ns(&self, node: &str) -> String {
        format!("{}-{node}", self.prefix)
    }

    /// A `baton lab exec NODE -- ARGS` command, not yet run.
    pub fn exec_cmd(&self, node: &str, args: &[&str]) -> Command {
        let mut c = Command::new(&self.baton);
        c.args(["lab", "exec", "--prefix", &self.prefix, node, "--"])
            .args(args);
        c
    }

    /// `lab exec NODE -- ARGS`, success or not.
    pub fn exec_output(&self, node: &str, args: &[&str]) -> Result<Output, LabError> {
        let mut c = self.exec_cmd(node, args);
        let line = describe(&c);
        c.stdin(Stdio::null())
            .output()
            .map_err(|source| LabError::Spawn { cmd: line, source })
    }

    /// Runs ARGS in NODE's namespace and returns its stdout.
    pub fn exec(&self, node: &str, args: &[&str]) -> Result<String, LabError> {
        let out = run(&mut self.exec_cmd(node, args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts ARGS in NODE's namespace in the background, stdout piped.
    pub fn spawn(&self, node: &str, args: &[&str]) -> Result<Child, LabError> {
        let mut c = self.exec_cmd(node, args);
        let line = describe(&c);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| LabError::Spawn { cmd: line, source })
    }

    /// SIGKILLs box `n` (`lab kill`).
    pub fn kill(&self, n: u32) -> Result<(), LabError> {
        run(&mut self.command(&["kill".to_string(), format!("box{n}")]))?;
        Ok(())
    }

    /// Starts box `n` again and waits until it serves (`lab start`).
    pub fn start(&self, n: u32) -> Result<(), LabError> {
        run(&mut self.command(&["start".to_string(), format!("box{n}")]))?;
        Ok(())
    }

    /// The pid of box `n` from its pid file, if that process is alive.
    pub fn box_pid(&self, n: u32) -> Option<u32> {
        let path = self.state_dir().join(format!("box{n}.pid"));
        let pid: u32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// Makes sure box `n` runs (starts it when it was killed).
    pub fn ensure_running(&self, n: u32) -> Result<(), LabError> {
        if self.box_pid(n).is_none() {
            self.start(n)?;
        }
        Ok(())
    }

    /// Sets `[section] key = value` (value in TOML syntax) in box `n`'s
    /// config; takes effect when the box is restarted.
    pub fn set_box_option(
        &self,
        n: u32,
        section: &str,
        key: &str,
        value: &str,
    ) -> Result<(), LabError> {
        self.edit_box_config(n, |text| set_toml_key(text, section, key, value))
    }

    /// Rewrites box `n`'s config with `edit` (e.g.
    /// [`crate::boxconf::with_slot_bytes`]); takes effect when the box is
    /// restarted.
    pub fn edit_box_config(
        &self,
        n: u32,
        edit: impl FnOnce(&str) -> String,
    ) -> Result<(), LabError> {
        let path = self.state_dir().join(format!("box{n}.toml"));
        let text = std::fs::read_to_string(&path).map_err(|e| LabError::State {
            path: path.clone(),
            what: e.to_string(),
        })?;
        std::fs::write(&path, edit(&text)).map_err(|e| LabError::State {
            path,
            what: e.to_string(),
        })
    }

    /// Restarts box `n` so that its edited config takes effect.
    pub fn restart(&self, n: u32) -> Result<(), LabError> {
        if self.box_pid(n).is_some() {
            self.kill(n)?;
        }
        // Let the survivors declare it dead (3 x 30 ms) and take over before
        // it comes back as a new member.
        std::thread::sleep(Duration::from_millis(500));
        self.start(n)
    }

    /// Sets a sysctl inside NODE's namespace (net.* are per namespace).
    pub fn sysctl(&self, node: &str, key_value: &str) -> Result<(), LabError> {
        run(Command::new("ip").args([
            "netns",
            "exec",
            &self.ns(node),
            "sysctl",
            "-q",
            "-w",
            key_value,
        ]))?;
        Ok(())
    }

    /// Runs `ip ARGS` inside NODE's namespace.
    pub fn ip(&self, node: &str, args: &[&str]) -> Result<(), LabError> {
        run(Command::new("ip").args(["-n", &self.ns(node)]).args(args))?;
        Ok(())
    }

    /// The client's extra source addresses, as `lab up --client-addrs` made
    /// them (198.18.0.101 onwards inside the front /24).
    pub fn client_sources(&self) -> Vec<String> {
        (1..=self.client_addrs.min(99))
            .map(|k| format!("198.18.0.{}", 100 + k))
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.up {
            self.down();
        }
    }
}

/// The sha256 that an `objects.sha256` text lists for object `name`
/// (`HASH  NAME` lines, as sha256sum writes them; a `*` or a folder before
/// the name is ignored).
pub fn listed_sha256(list: &str, name: &str) -> Option<String> {
    list.lines()
        .filter_map(|line| line.split_once(char::is_whitespace))
        .find(|(_, n)| n.trim().trim_start_matches('*').rsplit('/').next() == Some(name))
        .map(|(sum, _)| sum.to_string())
}

/// Sets `key = value` in `[section]` of a TOML text, adding the key when the
/// table lacks it and the table when the text lacks it. Line-based so that
/// the lab's comments survive.
pub fn set_toml_key(text: &str, section: &str, key: &str, value: &str) -> String {
    let header = format!("[{section}]");
    let mut out = Vec::new();
    let mut in_section = false;
    let mut found_section = false;
    let mut done = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            if in_section && !done {
                out.push(format!("{key} = {value}"));
                done = true;
            }
            in_section = trimmed == header;
            found_section |= in_section;
        } else if in_section && !done {
            let name = trimmed.split('=').next().unwrap_or("").trim();
            if name == key {
                out.push(format!("{key} = {value}"));
                done = true;
                continue;
            }
        }
        out.push(line.to_string());
    }
    if in_section && !done {
        out.push(format!("{key} = {value}"));
    }
    if !found_section {
        out.push(String::new());
        out.push(header);
        out.push(format!("{key} = {value}"));
    }
    out.join("\n") + "\n"
}

/// Resident memory of a process, kibibytes (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// A `kB` field of a process's /proc/PID/status (`RssShmem:`: the shared
/// pages it touched, a box's checkpoint slots among them).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, field)
}

/// A `Name:   123 kB` field of /proc/PID/status, in KiB.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Pids of a process and its children (nginx master and workers).
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
                continue;
            };
            // Field 4 (ppid) follows the parenthesised command name.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(pid) {
                pids.push(child);
            }
        }
    }
    pids
}

/// Waits until `cond` holds or `timeout` passes; true when it held.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_key_is_replaced_inside_its_table_only() {
        let text = "[checkpoint]\nslots = 20000\nmode = \"shared\"\n\n[failure]\nslots = 1\n";
        let out = set_toml_key(text, "checkpoint", "slots", "300000");
        assert!(out.contains("[checkpoint]\nslots = 300000\n"));
        assert!(out.contains("[failure]\nslots = 1"));
    }

    #[test]
    fn toml_key_missing_from_table_is_added_to_it() {
        let text = "[checkpoint]\nslots = 20000\n\n[failure]\nmissed = 3\n";
        let out = set_toml_key(text, "checkpoint", "enabled", "false");
        let v: toml::Value = toml::from_str(&out).unwrap();
        assert_eq!(v["checkpoint"]["enabled"].as_bool(), Some(false));
        assert_eq!(v["failure"]["missed"].as_integer(), Some(3));
        let last = set_toml_key(
            "[failure]\nmissed = 3",
            "failure",
            "heartbeat_interval_ms",
            "30",
        );
        let v: toml::Value = toml::from_str(&last).unwrap();
        assert_eq!(v["failure"]["heartbeat_interval_ms"].as_integer(), Some(30));
    }

    #[test]
    fn toml_edit_of_absent_table_appends_the_table() {
        let out = set_toml_key("[box]\nid = 1\n", "limits", "max_connections", "320000");
        let v: toml::Value = toml::from_str(&out).unwrap();
        assert_eq!(v["limits"]["max_connections"].as_integer(), Some(320_000));
        assert_eq!(v["box"]["id"].as_integer(), Some(1));
    }

    #[test]
    fn listed_sha256_finds_the_object_by_name() {
        let list = "aa11  1K.bin\nbb22  1M.bin\ncc33 *objects/50M.bin\n";
        assert_eq!(listed_sha256(list, "1M.bin").as_deref(), Some("bb22"));
        assert_eq!(listed_sha256(list, "50M.bin").as_deref(), Some("cc33"));
        assert_eq!(listed_sha256(list, "1G.bin"), None);
    }

    #[test]
    fn rss_is_read_from_status_in_kib() {
        let status = "Name:\tbaton\nVmPeak:\t  900 kB\nVmRSS:\t  123456 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(123_456));
        assert_eq!(parse_status_kib("Name: x\n", "VmRSS:"), None);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
