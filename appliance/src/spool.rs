//! The upload spool: the directory where request bodies in flight are
//! kept, beside the segment, so that a survivor continues an upload its box
//! did not finish (see `crate::http::upload` for when bytes go in and how
//! the checkpoint covers them).
//!
//! Every file operation on the spool is here: a directory ([`Spool`]:
//! `new`, `for_box`, `create`, `reopen`, `reap`, and by name `append_to`,
//! `truncate_to`, `remove`) and one upload's open file ([`SpoolFile`]:
//! `append`, `len`, `path`, `remove`). It knows nothing of HTTP or of
//! checkpoints: callers name files and say how many bytes to keep.
//!
//! A spool file is named after its connection (both addresses and ports and
//! the client's initial sequence number), which the survivor's restored
//! connection has too, through a keyed hash (HMAC-SHA256 under the cluster
//! key): every box computes the same name, a client cannot predict it. The
//! directory is the box user's alone (0700, refused if another user owns it
//! or others may write it) and files are created 0600 with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, never through a planted symlink. It is removed when its response is done, when the
//! connection closes, or by [`Spool::reap`] when its box died and nobody
//! took it over.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::{info, warn};

/// The spool directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// Keys the file names: the cluster key for a box's spool (survivors
    /// compute the same names), random bytes for a private one.
    key: Vec<u8>,
    /// For names of connections that have none (tests over kernel sockets).
    next_anonymous: AtomicU64,
    /// A private spool's directory is this process's alone: it goes with
    /// the spool (a box's spool stays for the survivors).
    remove_on_drop: bool,
}

/// The prefix of private spools' directory names, followed by the pid.
const PRIVATE_PREFIX: &str = "baton-uploads-";

impl Spool {
    /// A spool in `dir` (created 0700 if missing) whose file names are
    /// keyed by `key`. An existing directory owned by another user, or
    /// writable by group or others, or a symlink, is refused: its files
    /// could be read or replaced by someone else.
    pub fn new(dir: impl Into<PathBuf>, key: &[u8]) -> io::Result<Spool> {
        let dir = dir.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        check_private_dir(&dir)?;
        Ok(Spool {
            dir,
            key: key.to_vec(),
            next_anonymous: AtomicU64::new(0),
            remove_on_drop: false,
        })
    }

    /// A spool in a private temporary directory of this process (tests,
    /// and boxes without a checkpoint segment), removed when the spool is
    /// dropped. The one a process keeps to its end is never dropped, so
    /// the directories that processes since gone left behind are removed
    /// first.
    pub fn private() -> io::Result<Spool> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let temp = std::env::temp_dir();
        remove_dead_processes_spools(&temp);
        let mut spool = Spool::new(
            temp.join(format!("{PRIVATE_PREFIX}{}-{n}", std::process::id())),
            &random_key()?,
        )?;
        spool.remove_on_drop = true;
        Ok(spool)
    }

    /// A spool whose directory does not exist: every upload fails to
    /// create its file (answered 500).
    pub fn unusable() -> Spool {
        Spool {
            dir: PathBuf::from("/nonexistent/baton-uploads"),
            key: Vec::new(),
            next_anonymous: AtomicU64::new(0),
            remove_on_drop: false,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A name for a connection the transport cannot name.
    pub fn anonymous_name(&self) -> String {
        let n = self.next_anonymous.fetch_add(1, Ordering::Relaxed);
        format!("local-{}-{n}", std::process::id())
    }

    /// Where the file of the connection named `name` is: the HMAC of the
    /// name under the spool's key, so that a client, who knows its own
    /// addresses and sequence number, cannot predict it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(keyed_name(&self.key, name))
    }

    /// A new, empty spool file for the connection named `name` (an old
    /// file of that name, from a connection whose 4-tuple and initial
    /// sequence number were the same, is removed first: removing a symlink
    /// removes the link, never its target).
    pub fn create(&self, name: &str) -> io::Result<SpoolFile> {
        let path = self.path(name);
        let _ = fs::remove_file(&path);
        // Clients' bodies: readable by the box's user only; a file that
        // appeared meanwhile (or a symlink) is refused, not followed.
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        Ok(SpoolFile { file, path, len: 0 })
    }

    /// The spool file of a taken-over upload, cut to the `received` bytes
    /// its checkpoint covers (the dead box may have written more after its
    /// last checkpoint; the client sends those again).
    pub fn reopen(&self, name: &str, received: u64) -> io::Result<SpoolFile> {
        let path = self.path(name);
        // Appending: writes go after the kept bytes.
        let file = OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        let len = file.metadata()?.len();
        if len < received {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("spool holds {len} bytes, the checkpoint says {received}"),
            ));
        }
        file.set_len(received)?;
        Ok(SpoolFile {
            file,
            path,
            len: received,
        })
    }

    /// Removes spool files not written for `older_than`: uploads of a box
    /// that died with nobody to take them over (the client went away).
    /// Returns how many were removed.
    pub fn reap(&self, older_than: Duration) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > older_than);
            if old && fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// One upload's spool file.
