//! What the workers of one box share for FTP (issue 17): the passive ports
//! in use and the messages between a control connection and its data
//! connection — on one worker when the fanout steers the passive range
//! (`serve::ftp::steer`), on two when it cannot (DPDK) or when a survivor
//! restored the pair (the control by its client's hash, the data by its
//! port) —, the restored members waiting for each other, and the catalog
//! the sessions list and size objects from.
//!
//! A control session reserves `(service IP, port)` on PASV/EPSV; the worker
//! that accepts a connection to that port claims it here and the control's
//! worker is told (`CtlEvent::Connected`); the control's session decides
//! (its own client or not) and sends the data worker `DataEvent::Start` or
//! `Refuse`; the data worker reports `Done` or `Failed`. It must not know
//! the FTP session's rules, TCP or the cache: it only routes.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use baton_dataplane::worker::Waker;
use baton_ftp::{DataKind, Entry};

/// A connection somewhere in the box: its worker and its id there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Where<C> {
    /// The worker.
    pub worker: usize,
    /// The connection on that worker.
    pub conn: C,
}

/// What a control connection is told about its data connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlEvent<C> {
    /// A connection from `peer` reached the passive port.
    Connected(IpAddr, Where<C>),
    /// Every byte of the transfer was sent and the data connection closed.
    Done,
    /// The data connection broke before the end.
    Failed,
    /// A restored data connection (takeover) belongs to this restored
    /// control connection: its transfer is running.
    Adopted(Where<C>),
    /// The active-mode data connection this control connection opened was
    /// refused or timed out.
    ConnectFailed,
}

/// What a data connection is told by its control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataEvent<C> {
    /// Send this, and report to that control connection.
    Start(DataKind, Where<C>),
    /// Not the client's (or not wanted): reset it.
    Refuse,
    /// The control connection gave up the transfer (ABOR, QUIT, timeout).
    Close,
    /// A restored control connection (takeover) owns this restored data
    /// connection: report to it.
    Adopt(Where<C>),
}

/// A message for one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<C> {
    /// For control connection `ctl`.
    Control {
        /// The control connection (on the receiving worker).
        ctl: C,
        /// What happened.
        ev: CtlEvent<C>,
    },
    /// For data connection `data`.
    Data {
        /// The data connection (on the receiving worker).
        data: C,
        /// What to do.
        ev: DataEvent<C>,
    },
}

/// One reserved passive port.
#[derive(Debug, Clone)]
struct Passive<C> {
    owner: Where<C>,
    data: Option<Where<C>>,
}

struct State<C> {
    passive: HashMap<(IpAddr, u16), Passive<C>>,
    /// Restored data connections whose control connection is not
    /// restored yet (a takeover restores a bundle's members one by one).
    restored: HashMap<(IpAddr, u16), Where<C>>,
    inbox: HashMap<usize, Vec<Event<C>>>,
    wakers: HashMap<usize, Waker>,
}

/// The box's FTP routing table and catalog, over connection ids `C`.
pub struct FtpHub<C> {
    state: Mutex<State<C>>,
    /// Set when some inbox holds events: workers look without locking.
    pending: AtomicBool,
    catalog: RwLock<Arc<Vec<Entry>>>,
}

impl<C> Default for FtpHub<C> {
    fn default() -> Self {
        FtpHub {
            state: Mutex::new(State {
                passive: HashMap::new(),
                restored: HashMap::new(),
                inbox: HashMap::new(),
                wakers: HashMap::new(),
            }),
            pending: AtomicBool::new(false),
            catalog: RwLock::default(),
        }
    }
}

impl<C: Copy + Eq + std::fmt::Debug> FtpHub<C> {
    fn lock(&self) -> MutexGuard<'_, State<C>> {
        // A worker that panicked holding the lock is stopped by
        // crate::fatal; the table itself stays consistent per call.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `worker`'s waker, for the events posted to it.
    pub fn register(&self, worker: usize, waker: Waker) {
        self.lock().wakers.insert(worker, waker);
    }

    /// True when `(ip, port)` is not reserved by any session.
    pub fn is_free(&self, ip: IpAddr, port: u16) -> bool {
        !self.lock().passive.contains_key(&(ip, port))
    }

    /// Reserves `(ip, port)` for control connection `owner`; false when
    /// another session holds it.
    pub fn reserve(&self, ip: IpAddr, port: u16, owner: Where<C>) -> bool {
        let mut s = self.lock();
        match s.passive.get(&(ip, port)) {
            Some(p) if p.owner != owner => false,
            _ => {
                s.passive.insert((ip, port), Passive { owner, data: None });
                true
            }
        }
    }

