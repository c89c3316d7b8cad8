//! What a box reports about itself: read from the checkpoint segment's box
//! table and its agreed view, so it works for a box that is dead as well
//! as one that is alive.
//!
//! It reads a configuration and the segment, nothing of a running box: no
//! admin API, no process. Printing is the command line's.
use std::path::{Path, PathBuf};

use baton_config::SegmentMode;
use baton_membership::{Member, Reason, View};
use baton_shmem::{BoxState, Segment, SegmentError, ViewCell};

use crate::clock::unix_ms;

/// Why the box table cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The configuration file does not load (its problems, one per line).
    #[error(transparent)]
    Config(#[from] baton_config::ConfigError),
    /// The segment it names cannot be opened.
    #[error("checkpoint segment {}", path.display())]
    Segment {
        /// The configured segment.
        path: PathBuf,
        /// Why.
        #[source]
        source: SegmentError,
    },
}

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
    /// Its membership phase as the agreed view and its entry show it:
    /// `member`, `joining` (beating, not in the view yet) or `out`; `None`
    /// without an agreed view (replicated segments).
    pub phase: Option<String>,
}

/// The agreed view of the segment the config at `config` names, with the
/// reason it was committed; `None` where boxes keep no shared view
/// (replicated segments).
pub fn agreed_view(config: &Path) -> Result<Option<(View, Option<Reason>)>, StatusError> {
    let config = baton_config::load(config)?;
    if config.checkpoint.mode != SegmentMode::Shared {
        return Ok(None);
    }
    let path = &config.checkpoint.segment_path;
    let segment = Segment::open_existing(path).map_err(|source| StatusError::Segment {
        path: path.clone(),
        source,
    })?;
    Ok(ViewCell::new(&segment).read().ok().map(|v| {
        let reason = Reason::from_code(v.reason());
        (v, reason)
    }))
}

/// Reads the box table of the segment named in the config at `config`.
pub fn box_summaries(config: &Path) -> Result<Vec<BoxSummary>, StatusError> {
    let config = baton_config::load(config)?;
    let path = &config.checkpoint.segment_path;
    let segment = Segment::open_existing(path).map_err(|source| StatusError::Segment {
        path: path.clone(),
        source,
    })?;
    let view = (config.checkpoint.mode == SegmentMode::Shared)
        .then(|| ViewCell::new(&segment).read().ok())
        .flatten();
    let now = unix_ms();
    let detection = config.failure.detection_ms();
    let phase = |id: u16, info: &baton_shmem::BoxInfo| {
        let view = view.as_ref()?;
        let fresh =
            info.state != BoxState::Unused && now.saturating_sub(info.heartbeat_ms) <= detection;
        Some(
            if view.contains(Member {
                id,
                epoch: info.epoch,
            }) {
                "member"
            } else if fresh {
                "joining"
            } else {
                "out"
            }
            .to_string(),
        )
    };
    let mut out = Vec::new();
    for member in &config.cluster.members {
        let summary = match segment.box_info(member.id) {
            Ok(info) if info.state == BoxState::Unused => BoxSummary {
                id: member.id,
                heartbeat_age_ms: None,
                state: "never started".into(),
                connections: 0,
                checkpoints: 0,
                phase: phase(member.id, &info),
            },
            Ok(info) => BoxSummary {
                phase: phase(member.id, &info),
                id: member.id,
                heartbeat_age_ms: Some(now.saturating_sub(info.heartbeat_ms)),
                state: state_name(
                    info.state,
                    now.saturating_sub(info.heartbeat_ms),
                    config.failure.detection_ms(),
                ),
                connections: info.connections.max(0) as u64,
                checkpoints: info.checkpoints,
            },
            Err(err) => BoxSummary {
                id: member.id,
                heartbeat_age_ms: None,
                state: format!("unreadable: {err}"),
                connections: 0,
                checkpoints: 0,
                phase: None,
            },
        };
        out.push(summary);
    }
    Ok(out)
}

/// The state a reader should believe: an entry that says alive but whose
/// heartbeat is older than the detection time belongs to a dead box.
fn state_name(state: BoxState, age_ms: u64, detection_ms: u64) -> String {
    match state {
        BoxState::Alive | BoxState::Rejoined if age_ms > detection_ms => "dead".into(),
        BoxState::Alive => "alive".into(),
        BoxState::Rejoined => "rejoined".into(),
        BoxState::Dead => "dead".into(),
        BoxState::Draining => "draining".into(),
        BoxState::Unused => "never started".into(),
    }
}
