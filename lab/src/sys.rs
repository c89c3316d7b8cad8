//! The lab's hands on the host: running `ip`, `nft`, `tc` and `ethtool`,
//! starting daemons inside a namespace, and reading pid files. It must not
//! know the lab's topology: callers pass namespace and device names.
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bail;
use crate::error::{Context, Result};
use tracing::debug;

/// Fails unless we run as root: namespaces and raw sockets need it.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("baton lab needs root (network namespaces, raw sockets): run it with sudo");
    }
    Ok(())
}

/// Fails naming the Debian package when a tool the lab drives is missing.
pub fn require_tools(tools: &[(&str, &str)]) -> Result<()> {
    let mut missing = Vec::new();
    for (tool, package) in tools {
        if find_in_path(tool).is_none() {
            missing.push(format!("{tool} (apt-get install {package})"));
        }
    }
    if !missing.is_empty() {
        bail!("baton lab needs these tools: {}", missing.join(", "));
    }
    Ok(())
}

/// The tools every lab command that builds or changes the topology uses,
/// with the Debian package that ships each.
pub const LAB_TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("tc", "iproute2"),
    ("nft", "nftables"),
    ("ethtool", "ethtool"),
];

/// Finds an executable in PATH (or the sbin folders, which a sudo PATH may
/// lack).
pub fn find_in_path(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file());
    found
}

/// Runs a command to completion; fails with its stderr if it exits non-zero.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    debug!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command and ignores its failure (used by teardown, which must go
/// on past parts that are already gone).
pub fn run_quiet(program: &str, args: &[&str]) -> bool {
    debug!("{program} {} (may fail)", args.join(" "));
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs `ip -n NS ARGS…`.
pub fn ip_in(ns: &str, args: &[&str]) -> Result<()> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run("ip", &all).map(|_| ())
}

/// Runs `ip netns exec NS PROGRAM ARGS…` to completion.
pub fn exec_in(ns: &str, program: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// The namespaces that exist now.
pub fn netns_list() -> Result<Vec<String>> {
    let out = run("ip", &["netns", "list"])?;
    // Lines look like "name (id: 3)" or just "name".
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Starts `PROGRAM ARGS…` inside `ns` as a daemon: its own session, stdin
/// from /dev/null, stdout and stderr appended to `log`, pid written to
/// `pid_file`. `ip netns exec` execs the program, so the pid is the
/// program's own.
pub fn spawn_daemon(
    ns: &str,
    program: &Path,
    args: &[String],
    log: &Path,
    pid_file: &Path,
) -> Result<u32> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from our
    // session so that a terminal hangup or our exit does not reach it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Descriptors we inherited without close-on-exec (the flock on
            // /tmp/baton-lab.lock that tests run under, above all) must
            // not live on in a daemon that outlives us: a killed test's
            // boxes would hold the lab lock and hang every later run.
            // CLOSE_RANGE_CLOEXEC (Linux 5.11) marks rather than closes,
            // so std's own exec-error pipe keeps working; on an older
            // kernel the call fails and nothing changes.
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    debug!("spawn in {ns}: {} {}", program.display(), args.join(" "));
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {} in {ns}", program.display()))?;
    let pid = child.id();
    // The child is reaped by init once we exit; until then `pid_alive` treats
    // a zombie as dead.
    drop(child);
    fs::write(pid_file, format!("{pid}\n"))
        .with_context(|| format!("cannot write {}", pid_file.display()))?;
    Ok(pid)
}

/// Reads a pid file; None when missing or not a number.
pub fn read_pid(pid_file: &Path) -> Option<i32> {
    fs::read_to_string(pid_file).ok()?.trim().parse().ok()
}

/// The pid in `pid_file` if that process runs, in namespace `ns` (a pid
/// reused by some other process is not it).
pub fn live_pid(pid_file: &Path, ns: &str) -> Option<i32> {
    let pid = read_pid(pid_file)?;
    (pid_alive(pid) && pid_in_ns(pid, ns)).then_some(pid)
}

/// Whether `pid` is a running (not zombie) process.
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(
                stat[i + 1..].trim_start().chars().next(),
                Some('Z') | Some('X')
            ),
            None => false,
        },
        Err(_) => false,
    }
}

/// Sends `sig` to `pid`; true if it was delivered.
pub fn signal(pid: i32, sig: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `max` bytes of a log file, for error messages.
pub fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return format!("({} is missing)", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let s = String::from_utf8_lossy(&buf).trim().to_string();
    if s.is_empty() {
        format!("({} is empty)", path.display())
    } else {
        s
    }
}

/// `n` random bytes as lowercase hex, from the kernel's generator.
pub fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes sysctls (dotted names, e.g. `net.ipv6.conf.all.disable_ipv6`)
/// inside namespace `ns`. A helper thread enters the namespace: network
/// sysctls under /proc/sys/net belong to the namespace of the task that
/// opens them, and setns(2) moves only the calling thread.
pub fn sysctls_in(ns: &str, items: &[(String, String)]) -> Result<()> {
    let ns = ns.to_string();
    let items = items.to_vec();
    std::thread::spawn(move || -> Result<()> {
        let f = fs::File::open(format!("/var/run/netns/{ns}"))
            .with_context(|| format!("no namespace {ns}"))?;
        // SAFETY: f is an open namespace file; CLONE_NEWNET moves only this
        // thread, which ends right after.
        if unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) } != 0 {
            bail!("setns({ns}): {}", std::io::Error::last_os_error());
        }
        for (key, value) in &items {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            fs::write(&path, value).with_context(|| format!("cannot set {key} in {ns}"))?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| crate::error::Error::Msg("sysctl thread panicked".into()))?
}

/// Whether process `pid` lives in namespace `ns` (guards against a pid
/// file whose process died and whose number was reused).
pub fn pid_in_ns(pid: i32, ns: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let a = fs::metadata(format!("/proc/{pid}/ns/net"));
    let b = fs::metadata(format!("/var/run/netns/{ns}"));
    match (a, b) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// The pids of every process in namespace `ns`.
pub fn netns_pids(ns: &str) -> Vec<i32> {
    run("ip", &["netns", "pids", ns])
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// IPv6 on `dev` of namespace `ns` with `cidr` as its only address: as the
/// client's front address, no link-local address (no router solicitations
/// or MLD of the kernel's own on the LAN) and no DAD (nothing else on the
/// lab's LAN holds it, and it is usable at once). IPv6 on `lo` too: the
/// kernel delivers to the namespace's own addresses through `lo`, and a
/// box's tools ask its admin API at its own back address (`baton admin`
/// run in the box's namespace).
pub fn enable_ipv6(ns: &str, dev: &str, cidr: &str) -> Result<()> {
    ip_in(ns, &["link", "set", "dev", dev, "addrgenmode", "none"])?;
    exec_in(
        ns,
        "sysctl",
        &[
            "-qw",
            &format!("net.ipv6.conf.{dev}.disable_ipv6=0"),
            "net.ipv6.conf.lo.disable_ipv6=0",
        ],
    )?;
    ip_in(ns, &["-6", "addr", "add", cidr, "dev", dev, "nodad"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_pid_zero_is_not() {
        assert!(pid_alive(std::process::id() as i32));
        assert!(!pid_alive(0));
    }

    #[test]
    fn random_hex_has_two_digits_per_byte_and_differs() {
        let a = random_hex(32).unwrap();
        let b = random_hex(32).unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
