//! `[checkpoint]`: the connection checkpoint segment and its cadence.

use std::path::PathBuf;

use crate::convert::*;
use crate::model::*;
use crate::read::{Checker, Tbl};
use crate::schema::*;

table! {
    /// `[checkpoint]`: the connection checkpoint segment and its cadence.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CheckpointConfig {
        /// Checkpointing on at all (off: no takeover possible).
        enabled: bool = or(true, boolean),
        /// Absolute path of the segment file (e.g. under /dev/shm), or a
        /// PCI device, `pci:DDDD:BB:DD.F`, whose BAR 2 (an ivshmem-plain
        /// device's shared memory) is the segment: read as the device's
        /// sysfs `resource2` file.
        segment_path: PathBuf = req(segment_location),
        /// Slots per box region, >= 1.
        slots: u32 = req(positive),
        /// Bytes of each slot, 320..=768 in steps of 64: a record larger
        /// than its slot lives in the overflow area (one entry per 128
        /// slots). Below 768 for plain HTTP only.
        slot_bytes: u32 = or(MAX_SLOT_BYTES, int_in(MIN_SLOT_BYTES as i64, MAX_SLOT_BYTES as i64)),
        /// Shared or replicated segment.
        mode: SegmentMode = req(choice(&[SegmentMode::Shared, SegmentMode::Replicated])),
        /// Checkpoint every this many bytes on fast connections.
        fast_bytes: u64 = or(DEFAULT_FAST_BYTES, positive),
        /// Checkpoint every this many bytes on slow connections (<= fast_bytes).
        slow_bytes: u64 = or(DEFAULT_SLOW_BYTES, positive),
        /// Checkpoint an idle connection at least this often, milliseconds.
        interval_ms: u64 = or(DEFAULT_CHECKPOINT_INTERVAL_MS, positive),
        /// Hold back ACKs of upload bodies too until their checkpoint is
        /// committed (requests and FINs always wait for theirs).
        ack_after_commit: bool = or(false, boolean),
        /// Park an idle keep-alive connection after this many
        /// milliseconds at rest: its TCB and HTTP session are dropped and
        /// only its checkpoint kept, rebuilt from it at its client's next
        /// segment (0: never park).
        park_idle_after_ms: u64 = or(DEFAULT_PARK_IDLE_AFTER_MS, non_negative),
        /// UDP port of checkpoint replication on the back LAN.
        replication_port: u16 = or(DEFAULT_REPLICATION_PORT, int_in(1, 65535)),
        /// Where request bodies in flight (uploads) are kept so a survivor can
        /// continue them; `None`: beside the segment, `segment_path` +
        /// `.uploads` (see [`CheckpointConfig::upload_dir`]).
        upload_dir: Option<PathBuf> = opt(absolute_path),
    }
    check = checkpoint_rules;
}

fn checkpoint_rules(c: &mut Checker<'_>, t: &Tbl<'_>, p: &mut Parts) -> bool {
    let speeds = slow_not_above_fast(c, t, p);
    let steps = slot_bytes_on_a_step(c, t, p);
    upload_dir_beside_a_file(c, t, p) && speeds && steps
}

/// Slots are whole cache lines (`baton_shmem::SLOT_SIZE_STEP`), so every
/// slot and its record stay aligned.
fn slot_bytes_on_a_step(c: &mut Checker<'_>, t: &Tbl<'_>, p: &mut Parts) -> bool {
    match p.slot_bytes {
        Some(n) if !n.is_multiple_of(SLOT_BYTES_STEP) => {
            let line = c.key_line(t, "slot_bytes");
            let (down, up) = (
                n / SLOT_BYTES_STEP * SLOT_BYTES_STEP,
                n.next_multiple_of(SLOT_BYTES_STEP),
            );
            c.problem(
                line,
                t.key_path("slot_bytes"),
                format!(
                    "expected a multiple of {SLOT_BYTES_STEP}, found {n} (e.g. {down} or {up})"
                ),
            );
            false
        }
        _ => true,
    }
}

/// The default upload spool sits beside the segment file, which a PCI BAR
/// has no room for (sysfs), so a device segment names its spool.
fn upload_dir_beside_a_file(c: &mut Checker<'_>, t: &Tbl<'_>, p: &mut Parts) -> bool {
    let on_device = p
        .segment_path
        .as_ref()
        .is_some_and(|s| s.starts_with("/sys"));
    if on_device && matches!(p.upload_dir, None | Some(None)) {
        let line = c.key_line(t, "segment_path");
        c.problem(
            line,
            t.key_path("upload_dir"),
            "required when segment_path is a PCI device (the default lies beside the segment)",
        );
        return false;
    }
    true
}

/// A slow connection is checkpointed more often (fewer bytes between
/// checkpoints) than a fast one: Fig. 6 trades checkpoint cost for how much
/// a takeover may have to replay.
fn slow_not_above_fast(c: &mut Checker<'_>, t: &Tbl<'_>, p: &mut Parts) -> bool {
    match (p.fast_bytes, p.slow_bytes) {
        (Some(fast), Some(slow)) if slow > fast => {
            let line = c.key_line(t, "slow_bytes");
            c.problem(
                line,
                t.key_path("slow_bytes"),
                format!("expected at most checkpoint.fast_bytes ({fast}), found {slow}"),
            );
            false
        }
        _ => true,
    }
}

impl CheckpointConfig {
    /// The upload spool directory: `upload_dir`, else the segment path
    /// with `.uploads` appended (shared by every box that shares the
    /// segment's file system).
    pub fn upload_dir(&self) -> PathBuf {
        self.upload_dir.clone().unwrap_or_else(|| {
            let mut p = self.segment_path.clone().into_os_string();
            p.push(".uploads");
            PathBuf::from(p)
        })
    }
}
