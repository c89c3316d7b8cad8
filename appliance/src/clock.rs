//! The wall clock of the cluster: heartbeats, checkpoint times and the box
//! table's ages are Unix milliseconds, the one clock every box shares.
//!
//! Only the edges read it (the heartbeat thread, the watcher, the
//! checkpointer, the status readers); the failure detector is handed
//! `now_ms` as an argument so its rules are tested without waiting.
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds (0 for a clock set before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
