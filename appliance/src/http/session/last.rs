//! What a session keeps of its latest response for the checkpoints it
//! writes: the whole [`ResponseCheckpoint`] while the client may lack some
//! of the response, a [`FinishedResponse`] marker once it acknowledged it
//! all (issue 19: an idle keep-alive connection's URL and validators were
//! ~280 bytes of it).
//!
//! It knows nothing of TCP: the worker glue says what the client
//! acknowledged ([`super::HttpSession::settle`]).

use std::borrow::Cow;

use baton_dataplane::tcp::SeqNum;

use super::super::checkpoint::{FinishedResponse, ResponseCheckpoint};
use super::HttpSession;

impl HttpSession {
    /// The checkpoint of the latest response (stamped with its sequence
    /// number), for the worker to write with every checkpoint of this
    /// connection.
    pub fn checkpoint(&self) -> Option<Cow<'_, ResponseCheckpoint>> {
        self.last.checkpoint()
    }

    /// The client acknowledged every byte before `acked` and the session
    /// rests ([`Self::at_rest`]): a last response it has whole is kept as
    /// a marker from now on. True when it was (the next checkpoint write
    /// then frees the record's strings in the segment too).
    pub fn settle(&mut self, acked: SeqNum) -> bool {
        self.at_rest() && self.last.settle(acked)
    }

    /// The application block for this connection's next checkpoint write
    /// while the whole record is kept (`None`: nothing a survivor could
    /// resume, or a marker).
    #[cfg(test)]
    pub fn app_block(&self) -> Option<baton_shmem::AppBlock<'_>> {
        self.last.recorded()?.to_app_block(self.body_sent)
    }
}

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
