//! The box's epoch (its incarnation number), strictly increasing across
//! restarts *and reboots*: the last epoch begun is kept in a small file
//! beside the Raft's state (`<raft.state_path>.<box id>.epoch`, by default
//! `<segment>.raft.<box id>.epoch`; boxes sharing a segment share its
//! directory), written and `fsync`ed (file and directory)
//! before the epoch is used.
//!
//! Why it matters: the epoch names this incarnation everywhere. Members of
//! the agreed view are `(id, epoch)`, and a view naming a newer epoch of
//! this id fences this incarnation; peers drop replication datagrams from
//! an epoch older than the newest they heard; every replication datagram
//! names the epoch of the box it is meant for, so one captured before this
//! box restarted is refused after it. The epoch used to live only in the
//! segment's box table: a replicated box whose segment did not survive a
//! reboot (tmpfs) started again at epoch 1, below what its peers and the
//! durable Raft view remembered, and lost every one of those comparisons.
//!
//! What it must not know: the view, replication, or the segment's layout
//! (it reads and sets the region's epoch through `Region`).
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use baton_config::Config;
use baton_shmem::Region;

/// First line of the file: format and version.
const HEADER: &str = "baton-epoch 1";

/// Why the epoch could not be begun.
#[derive(Debug, thiserror::Error)]
pub enum IncarnationError {
    /// The file could not be read, written or synced.
    #[error("epoch file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds something else than an epoch this version wrote: the
    /// box refuses to guess (a guess below the truth would reuse an epoch).
    #[error("epoch file {} is damaged or foreign: {what}; if the box's previous epochs are known to be lost everywhere, remove it", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
    /// Every epoch was used (2^32 − 1 starts).
    #[error("epoch file {}: no epoch is left after {last}", path.display())]
    Exhausted {
        /// The last epoch used.
        last: u32,
        /// The file.
        path: PathBuf,
    },
}

/// Where the box keeps its last epoch: beside the Raft's state file, which
/// must survive reboots in replicated mode anyway, one file per box id
/// (boxes of one host may share a segment and its Raft path's prefix).
pub fn epoch_path(config: &Config) -> PathBuf {
    let mut p = config
        .raft
        .state_path(&config.checkpoint.segment_path)
        .into_os_string();
    p.push(format!(".{}.epoch", config.node.id));
    PathBuf::from(p)
}

/// The epoch after `last_durable` (the file's) and `in_segment` (the box
/// table's), above both: the file survives a wiped segment, the segment a
/// lost file.
pub fn next_epoch(last_durable: u32, in_segment: u32) -> Option<u32> {
    last_durable.max(in_segment).checked_add(1)
}

/// The last epoch the file at `path` records; 0 when there is none.
pub fn read_last(path: &Path) -> Result<u32, IncarnationError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(IncarnationError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let corrupt = |what| IncarnationError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(corrupt("no `baton-epoch 1` header"));
    }
    let n = lines
        .next()
        .and_then(|l| l.parse::<u32>().ok())
        .ok_or_else(|| corrupt("no epoch number"))?;
    if lines.next().is_some() {
        return Err(corrupt("trailing lines"));
    }
    Ok(n)
}

/// Records `epoch` at `path` durably: a fresh `0600` temporary file,
/// written and `fsync`ed, renamed over the file, then the directory
/// `fsync`ed, so that after a crash the file holds this epoch or the
/// previous one, never less.
pub fn write_durably(path: &Path, epoch: u32) -> Result<(), IncarnationError> {
    let io = |source| IncarnationError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A leftover of a crash mid-write is ours to replace.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(format!("{HEADER}\n{epoch}\n").as_bytes())
        .map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(&tmp, path).map_err(io)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

/// Reserves this start's epoch: above `last_durable` (the file's, read
/// with [`read_last`]) and `in_segment` (the box table's), written to the
/// file at `path` durably before it is returned, so no later start can
/// use it again even if this one dies before it beats. The box table is
/// not touched ([`apply`] does it, once the previous incarnation's region
/// may be).
pub fn reserve(path: &Path, last_durable: u32, in_segment: u32) -> Result<u32, IncarnationError> {
    let epoch =
        next_epoch(last_durable, in_segment).ok_or_else(|| IncarnationError::Exhausted {
            last: last_durable.max(in_segment),
            path: path.to_path_buf(),
        })?;
    write_durably(path, epoch)?;
    Ok(epoch)
}

/// Begins the reserved `epoch` in `region`'s box table (state alive or
/// rejoined, as [`Region::begin_epoch`]).
pub fn apply(region: &Region, epoch: u32) {
    region.begin_epoch();
    region.set_epoch(epoch);
}

/// [`reserve`] and [`apply`] at once. Returns the epoch.
pub fn begin(path: &Path, region: &Region) -> Result<u32, IncarnationError> {
    let epoch = reserve(path, read_last(path)?, region.epoch())?;
    apply(region, epoch);
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_shmem::{Layout, Segment};

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir()
                .join(format!("baton-incarnation-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).expect("temp dir");
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const L: Layout = Layout {
        regions: 2,
        slots_per_region: 8,
        slot_size: baton_shmem::SLOT_SIZE as u32,
    };

    #[test]
    fn the_epoch_grows_across_restarts_and_across_a_reboot_that_wiped_the_segment() {
        let dir = TempDir::new("reboot");
        let file = dir.0.join("box.raft.epoch");
        let seg = dir.0.join("segment");
        let mut seen = Vec::new();
        {
            let s = Segment::open_or_create(&seg, L).expect("segment");
            let r = s.region(1).expect("region");
            for _ in 0..3 {
                seen.push(begin(&file, &r).expect("begin"));
            }
            assert_eq!(r.epoch(), 3);
        }
        // A reboot: the segment (tmpfs) is gone, the state dir is not.
        fs::remove_file(&seg).expect("wipe the segment");
        let s = Segment::open_or_create(&seg, L).expect("segment");
        let r = s.region(1).expect("region");
        assert_eq!(r.epoch(), 0, "a fresh segment starts over");
        seen.push(begin(&file, &r).expect("begin"));
        assert_eq!(seen, vec![1, 2, 3, 4], "never epoch 1 again");
        assert_eq!(r.epoch(), 4);
        assert_eq!(read_last(&file).expect("read"), 4);
    }

    #[test]
    fn a_lost_file_does_not_send_the_epoch_below_the_segments() {
        let dir = TempDir::new("lost");
        let file = dir.0.join("e");
        let s = Segment::open_or_create(&dir.0.join("segment"), L).expect("segment");
        let r = s.region(1).expect("region");
        r.set_epoch(41);
        assert_eq!(begin(&file, &r).expect("begin"), 42);
        assert_eq!(next_epoch(7, 3), Some(8));
        assert_eq!(next_epoch(u32::MAX, 0), None);
    }

    #[test]
    fn a_damaged_file_stops_the_start_with_its_name() {
        let dir = TempDir::new("damaged");
        let file = dir.0.join("e");
        let damaged = [
            "",
            "baton-epoch 1\n",
            "baton-epoch 1\nx\n",
            "other\n5\n",
            "baton-epoch 1\n5\n6\n",
        ];
        for bad in damaged {
            fs::write(&file, bad).expect("write");
            let err = read_last(&file).expect_err(bad);
            assert!(matches!(err, IncarnationError::Corrupt { .. }), "{bad:?}");
            assert!(err.to_string().contains(&file.display().to_string()));
        }
        write_durably(&file, 9).expect("write");
        assert_eq!(read_last(&file).expect("read"), 9);
        assert_eq!(read_last(&dir.0.join("absent")).expect("absent"), 0);
    }
}
