//! Whether a session's latest checkpoint covers every client byte it took
//! (issue 13): the worker then commits, and TCP acknowledges, all it
//! received; until then requests and a FIN stay unacknowledged, so a
//! survivor of this box's death gets them again from the client.
//!
//! It knows nothing of TCP or checkpoints' bytes: only the session's state.

use super::{HttpSession, Phase, Stage};

impl HttpSession {
    /// True when every request read so far has its answer under way and
    /// no partial one waits: the latest checkpoint ([`Self::checkpoint`])
    /// then covers every client byte taken (a FIN too), so the worker may
    /// commit, and TCP acknowledge, all it received. False while an answer
    /// waits for its object or body, whose response checkpoint will name
    /// the request (a survivor must get that request again).
    pub fn answered_all(&self) -> bool {
        let pending = self.active.as_ref().is_some_and(|a| {
            a.cp.is_some()
                || matches!(
                    a.phase,
                    Phase::AwaitBody { .. } | Phase::Answer(Stage::AwaitMeta(_))
                )
        });
        // Input left unread after a close decision is never answered
        // (RFC 9112 §9.6): covering it loses nothing.
        !pending
            && self.intake.queue.is_empty()
            && (!self.reading || self.intake.buffered().is_empty())
    }
}
