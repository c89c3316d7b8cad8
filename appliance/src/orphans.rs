//! The orphan table: connections this box answers for but does not hold —
//! inherited from a dead or drained box and not restored yet, or held by
//! another box that took them over — and where their frames go.
//!
//! The control core writes it (takeover, adopt, start-up); the workers read
//! it only for segments of connections they do not know, never on the
//! steady-state path — but right after a takeover those are every orphan's
//! client, so the write lock is held only to swap or merge routes built
//! beforehand ([`NewRoutes`]), and a lookup shares the orphan
//! ([`OrphanRoute::Mine`] holds an [`Arc`]) instead of copying it. It knows
//! nothing of how orphans are found or split.
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

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
    /// Ours: restore it here. Shared with the takeover's restore thread
    /// (and any worker that looked it up): whoever restores it passes the
    /// [`Arc`] on as the restore's data, and the app takes the parts out
    /// ([`Restore::from_data`]) once the table has let go of it.
    Mine(Arc<Orphan>),
    /// Another box's: forward its frames to this MAC.
    Elsewhere(MacAddr),
}

/// Routes by connection, built before they go into the table
/// ([`OrphanTable::install`]): hashing a takeover's 300,000 routes takes
/// tenths of a second, which the workers' lookups must not wait for.
#[derive(Debug, Default)]
pub struct NewRoutes(HashMap<FourTuple, OrphanRoute>);

impl NewRoutes {
    /// Room for `n` routes.
    pub fn with_capacity(n: usize) -> NewRoutes {
        NewRoutes(HashMap::with_capacity(n))
    }

    /// Adds a route; a later route of the same connection replaces it, as
    /// in the table.
    pub fn insert(&mut self, tuple: FourTuple, route: OrphanRoute) {
        self.0.insert(tuple, route);
    }

    /// How many connections are routed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no connection is routed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(FourTuple, OrphanRoute)> for NewRoutes {
    fn from_iter<I: IntoIterator<Item = (FourTuple, OrphanRoute)>>(iter: I) -> NewRoutes {
        NewRoutes(iter.into_iter().collect())
    }
}

/// Orphans and their routes, by connection.
#[derive(Debug, Default)]
pub struct OrphanTable {
    routes: RwLock<HashMap<FourTuple, OrphanRoute>>,
}

impl OrphanTable {
    /// Where the segments of `tuple` go, if it is an orphan. An orphan of
    /// ours is shared, not copied.
    pub fn route(&self, tuple: &FourTuple) -> Option<OrphanRoute> {
        self.read().get(tuple).cloned()
    }

    /// Adds routes (a new route of a connection replaces its old one),
    /// built before the lock is taken (see [`OrphanTable::install`]).
    pub fn extend(&self, new: impl IntoIterator<Item = (FourTuple, OrphanRoute)>) {
        self.install(new.into_iter().collect());
    }

    /// Adds one route (a hand-off), replacing the connection's old one.
    pub fn insert(&self, tuple: FourTuple, route: OrphanRoute) {
        let replaced = self.write().insert(tuple, route);
        drop(replaced);
    }

    /// Adds routes built beforehand (a takeover's). The write lock is held
    /// only to take them in: an empty table — a box's first takeover —
    /// swaps its map for theirs; otherwise the smaller map is merged into
    /// the larger, with room for both made before the lock where it can
    /// be. What is freed is freed after the lock is released.
    pub fn install(&self, new: NewRoutes) {
        let mut new = new.0;
        if new.is_empty() {
            return;
        }
        let held = self.read().len();
        if held < new.len() {
            new.reserve(held);
        }
        let freed = merge(&mut self.write(), new);
        drop(freed);
    }

    /// True while `tuple` is an orphan this box is to restore (not restored
    /// yet, not ended).
    pub fn is_mine(&self, tuple: &FourTuple) -> bool {
        matches!(self.read().get(tuple), Some(OrphanRoute::Mine(_)))
    }

