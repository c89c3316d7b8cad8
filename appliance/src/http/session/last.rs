//! What a session keeps of its latest response for the checkpoints it
//! writes: the whole [`ResponseCheckpoint`] while the client may lack some
//! of the response, a [`FinishedResponse`] marker once it acknowledged it
//! all (issue 19: an idle keep-alive connection's URL and validators were
//! ~280 bytes of it).
//!
//! It knows nothing of TCP or of sessions: the session says what the
//! client acknowledged (`HttpSession::settle`).

use std::borrow::Cow;

use baton_dataplane::tcp::SeqNum;

use super::super::checkpoint::{FinishedResponse, ResponseCheckpoint};

/// The latest response's record (see the module doc).
#[derive(Debug, Default)]
pub(super) enum LastResponse {
    /// No response yet.
    #[default]
    None,
    /// A response the client may not have whole (or an upload's state).
    Recorded(Box<ResponseCheckpoint>),
    /// A response the client acknowledged whole.
    Finished(FinishedResponse),
}

impl LastResponse {
    /// What the next checkpoint write carries: the record, or one made
    /// from the marker (no allocation: its strings are empty).
    pub(super) fn checkpoint(&self) -> Option<Cow<'_, ResponseCheckpoint>> {
        match self {
            LastResponse::None => None,
            LastResponse::Recorded(cp) => Some(Cow::Borrowed(cp)),
            LastResponse::Finished(f) => Some(Cow::Owned(f.checkpoint())),
        }
    }

    /// The whole record, if that is what is kept.
    pub(super) fn recorded(&self) -> Option<&ResponseCheckpoint> {
        match self {
            LastResponse::Recorded(cp) => Some(cp),
            _ => None,
        }
    }

    /// The client acknowledged every byte before `acked`: a response it
    /// has whole shrinks to its marker. True when it did.
    pub(super) fn settle(&mut self, acked: SeqNum) -> bool {
        let LastResponse::Recorded(cp) = self else {
            return false;
        };
        match FinishedResponse::of(cp, acked) {
            Some(f) => {
                *self = LastResponse::Finished(f);
                true
            }
            None => false,
        }
    }

    /// Heap held: the boxed record and its strings.
    pub(super) fn heap_bytes(&self) -> usize {
        self.recorded().map_or(0, ResponseCheckpoint::heap_bytes)
    }
}