#[derive(Debug)]
pub struct SpoolFile {
    file: File,
    path: PathBuf,
    len: u64,
}

impl SpoolFile {
    /// Appends body bytes.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        Ok(())
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the body is, for the fetcher that sends it to the origin.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the file: the upload is over.
    pub fn remove(self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Spool {
    /// The spool a box uses: `[checkpoint] upload_dir`, beside the
    /// segment, so survivors find its files. Files nobody wrote for a long
    /// time belong to uploads whose box died with no one to continue them
    /// (a live upload writes its file, a stalled one fails after the idle
    /// timeout): they are removed now. Without checkpoints, or when the
    /// directory cannot be used, a private one of this process.
    pub fn for_box(config: &baton_config::Config) -> Arc<Spool> {
        if !config.checkpoint.enabled {
            return Spool::shared_private();
        }
        let dir = config.checkpoint.upload_dir();
        match Spool::new(&dir, &config.cluster.key) {
            Ok(spool) => {
                let stale = Duration::from_millis(config.limits.idle_timeout_ms.saturating_mul(10))
                    .max(Duration::from_secs(600));
                let reaped = spool.reap(stale);
                if reaped > 0 {
                    info!(dir = %dir.display(), reaped, "removed abandoned upload spool files");
                }
                Arc::new(spool)
            }
            Err(err) => {
                warn!(dir = %dir.display(), %err, "cannot use the upload directory: uploads in flight will not survive a takeover");
                Spool::shared_private()
            }
        }
    }

    /// The one private spool of this process (tests, and a box without
    /// checkpoints, where no survivor could continue an upload anyway). No
    /// temporary directory: an unusable spool, where uploads fail with 500
    /// when they try to create their file and nothing else is affected.
    pub fn shared_private() -> Arc<Spool> {
        static SPOOL: OnceLock<Option<Arc<Spool>>> = OnceLock::new();
        SPOOL
            .get_or_init(|| Spool::private().ok().map(Arc::new))
            .clone()
            .unwrap_or_else(|| Arc::new(Spool::unusable()))
    }

    /// Removes the file named `name`, if it exists.
    pub fn remove(&self, name: &str) {
        let _ = fs::remove_file(self.path(name));
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes the private spools in `temp` whose process is gone (no
/// `/proc/<pid>`) and that belong to this user: nobody can continue their
/// uploads. A pid reused since only keeps a directory a while longer.
fn remove_dead_processes_spools(temp: &Path) {
    let Ok(entries) = fs::read_dir(temp) else {
        return;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PRIVATE_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if ours && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The file name of the connection named `name`: HMAC-SHA256 under `key`,
/// 128 bits in hex.
fn keyed_name(key: &[u8], name: &str) -> String {
    // HMAC takes a key of any length (an empty one for an unusable spool).
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return name.to_string();
    };
    mac.update(name.as_bytes());
    let tag = mac.finalize().into_bytes();
    tag[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 random bytes from the kernel.
fn random_key() -> io::Result<Vec<u8>> {
    let mut key = vec![0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(key)
}

/// Refuses a spool directory someone else could read or write into: not a
/// directory (a symlink included), owned by another user, or writable by
/// group or others. The error names the path and the owner.
fn check_private_dir(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mode = meta.permissions().mode();
    let problem = if !meta.file_type().is_dir() {
        Some("is not a directory".to_string())
    } else if meta.uid() != me {
        Some(format!(
            "is owned by uid {}, not this box's uid {me}",
            meta.uid()
        ))
    } else if mode & 0o022 != 0 {
        Some(format!(
            "is writable by group or others (mode {:o}, owner uid {})",
            mode & 0o7777,
            meta.uid()
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("upload directory {} {p}", dir.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_spool_takes_its_directory_with_it() {
        let spool = Spool::private().unwrap();
        let dir = spool.dir().to_path_buf();
        spool
            .create("gone-with-it")
            .unwrap()
            .append(b"body")
            .unwrap();
        assert!(dir.is_dir());
        drop(spool);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }

    #[test]
    fn a_dead_process_s_private_spool_is_removed_by_the_next_one() {
        // A pid that is gone: a child that has been waited for.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let temp = std::env::temp_dir();
        let left = temp.join(format!("{PRIVATE_PREFIX}{dead}-0"));
        let live = temp.join(format!("{PRIVATE_PREFIX}{}-999999", std::process::id()));
        for dir in [&left, &live] {
            fs::create_dir_all(dir).unwrap();
            fs::write(dir.join("f"), b"x").unwrap();
        }
        let spool = Spool::private().unwrap();
        assert!(!left.exists(), "a dead process's spool was kept");
        assert!(live.is_dir(), "a live process's spool was removed");
        fs::remove_dir_all(&live).unwrap();
        drop(spool);
    }

    #[test]
    fn a_reopened_spool_is_cut_to_what_the_checkpoint_covers() {
        let spool = Spool::private().unwrap();
        let mut f = spool.create("c1").unwrap();
        f.append(b"0123456789").unwrap();
        drop(f);
        let mut f = spool.reopen("c1", 4).unwrap();
        assert_eq!(f.len(), 4);
        f.append(b"abcd").unwrap();
        assert_eq!(fs::read(spool.path("c1")).unwrap(), b"0123abcd");
        f.remove();
        assert!(!spool.path("c1").exists());
        let _ = fs::remove_dir(spool.dir());
    }

    #[test]
    fn a_file_removed_by_name_is_gone_and_removing_it_again_is_harmless() {
        let spool = Spool::private().unwrap();
        spool.create("c3").unwrap().append(b"01234").unwrap();
        spool.remove("c3");
        assert!(!spool.path("c3").exists());
        spool.remove("c3");
        let _ = fs::remove_dir(spool.dir());
    }

    #[test]
    fn a_spool_shorter_than_its_checkpoint_is_refused() {
        let spool = Spool::private().unwrap();
        spool.create("c2").unwrap().append(b"abc").unwrap();
        let e = spool.reopen("c2", 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(spool.reopen("missing", 0).is_err());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(spool.reap(Duration::from_millis(10)), 1);
        let _ = fs::remove_dir(spool.dir());
    }

    #[test]
    fn files_are_private_unpredictable_and_never_follow_a_symlink() {
        let spool = Spool::private().unwrap();
        let mode = fs::metadata(spool.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let f = spool.create("10.0.0.1:5000-198.18.0.1:80-1234").unwrap();
        let path = f.path().to_path_buf();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let file_name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(!file_name.contains("1234"), "{file_name}");
        assert_eq!(file_name.len(), 32);
        // Another box with the same key finds the file; another key does not.
        let same = Spool::new(spool.dir(), &spool.key).unwrap();
        assert_eq!(same.path("10.0.0.1:5000-198.18.0.1:80-1234"), path);
        let other = Spool::new(spool.dir(), b"another key").unwrap();
        assert_ne!(other.path("10.0.0.1:5000-198.18.0.1:80-1234"), path);
        drop(f);
        // A symlink planted at a file's name is not followed on reopen.
        let victim = spool.dir().join("victim");
        fs::write(&victim, b"precious").unwrap();
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(spool.reopen("10.0.0.1:5000-198.18.0.1:80-1234", 0).is_err());
        // create replaces the link itself, the target is untouched.
        spool
            .create("10.0.0.1:5000-198.18.0.1:80-1234")
            .unwrap()
            .append(b"x")
            .unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        fs::remove_dir_all(spool.dir()).unwrap();
    }

    #[test]
    fn a_directory_others_may_write_is_refused_with_its_path_and_owner() {
        let spool = Spool::private().unwrap();
        let dir = spool.dir().to_path_buf();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = Spool::new(&dir, b"k").unwrap_err().to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains("owner uid"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