    /// The orphan has been restored (or has ended): forget it, so a late
    /// segment of a closed connection is never restored a second time.
    pub fn remove(&self, tuple: &FourTuple) {
        let removed = self.write().remove(tuple);
        drop(removed);
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<FourTuple, OrphanRoute>> {
        self.routes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<FourTuple, OrphanRoute>> {
        self.routes.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Merges `new` into `routes`, a new route of a connection replacing its
/// old one, in work proportional to the smaller map: into an empty
/// `routes`, a swap. Returns the map left over, empty, for the caller to
/// free once the lock is released.
fn merge(
    routes: &mut HashMap<FourTuple, OrphanRoute>,
    mut new: HashMap<FourTuple, OrphanRoute>,
) -> HashMap<FourTuple, OrphanRoute> {
    if routes.len() < new.len() {
        for (tuple, route) in routes.drain() {
            new.entry(tuple).or_insert(route);
        }
        std::mem::swap(routes, &mut new);
        new
    } else {
        routes.extend(new);
        HashMap::new()
    }
}

impl Restore {
    /// What a restore's opaque data holds for the app: a shared orphan
    /// (the control core's restores and lazy ones, [`OrphanRoute::Mine`]),
    /// its parts taken without a copy once no one else holds it; a
    /// [`Restore`]; or a bare response (a caller that knows no TLS), a
    /// plain connection's.
    pub fn from_data(data: Box<dyn Any + Send>) -> Restore {
        let data = match data.downcast::<Arc<Orphan>>() {
            Ok(shared) => return Arc::unwrap_or_clone(*shared).into_restore().1,
            Err(data) => data,
        };
        match data.downcast::<Restore>() {
            Ok(b) => *b,
            Err(data) => Restore {
                response: data.downcast::<RestoreData>().map(|b| *b).unwrap_or(None),
                ..Restore::default()
            },
        }
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
    pub fn route_here(self: Arc<Self>) -> (FourTuple, OrphanRoute) {
        (self.export.tuple, OrphanRoute::Mine(self))
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

    // The table: routes in, lookups out, without copies or long locks.

    const OLD: MacAddr = MacAddr([2, 0, 0, 0, 0, 7]);
    const NEW: MacAddr = MacAddr([2, 0, 0, 0, 0, 9]);

    fn tuple(n: u16) -> FourTuple {
        crate::control::takeover::tests::export(n).tuple
    }

    /// An orphan as a takeover reads one: its response's URL and
    /// validators are heap strings.
    fn shared(n: u16) -> Arc<Orphan> {
        Arc::new(Orphan {
            export: crate::control::takeover::tests::export(n),
            response: Some(ResponseCheckpoint {
                url: format!("/objects/{n}"),
                etag: Some(format!("\"{n}\"")),
                status: 200,
                ..ResponseCheckpoint::unrecorded()
            }),
            tls: None,
            app_state: None,
        })
    }

    fn forwarded_to(table: &OrphanTable, n: u16) -> Option<MacAddr> {
        match table.route(&tuple(n)) {
            Some(OrphanRoute::Elsewhere(mac)) => Some(mac),
            _ => None,
        }
    }

    #[test]
    fn an_empty_table_takes_the_built_routes_whole_by_a_swap() {
        let mut built = NewRoutes::with_capacity(4096);
        built.insert(tuple(1), OrphanRoute::Elsewhere(NEW));
        let (key, route) = shared(2).route_here();
        built.insert(key, route);
        let room = built.0.capacity();
        let table = OrphanTable::default();
        table.install(built);
        assert_eq!(
            table.read().capacity(),
            room,
            "the built map itself, its routes not inserted one by one"
        );
        assert_eq!(forwarded_to(&table, 1), Some(NEW));
        assert!(table.is_mine(&tuple(2)));
    }

    #[test]
    fn into_a_table_with_routes_new_ones_merge_and_replace_a_connections_old_route() {
        // The smaller map goes into the larger, whichever it is.
        for (held, added) in [(3u16, 100u16), (100, 3)] {
            let table = OrphanTable::default();
            table.extend((1..=held).map(|n| (tuple(n), OrphanRoute::Elsewhere(OLD))));
            table.extend((held..held + added).map(|n| (tuple(n), OrphanRoute::Elsewhere(NEW))));
            assert_eq!(table.read().len(), usize::from(held + added - 1));
            assert_eq!(forwarded_to(&table, 1), Some(OLD), "an old route kept");
            assert_eq!(
                forwarded_to(&table, held),
                Some(NEW),
                "the new route replaces the connection's old one"
            );
            assert_eq!(forwarded_to(&table, held + added - 1), Some(NEW));
        }
        let table = OrphanTable::default();
        table.extend([shared(1).route_here()]);
        table.insert(tuple(1), OrphanRoute::Elsewhere(NEW));
        assert_eq!(forwarded_to(&table, 1), Some(NEW), "handed off after all");
    }

    #[test]
    fn a_lookup_shares_the_orphan_it_does_not_copy_it() {
        let orphan = shared(1);
        let table = OrphanTable::default();
        table.extend([Arc::clone(&orphan).route_here()]);
        let Some(OrphanRoute::Mine(found)) = table.route(&tuple(1)) else {
            panic!("not routed here");
        };
        assert!(Arc::ptr_eq(&found, &orphan), "the same orphan");
        assert_eq!(
            Arc::strong_count(&orphan),
            3,
            "held by the restore thread, the table and the lookup"
        );
    }

    #[test]
    fn a_restored_orphan_no_one_else_holds_gives_its_parts_without_a_copy() {
        let orphan = shared(1);
        let url_at = orphan.response.as_ref().map(|r| r.url.as_ptr());
        let table = OrphanTable::default();
        table.extend([Arc::clone(&orphan).route_here()]);
        // The worker restored it: the table forgets it, the app takes its
        // parts.
        table.remove(&tuple(1));
        let restore = Restore::from_data(Box::new(orphan));
        assert_eq!(
            restore.response.as_ref().map(|r| r.url.as_ptr()),
            url_at,
            "the response moved, not copied"
        );
    }

    #[test]
    fn an_orphan_still_shared_when_restored_gives_a_copy_and_stays_whole() {
        let orphan = shared(1);
        let restore_thread = Arc::clone(&orphan);
        let restore = Restore::from_data(Box::new(orphan));
        assert_eq!(restore.response, restore_thread.response);
        assert_eq!(
            restore_thread.response.as_ref().map(|r| r.status),
            Some(200)
        );
    }

    #[test]
    fn a_restored_orphan_is_forgotten_and_a_forwarded_one_is_not_ours() {
        let table = OrphanTable::default();
        table.extend([
            shared(1).route_here(),
            (tuple(2), OrphanRoute::Elsewhere(OLD)),
        ]);
        assert!(table.is_mine(&tuple(1)));
        assert!(!table.is_mine(&tuple(2)), "forwarded, not restored here");
        table.remove(&tuple(1));
        assert!(!table.is_mine(&tuple(1)));
        assert!(
            table.route(&tuple(1)).is_none(),
            "a late segment never restores it again"
        );
        assert_eq!(forwarded_to(&table, 2), Some(OLD));
    }
}
