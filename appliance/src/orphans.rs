//! The orphan table: connections this box answers for but does not hold —
//! inherited from a dead or drained box and not restored yet, or held by
//! another box that took them over — and where their frames go.
//!
//! The control core writes it (takeover, adopt, start-up); the workers read
//! it only for segments of connections they do not know, never on the
//! steady-state path. It knows nothing of how orphans are found or split.
use std::collections::HashMap;
use std::sync::RwLock;

use baton_dataplane::tcp::{FourTuple, SeqNum, State, TcbExport};
use baton_dataplane::wire::ethernet::MacAddr;

use crate::http::ResponseCheckpoint;

/// What the control core attaches to a restored connection for the
/// worker's app: the response it was sending when its box died.
pub type RestoreData = Option<ResponseCheckpoint>;

/// What a survivor needs to resume one orphan.
#[derive(Debug, Clone)]
pub struct Orphan {
    /// The TCP block, as the dataplane restores it.
    pub export: TcbExport,
    /// The HTTP response in flight, if any.
    pub response: RestoreData,
    /// An HTTPS connection's sealed TLS block (opened with `cluster.key`
    /// by the worker that restores it).
    pub tls: Option<Vec<u8>>,
    /// Another protocol's state (`app_protocol` 2: an FTP bundle member's
    /// records, `baton_ftp::checkpoint`), unread here.
    pub app_state: Option<Vec<u8>>,
}

/// What the worker's app is handed with a restored connection (the
/// dataplane carries it opaquely).
#[derive(Debug, Default)]
pub struct Restore {
    /// The HTTP response in flight, if any.
    pub response: RestoreData,
    /// An HTTPS connection's sealed TLS block.
    pub tls: Option<Vec<u8>>,
    /// Another protocol's state (see [`Orphan::app_state`]).
    pub app_state: Option<Vec<u8>>,
}

/// Where an orphan's packets go.
#[derive(Debug, Clone)]
pub enum OrphanRoute {
    /// Ours: restore it here.
    Mine(Box<Orphan>),
    /// Another box's: forward its frames to this MAC.
    Elsewhere(MacAddr),
}

/// Orphans and their routes, by connection.
#[derive(Debug, Default)]
pub struct OrphanTable {
    routes: RwLock<HashMap<FourTuple, OrphanRoute>>,
}

impl OrphanTable {
    /// Where the segments of `tuple` go, if it is an orphan.
    pub fn route(&self, tuple: &FourTuple) -> Option<OrphanRoute> {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        routes.get(tuple).cloned()
    }

    /// Adds routes (after a takeover decision).
    pub fn extend(&self, new: impl IntoIterator<Item = (FourTuple, OrphanRoute)>) {
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        routes.extend(new);
    }

    /// True while `tuple` is an orphan this box is to restore (not restored
    /// yet, not ended).
    pub fn is_mine(&self, tuple: &FourTuple) -> bool {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        matches!(routes.get(tuple), Some(OrphanRoute::Mine(_)))
    }

    /// The orphan has been restored (or has ended): forget it, so a late
    /// segment of a closed connection is never restored a second time.
    pub fn remove(&self, tuple: &FourTuple) {
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        routes.remove(tuple);
    }
}

impl Orphan {
    /// The TCP block to restore and what the worker's app gets with it.
    pub fn into_restore(self) -> (TcbExport, Restore) {
        (
            self.export,
            Restore {
                response: self.response,
                tls: self.tls,
                app_state: self.app_state,
            },
        )
    }

    /// True when its box had sent all it had to send at the checkpoint and
    /// the client had acknowledged it: an established connection, every
    /// byte sent acknowledged, its last response (if any) whole, with no
    /// upload, TLS or other protocol's state — an idle keep-alive
    /// connection, whose box writes one more record once its response is
    /// acknowledged and it rests (`serve::checkpoint::Checkpointer::settle_due`).
    /// Nothing of it waits on a survivor: its client's next segment
    /// restores it (lazily) without a probe (`control::pace`).
    pub fn sent_everything(&self) -> bool {
        let e = &self.export;
        e.state == State::Established
            && e.snd_una == e.snd_nxt
            && self.tls.is_none()
            && self.app_state.is_none()
            && self
                .response
                .as_ref()
                .is_none_or(|cp| cp.sent_whole_by(SeqNum(e.snd_nxt)))
    }

    /// The route that restores this orphan here, keyed by its connection.
    pub fn route_here(self) -> (FourTuple, OrphanRoute) {
        (self.export.tuple, OrphanRoute::Mine(Box::new(self)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orphan(snd_una: u32, snd_nxt: u32, response: RestoreData) -> Orphan {
        Orphan {
            export: TcbExport {
                snd_una,
                snd_nxt,
                ..crate::control::takeover::tests::export(1)
            },
            response,
            tls: None,
            app_state: None,
        }
    }

    fn response(start: u32, len: u64) -> RestoreData {
        Some(ResponseCheckpoint {
            object_start_seq: SeqNum(start),
            status: 200,
            body_len: Some(len),
            ..ResponseCheckpoint::unrecorded()
        })
    }

    #[test]
    fn only_a_connection_whose_box_had_sent_everything_waits_for_its_client() {
        assert!(
            orphan(9000, 9000, None).sent_everything(),
            "between requests"
        );
        assert!(
            orphan(9000, 9000, response(8000, 1000)).sent_everything(),
            "its last response sent whole and acknowledged"
        );
        assert!(
            !orphan(8500, 9000, response(8000, 1000)).sent_everything(),
            "sent whole, its end not acknowledged: the client may wait for it"
        );
        assert!(
            !orphan(9000, 9000, response(8000, 5000)).sent_everything(),
            "the body not all sent"
        );
        assert!(
            !orphan(8500, 9000, None).sent_everything(),
            "bytes of no response in flight"
        );
        let mut tls = orphan(9000, 9000, None);
        tls.tls = Some(vec![1]);
        assert!(!tls.sent_everything(), "TLS state to restore");
        let mut ftp = orphan(9000, 9000, None);
        ftp.app_state = Some(vec![1]);
        assert!(!ftp.sent_everything(), "another protocol's state");
        let mut closing = orphan(9000, 9000, None);
        closing.export.state = State::CloseWait;
        assert!(!closing.sent_everything(), "not established");
    }
}