    /// Gives up `owner`'s reservation of `(ip, port)`; its data
    /// connection, if any, is told `ev`.
    pub fn release(&self, ip: IpAddr, port: u16, owner: Where<C>, ev: Option<DataEvent<C>>) {
        let mut s = self.lock();
        if s.passive.get(&(ip, port)).is_some_and(|p| p.owner == owner) {
            if let Some(p) = s.passive.remove(&(ip, port)) {
                if let (Some(d), Some(ev)) = (p.data, ev) {
                    post(&mut s, d.worker, Event::Data { data: d.conn, ev });
                    self.pending.store(true, Ordering::Release);
                }
            }
        }
    }

    /// A connection from `peer` reached `(ip, port)` as `data`: its
    /// control connection is told. False when nobody reserved the port or
    /// it already has its data connection (the caller resets this one).
    pub fn data_arrived(&self, ip: IpAddr, port: u16, peer: IpAddr, data: Where<C>) -> bool {
        let mut s = self.lock();
        let Some(p) = s.passive.get_mut(&(ip, port)) else {
            return false;
        };
        if p.data.is_some() {
            return false;
        }
        p.data = Some(data);
        let owner = p.owner;
        post(
            &mut s,
            owner.worker,
            Event::Control {
                ctl: owner.conn,
                ev: CtlEvent::Connected(peer, data),
            },
        );
        self.pending.store(true, Ordering::Release);
        true
    }

    /// A restored control connection `owner` takes back its passive port
    /// (its data connection was connected when the checkpoint was written):
    /// returns the restored data connection if it came first (it is then
    /// the port's), else it will find the reservation. False in the first
    /// field when another session holds the port.
    pub fn reserve_restored(
        &self,
        ip: IpAddr,
        port: u16,
        owner: Where<C>,
    ) -> (bool, Option<Where<C>>) {
        let mut s = self.lock();
        if s.passive.get(&(ip, port)).is_some_and(|p| p.owner != owner) {
            return (false, None);
        }
        let data = s.restored.remove(&(ip, port));
        s.passive.insert((ip, port), Passive { owner, data });
        (true, data)
    }

    /// A restored data connection to `(ip, port)`: its control connection
    /// if that is restored already (the port is then this connection's),
    /// else it is remembered for [`FtpHub::reserve_restored`].
    pub fn data_restored(&self, ip: IpAddr, port: u16, data: Where<C>) -> Option<Where<C>> {
        let mut s = self.lock();
        match s.passive.get_mut(&(ip, port)) {
            Some(p) if p.data.is_none() || p.data == Some(data) => {
                p.data = Some(data);
                Some(p.owner)
            }
            Some(_) => None,
            None => {
                s.restored.insert((ip, port), data);
                None
            }
        }
    }

    /// The reservation forgets a refused data connection and waits for
    /// the client's own.
    pub fn data_refused(&self, ip: IpAddr, port: u16, data: Where<C>) {
        let mut s = self.lock();
        if s.restored.get(&(ip, port)) == Some(&data) {
            s.restored.remove(&(ip, port));
        }
        if let Some(p) = s.passive.get_mut(&(ip, port)) {
            if p.data == Some(data) {
                p.data = None;
            }
        }
    }

    /// Sends `ev` to a connection on any worker.
    pub fn post(&self, to: Where<C>, ev: Event<C>) {
        let mut s = self.lock();
        debug_assert!(
            matches!(&ev, Event::Control { ctl, .. } | Event::Data { data: ctl, .. } if *ctl == to.conn)
        );
        post(&mut s, to.worker, ev);
        self.pending.store(true, Ordering::Release);
    }

    /// The events waiting for `worker`.
    pub fn take(&self, worker: usize) -> Vec<Event<C>> {
        if !self.pending.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut s = self.lock();
        let out = s.inbox.remove(&worker).unwrap_or_default();
        if s.inbox.values().all(Vec::is_empty) {
            self.pending.store(false, Ordering::Release);
        }
        out
    }

    /// The objects the sessions list (the origin's index, last read).
    pub fn catalog(&self) -> Arc<Vec<Entry>> {
        Arc::clone(&self.catalog.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the catalog.
    pub fn set_catalog(&self, entries: Vec<Entry>) {
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(entries);
    }
}

fn post<C>(s: &mut State<C>, worker: usize, ev: Event<C>) {
    s.inbox.entry(worker).or_default().push(ev);
    if let Some(w) = s.wakers.get(&worker) {
        w.wake();
    }
}

/// Parses the origin's index (`/.ftp-index`): one object a line,
/// `name size mtime` (seconds since the epoch), separated by spaces; blank
/// lines and `#` comments are skipped, a malformed line is left out (the
/// catalog is advisory: RETR of an unlisted object gets 550).
pub fn parse_index(text: &str) -> Vec<Entry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?.to_string();
            let size = f.next()?.parse().ok()?;
            let modified = f.next().and_then(|m| m.parse().ok()).unwrap_or(0);
            Some(Entry {
                name,
                size,
                modified,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(worker: usize, conn: u32) -> Where<u32> {
        Where { worker, conn }
    }

    #[test]
    fn a_data_connection_reaches_the_control_on_its_worker() {
        let hub = FtpHub::<u32>::default();
        let ip: IpAddr = "198.18.0.10".parse().unwrap();
        let client: IpAddr = "198.18.1.2".parse().unwrap();
        assert!(hub.is_free(ip, 40000));
        assert!(hub.reserve(ip, 40000, w(0, 1)));
        assert!(!hub.reserve(ip, 40000, w(1, 9)), "another session's port");
        assert!(!hub.is_free(ip, 40000));
        assert!(hub.take(0).is_empty());
        assert!(hub.data_arrived(ip, 40000, client, w(1, 5)));
        assert!(
            !hub.data_arrived(ip, 40000, client, w(1, 6)),
            "one data connection"
        );
        assert!(
            !hub.data_arrived(ip, 40001, client, w(1, 7)),
            "not reserved"
        );
        assert_eq!(
            hub.take(0),
            vec![Event::Control {
                ctl: 1,
                ev: CtlEvent::Connected(client, w(1, 5))
            }]
        );
        assert!(hub.take(0).is_empty());
        hub.release(ip, 40000, w(0, 1), Some(DataEvent::Close));
        assert_eq!(
            hub.take(1),
            vec![Event::Data {
                data: 5,
                ev: DataEvent::Close
            }]
        );
        assert!(hub.is_free(ip, 40000));
    }

    #[test]
    fn a_refused_data_connection_leaves_the_port_waiting() {
        let hub = FtpHub::<u32>::default();
        let ip: IpAddr = "198.18.0.10".parse().unwrap();
        let other: IpAddr = "198.18.1.99".parse().unwrap();
        assert!(hub.reserve(ip, 40001, w(0, 1)));
        assert!(hub.data_arrived(ip, 40001, other, w(0, 2)));
        hub.data_refused(ip, 40001, w(0, 2));
        assert!(hub.data_arrived(ip, 40001, other, w(0, 3)));
        // Only the owner releases.
        hub.release(ip, 40001, w(1, 1), None);
        assert!(!hub.is_free(ip, 40001));
    }

    #[test]
    fn restored_members_find_each_other_in_either_order() {
        let hub = FtpHub::<u32>::default();
        let ip: IpAddr = "198.18.0.11".parse().unwrap();
        // Data first: remembered, then handed to the control.
        assert_eq!(hub.data_restored(ip, 40002, w(0, 7)), None);
        assert_eq!(
            hub.reserve_restored(ip, 40002, w(0, 3)),
            (true, Some(w(0, 7)))
        );
        assert!(!hub.is_free(ip, 40002));
        let client: IpAddr = "198.18.1.2".parse().unwrap();
        assert!(
            !hub.data_arrived(ip, 40002, client, w(0, 8)),
            "the port has its data connection"
        );
        // Control first: the data connection finds its owner.
        assert_eq!(hub.reserve_restored(ip, 40003, w(1, 4)), (true, None));
        assert_eq!(hub.data_restored(ip, 40003, w(0, 9)), Some(w(1, 4)));
        // Another session's port is not taken back.
        assert_eq!(hub.reserve_restored(ip, 40003, w(0, 5)), (false, None));
        // A data connection whose control never came is forgotten.
        assert_eq!(hub.data_restored(ip, 40004, w(0, 10)), None);
        hub.data_refused(ip, 40004, w(0, 10));
        assert_eq!(hub.reserve_restored(ip, 40004, w(0, 6)), (true, None));
    }

    #[test]
    fn the_index_skips_what_it_cannot_read() {
        let e = parse_index("# objects\na.bin 1024 1700000000\n\nbad\nb.bin x 1\nc 5\n");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].name, "a.bin");
        assert_eq!(e[0].size, 1024);
        assert_eq!(e[1].modified, 0);
    }
}
