//! FTP over one worker's connections (issue 17): control connections run
//! the `baton-ftp` session; connections to a passive port are data
//! connections, claimed through the box's [`FtpHub`] (their control
//! connection is usually on another worker) and fed from the cache with
//! the REST offset as the start, or with the session's listing bytes.
//!
//! A control connection and its data connection on one worker are
//! checkpointed as one bundle and restored by a survivor (`bundle`).
//!
//! It carries bytes and events between the session, TCP and the cache and
//! decides nothing of FTP (the session's rules), nor which worker gets a
//! connection (the port's fanout). Not built yet: active mode (the
//! dataplane opens no connections: PORT/EPRT's data connection fails with
//! 425).
mod bundle;

use std::collections::HashMap;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use baton_dataplane::app::{CloseReason, Ctx};
use baton_dataplane::flow::ConnId;
use baton_dataplane::port::PortSteer;
use baton_dataplane::tcp::{FourTuple, SeqNum, State};
use baton_ftp::{Action, DataKind, Session};
use bytes::Bytes;
use tracing::{debug, info};

use super::ftp_hub::{CtlEvent, DataEvent, Event, FtpHub, Where};
use crate::cache::{Cache, Object, Read};
use crate::http::context::WorkerContext;

/// The box's FTP service, shared by every worker.
pub struct FtpServe {
    /// Session limits and the passive range.
    pub config: baton_ftp::Config,
    /// Control port.
    pub port: u16,
    /// Routing between workers, and the catalog.
    pub hub: Arc<FtpHub<ConnId>>,
    /// The dataplane's workers and its steering of the passive range
    /// ([`steer`]); `None`: data connections land by the client's hash.
    pub steer: Option<(PortSteer, usize)>,
}

/// The port steering FTP asks of the dataplane: its passive range, so
/// that a data connection reaches the worker of its control connection
/// (`(port - min) mod workers`; docs/FTP.md). None when FTP is off or
/// the backend cannot steer (DPDK: the hub's cross-worker events then
/// carry every pair, and only same-worker pairs are checkpointed).
pub fn steer(config: &baton_config::Config) -> Option<PortSteer> {
    let f = &config.ftp;
    let steerable = !matches!(config.dataplane.backend, baton_config::Backend::Dpdk);
    (f.enabled && steerable).then_some(PortSteer {
        min: f.passive_port_min,
        max: f.passive_port_max,
    })
}

impl FtpServe {
    /// The service `[ftp]` describes, with its catalog thread started;
    /// `None` when FTP is off.
    pub fn from_config(config: &baton_config::Config) -> Option<Arc<FtpServe>> {
        let f = &config.ftp;
        if !f.enabled {
            return None;
        }
        let hub = Arc::new(FtpHub::default());
        match crate::cache::Origin::from_config(&config.cache) {
            Some(origin) => super::ftp_index::spawn(origin, Arc::clone(&hub)),
            None => tracing::warn!("FTP: the origin is no IP address: listings stay empty"),
        }
        Some(Arc::new(FtpServe {
            config: baton_ftp::Config {
                passive_ports: (f.passive_port_min, f.passive_port_max),
                max_line: f.max_command_bytes as usize,
                idle_timeout_ms: f.idle_timeout_ms,
            },
            port: f.port,
            hub,
            steer: steer(config).map(|s| (s, config.dataplane.workers.max(1))),
        }))
    }

    /// True when `port` is a passive data port.
    fn is_passive(&self, port: u16) -> bool {
        let (lo, hi) = self.config.passive_ports;
        (lo..=hi).contains(&port)
    }

    /// True when a connection to local `port` is FTP's.
    pub fn claims(&self, port: u16) -> bool {
        port == self.port || self.is_passive(port)
    }

    /// True when a data connection to passive `port` reaches `worker`:
    /// the ports a session of that worker may offer.
    fn reaches(&self, port: u16, worker: usize) -> bool {
        match self.steer {
            Some((s, n)) => s.worker_of_port(port, n).is_none_or(|w| w == worker),
            None => true,
        }
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

struct Control {
    session: Session,
    local: IpAddr,
    passive: Option<u16>,
    data: Option<Where<ConnId>>,
    seen: baton_ftp::session::Counters,
}

enum Stream {
    /// Accepted; its control connection has not said what to send.
    Waiting,
    Listing(Bytes),
    Object {
        object: Arc<Object>,
        pos: u64,
    },
    /// Everything queued and the FIN sent.
    Finished,
}

struct DataConn {
    /// The control connection to report to (none until it said Start, or
    /// after its report).
    ctl: Option<Where<ConnId>>,
    key: (IpAddr, u16),
    stream: Stream,
    /// The sequence number of the transfer's first byte (its bundle's
    /// data record), once it started.
    first_seq: Option<SeqNum>,
}

/// One worker's FTP connections.
pub struct FtpConns {
    serve: Arc<FtpServe>,
    cache: Arc<Cache>,
    /// The worker's HTTP context: FTP's counters go with HTTP's.
    context: Arc<WorkerContext>,
    worker: usize,
    epoch: Instant,
    registered: bool,
    /// When the sessions' idle limits were last looked at (virtual ms).
    last_tick: u64,
    controls: HashMap<ConnId, Control>,
    datas: HashMap<ConnId, DataConn>,
    /// Control connections whose bundle is to be written (`bundle`).
    due: HashSet<ConnId>,
    /// Connections that left their bundle: their client bytes are
    /// acknowledged freely from now on.
    left: Vec<ConnId>,
    /// Control connections whose bundle had its last write (a freeze for
    /// a drain or a handoff): nothing more is written or sent.
    frozen: HashSet<ConnId>,
    /// Active-mode data connections being opened, and their control
    /// connections (told if the client refuses).
    connecting: HashMap<ConnId, Where<ConnId>>,
    /// Where the next active-mode port search starts in the passive range
    /// (a port just closed may still be in TIME-WAIT with the client).
    next_active: u16,
}

/// How often idle limits are checked, virtual milliseconds.
const TICK_MS: u64 = 1000;

/// Largest piece of an object sent at once.
const CHUNK: usize = 64 * 1024;

impl FtpConns {
    /// Worker `worker`'s share of `serve`.
    pub fn new(
        serve: Arc<FtpServe>,
        cache: Arc<Cache>,
        context: Arc<WorkerContext>,
        worker: usize,
    ) -> FtpConns {
        FtpConns {
            serve,
            cache,
            context,
            worker,
            epoch: Instant::now(),
            registered: false,
            last_tick: 0,
            controls: HashMap::new(),
            datas: HashMap::new(),
            due: HashSet::new(),
            left: Vec::new(),
            frozen: HashSet::new(),
            connecting: HashMap::new(),
            next_active: 0,
        }
    }

    /// True when `conn` is an FTP connection of this worker.
    pub fn owns(&self, conn: ConnId) -> bool {
        self.controls.contains_key(&conn)
            || self.datas.contains_key(&conn)
            || self.connecting.contains_key(&conn)
    }

    /// True when a new connection to `local_port` is FTP's.
    pub fn claims(&self, local_port: u16) -> bool {
        self.serve.claims(local_port)
    }

    fn ms(&self, ctx: &Ctx<'_>) -> u64 {
        ctx.now().saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn me(&self, conn: ConnId) -> Where<ConnId> {
        Where {
            worker: self.worker,
            conn,
        }
    }

    /// A connection accepted on the control port or a passive port.
    pub fn on_accept(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        // An active-mode data connection established joins its reserved
        // port as a passive one does.
        self.connecting.remove(&conn);
        // Until a bundle holds it (the control's first write, a data
        // connection's transfer start), nothing commits its bytes.
        ctx.set_ack_hold(conn, false);
        let Some(t) = ctx.tuple(conn) else {
            ctx.abort(conn);
            return;
        };
        if t.local.port() != self.serve.port {
            let key = (t.local.ip(), t.local.port());
            if self
                .serve
                .hub
                .data_arrived(key.0, key.1, t.remote.ip(), self.me(conn))
            {
                self.datas.insert(
                    conn,
                    DataConn {
                        ctl: None,
                        key,
                        stream: Stream::Waiting,
                        first_seq: None,
                    },
                );
            } else {
                add(&self.context.counters.ftp_unclaimed_data, 1);
                debug!(tuple = ?t, "FTP data connection to a port nobody waits on: reset");
                ctx.abort(conn);
            }
            return;
        }
        let now = self.ms(ctx);
        let local = SocketAddr::new(t.local.ip(), t.local.port());
        let client = SocketAddr::new(t.remote.ip(), t.remote.port());
        let (session, actions) = Session::new(self.serve.config.clone(), client, local, now);
        add(&self.context.counters.ftp_sessions, 1);
        self.controls.insert(
            conn,
            Control {
                session,
                local: t.local.ip(),
                passive: None,
                data: None,
                seen: Default::default(),
            },
        );
        self.apply(conn, actions, ctx);
    }

    /// Bytes on a control connection, or room on a data connection.
    pub fn on_readable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        if self.datas.contains_key(&conn) {
            // A client sends nothing on a download's data connection.
            let mut sink = [0u8; 512];
            while ctx.recv(conn, &mut sink).unwrap_or(0) > 0 {}
            self.pump(conn, ctx);
            return;
        }
        let now = self.ms(ctx);
        let mut buf = [0u8; 2048];
        loop {
            let n = ctx.recv(conn, &mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            let catalog = self.serve.hub.catalog();
            let Some(c) = self.controls.get_mut(&conn) else {
                return;
            };
            let serve = &self.serve;
            let (local, worker) = (c.local, self.worker);
            let actions = c.session.on_input(&buf[..n], now, &*catalog, &|p| {
                serve.reaches(p, worker) && serve.hub.is_free(local, p)
            });
            self.apply(conn, actions, ctx);
        }
    }

    /// Room to send on `conn`.
    pub fn on_writable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        if self.datas.contains_key(&conn) {
            self.pump(conn, ctx);
            // The ACK that made room may be the one of our FIN.
            self.report_acknowledged(ctx);
        }
    }

    /// The client closed its side.
    pub fn on_peer_closed(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        if self.controls.contains_key(&conn) {
            // The session is over: what it waited for goes with it, and
            // the client's FIN needs no checkpoint to be acknowledged.
            self.left.push(conn);
            ctx.close(conn);
        } else if let Some(d) = self.datas.get(&conn) {
            if !matches!(d.stream, Stream::Finished) {
                ctx.close(conn);
            }
            // A client closes after our FIN, acknowledging it: the worker
            // may poll again only at its next segment.
            self.report_acknowledged(ctx);
        }
    }

    /// `conn` is gone.
    pub fn on_closed(&mut self, conn: ConnId, reason: CloseReason) {
        if let Some(ctl) = self.connecting.remove(&conn) {
            debug!(?reason, "FTP active data connection not established");
            self.serve.hub.post(
                ctl,
                Event::Control {
                    ctl: ctl.conn,
                    ev: CtlEvent::ConnectFailed,
                },
            );
            return;
        }
        if let Some(c) = self.controls.remove(&conn) {
            if let Some(p) = c.passive {
                self.serve
                    .hub
                    .release(c.local, p, self.me(conn), Some(DataEvent::Close));
            }
            return;
        }
        let Some(d) = self.datas.remove(&conn) else {
            return;
        };
        let Some(ctl) = d.ctl else {
            // Never started (refused, or the control went away), or
            // reported already.
            self.serve.hub.data_refused(d.key.0, d.key.1, self.me(conn));
            return;
        };
        let ev = if matches!(d.stream, Stream::Finished) && reason == CloseReason::Normal {
            CtlEvent::Done
        } else {
            CtlEvent::Failed
        };
        self.serve
            .hub
            .post(ctl, Event::Control { ctl: ctl.conn, ev });
    }

    /// Events from other workers, objects that grew, idle limits.
    pub fn poll(&mut self, ctx: &mut Ctx<'_>) {
        if !self.registered {
            self.serve.hub.register(self.worker, ctx.waker());
            self.registered = true;
        }
        for ev in self.serve.hub.take(self.worker) {
            match ev {
                Event::Control { ctl, ev } => self.control_event(ctl, ev, ctx),
                Event::Data { data, ev } => self.data_event(data, ev, ctx),
            }
        }
        // No FTP session on this worker: nothing to pump or tick, and the
        // turn (thousands a second on a busy HTTP worker) costs no more.
        if self.controls.is_empty() && self.datas.is_empty() {
            return;
        }
        let waiting: Vec<ConnId> = self
            .datas
            .iter()
            .filter(|(_, d)| matches!(d.stream, Stream::Object { .. }))
            .map(|(c, _)| *c)
            .collect();
        for conn in waiting {
            self.pump(conn, ctx);
        }
        self.report_acknowledged(ctx);
        let now = self.ms(ctx);
        // Idle limits are in seconds or minutes: a look per second is
        // enough, and a busy worker turns thousands of times a second.
        if now.saturating_sub(self.last_tick) < TICK_MS {
            return;
        }
        self.last_tick = now;
        let ids: Vec<ConnId> = self.controls.keys().copied().collect();
        for conn in ids {
            if let Some(c) = self.controls.get_mut(&conn) {
                let actions = c.session.tick(now);
                if !actions.is_empty() {
                    self.apply(conn, actions, ctx);
                }
            }
        }
    }

    /// A transfer is done when the client acknowledged our FIN, i.e.
    /// every byte (RFC 959: 226 after the data connection closed); the
    /// connection itself may linger in FIN-WAIT-2 or TIME-WAIT.
    ///
    /// The ACK of the FIN may come with no callback for this app (FIN-WAIT
    /// states): until it came, the worker is woken to look again at its
    /// next turn (one round trip of turns per transfer).
    fn report_acknowledged(&mut self, ctx: &mut Ctx<'_>) {
        let mut unacked = false;
        for (conn, d) in self.datas.iter_mut() {
            if !matches!(d.stream, Stream::Finished) || d.ctl.is_none() {
                continue;
            }
            let acked = match ctx.state(*conn) {
                Some(State::FinWait2 | State::TimeWait | State::Closed) | None => true,
                Some(_) => false,
            };
            if !acked {
                unacked = true;
                continue;
            }
            if let Some(ctl) = d.ctl.take() {
                self.left.push(*conn);
                self.serve.hub.post(
                    ctl,
                    Event::Control {
                        ctl: ctl.conn,
                        ev: CtlEvent::Done,
                    },
                );
            }
        }
        if unacked {
            ctx.waker().wake();
        }
    }

    fn control_event(&mut self, conn: ConnId, ev: CtlEvent<ConnId>, ctx: &mut Ctx<'_>) {
        let now = self.ms(ctx);
        let catalog = self.serve.hub.catalog();
        let hub = Arc::clone(&self.serve.hub);
        let Some(c) = self.controls.get_mut(&conn) else {
            if let CtlEvent::Connected(_, data) | CtlEvent::Adopted(data) = ev {
                hub.post(
                    data,
                    Event::Data {
                        data: data.conn,
                        ev: DataEvent::Close,
                    },
                );
            }
            return;
        };
        let local = c.local;
        let (serve, worker) = (Arc::clone(&self.serve), self.worker);
        let free = |p| serve.reaches(p, worker) && hub.is_free(local, p);
        let actions = match ev {
            CtlEvent::Connected(peer, data) => {
                c.data = Some(data);
                c.session.data_connected(peer, now)
            }
            CtlEvent::Done => {
                add(&self.context.counters.ftp_transfers, 1);
                c.session.transfer_done(now, &*catalog, &free)
            }
            CtlEvent::Failed => c.session.transfer_failed(now, &*catalog, &free),
            CtlEvent::Adopted(data) => {
                c.data = Some(data);
                Vec::new()
            }
            CtlEvent::ConnectFailed => {
                if let Some(p) = c.passive.take() {
                    hub.release(local, p, Where { worker, conn }, None);
                }
                c.data = None;
                c.session.data_connect_failed(now)
            }
        };
        self.apply(conn, actions, ctx);
    }

    fn data_event(&mut self, conn: ConnId, ev: DataEvent<ConnId>, ctx: &mut Ctx<'_>) {
        let Some(d) = self.datas.get_mut(&conn) else {
            return;
        };
        match ev {
            DataEvent::Adopt(ctl) => d.ctl = Some(ctl),
            DataEvent::Start(kind, ctl) => {
                d.ctl = Some(ctl);
                d.first_seq = ctx.next_seq(conn);
                if ctl.worker == self.worker {
                    self.due.insert(ctl.conn);
                }
                d.stream = match kind {
                    DataKind::Listing(bytes) => Stream::Listing(Bytes::from(bytes)),
                    DataKind::Retr { object, offset, .. } => {
                        let url = format!("/{object}");
                        match self.cache.try_lookup(&url, ctx.now()) {
                            Ok(l) => Stream::Object {
                                object: Arc::clone(l.object()),
                                pos: offset,
                            },
                            Err(e) => {
                                info!(%url, %e, "FTP RETR: no fetch possible");
                                ctx.abort(conn);
                                return;
                            }
                        }
                    }
                };
                self.pump(conn, ctx);
            }
            DataEvent::Close if matches!(d.stream, Stream::Finished) => {
                // The 226 went out after our FIN was acknowledged: the
                // client closes its side; a reset now would be a lie.
                d.ctl = None;
            }
            DataEvent::Refuse | DataEvent::Close => {
                d.ctl = None;
                ctx.abort(conn);
            }
        }
    }

    /// Sends what fits of `conn`'s transfer; at its end, the FIN.
    fn pump(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let Some(d) = self.datas.get_mut(&conn) else {
            return;
        };
        let mut sent = 0u64;
        let done = loop {
            let room = ctx.send_capacity(conn);
            if room == 0 {
                break false;
            }
            match &mut d.stream {
                Stream::Waiting | Stream::Finished => break false,
                Stream::Listing(bytes) => {
                    let piece = bytes.split_to(room.min(bytes.len()));
                    sent += piece.len() as u64;
                    if !piece.is_empty() && ctx.send(conn, piece).is_err() {
                        break false;
                    }
                    if bytes.is_empty() {
                        break true;
                    }
                }
                Stream::Object { object, pos } => match object.read(*pos, room.min(CHUNK), None) {
                    Read::Data(b) => {
                        let n = b.len() as u64;
                        if ctx.send(conn, b).is_err() {
                            break false;
                        }
                        *pos += n;
                        sent += n;
                    }
                    Read::Pending => break false,
                    Read::End => break true,
                    Read::Failed(e) => {
                        info!(%e, "FTP RETR: the origin fetch failed");
                        ctx.abort(conn);
                        break false;
                    }
                },
            }
        };
        add(&self.context.counters.ftp_data_bytes, sent);
        if done {
            d.stream = Stream::Finished;
            ctx.close(conn);
        }
    }

    /// Carries out a control session's actions.
    fn apply(&mut self, conn: ConnId, actions: Vec<Action>, ctx: &mut Ctx<'_>) {
        let me = self.me(conn);
        let now = self.ms(ctx);
        let hub = Arc::clone(&self.serve.hub);
        let mut more = Vec::new();
        let mut local = Vec::new();
        {
            let Some(c) = self.controls.get_mut(&conn) else {
                return;
            };
            for a in actions {
                match a {
                    Action::Send(bytes) => {
                        if ctx.send(conn, Bytes::from(bytes)).is_err() {
                            debug!("FTP reply not queued: connection gone");
                        }
                    }
                    Action::OpenPassive { port } => {
                        if let Some(old) = c.passive.take() {
                            hub.release(c.local, old, me, Some(DataEvent::Close));
                        }
                        c.data = None;
                        if hub.reserve(c.local, port, me) {
                            c.passive = Some(port);
                        }
                    }
                    Action::ConnectActive { addr } => {
                        if let Some(old) = c.passive.take() {
                            hub.release(c.local, old, me, Some(DataEvent::Close));
                        }
                        c.data = None;
                        match open_active(
                            &self.serve,
                            &mut self.next_active,
                            c.local,
                            addr,
                            me,
                            ctx,
                        ) {
                            Some((port, data)) => {
                                c.passive = Some(port);
                                self.connecting.insert(data, me);
                            }
                            None => {
                                debug!(%addr, "FTP active mode: no local port or 4-tuple free, 425");
                                more = c.session.data_connect_failed(now);
                            }
                        }
                    }
                    Action::StartTransfer(kind) => match c.data {
                        // Started at once on this worker: the bundle
                        // written after this call has the transfer's
                        // first byte.
                        Some(d) if d.worker == me.worker => {
                            local.push((d.conn, DataEvent::Start(kind, me)))
                        }
                        Some(d) => hub.post(
                            d,
                            Event::Data {
                                data: d.conn,
                                ev: DataEvent::Start(kind, me),
                            },
                        ),
                        None => {}
                    },
                    Action::RefuseData => {
                        if let Some(d) = c.data.take() {
                            if let Some(p) = c.passive {
                                hub.data_refused(c.local, p, d);
                            }
                            hub.post(
                                d,
                                Event::Data {
                                    data: d.conn,
                                    ev: DataEvent::Refuse,
                                },
                            );
                        }
                    }
                    Action::CloseData => {
                        if let Some(p) = c.passive.take() {
                            hub.release(c.local, p, me, Some(DataEvent::Close));
                        } else if let Some(d) = c.data {
                            hub.post(
                                d,
                                Event::Data {
                                    data: d.conn,
                                    ev: DataEvent::Close,
                                },
                            );
                        }
                        c.data = None;
                    }
                    Action::Close => ctx.close(conn),
                }
            }
            let seen = c.session.counters();
            let k = &self.context.counters;
            add(&k.ftp_commands, seen.commands - c.seen.commands);
            add(&k.ftp_overlong, seen.overlong - c.seen.overlong);
            add(&k.ftp_bounces, seen.bounces - c.seen.bounces);
            add(&k.ftp_foreign_data, seen.foreign_data - c.seen.foreign_data);
            add(&k.ftp_rejected, seen.rejected - c.seen.rejected);
            c.seen = seen;
        }
        self.due.insert(conn);
        for (data, ev) in local {
            self.data_event(data, ev, ctx);
        }
        if !more.is_empty() {
            self.apply(conn, more, ctx);
        }
    }
}

/// Opens an active-mode data connection from `local` to `client`'s
/// `addr` (RFC 959 PORT, RFC 2428 EPRT; the session checked it is the
/// client's own): from a port of the passive range that reaches this worker
/// and no session holds (the fanout steers that range by local port, so
/// the client's answers come here; RFC 959's port 20 would land on any
/// worker). The port is reserved for `owner` as a passive one is, so the
/// established connection joins it the same way. `None` when no port is
/// free or the 4-tuple is in use.
fn open_active(
    serve: &FtpServe,
    next: &mut u16,
    local: IpAddr,
    addr: SocketAddr,
    owner: Where<ConnId>,
    ctx: &mut Ctx<'_>,
) -> Option<(u16, ConnId)> {
    let (lo, hi) = serve.config.passive_ports;
    let span = hi.checked_sub(lo)? as u32 + 1;
    for i in 0..span {
        let port = lo + ((u32::from(*next) + i) % span) as u16;
        if !serve.reaches(port, owner.worker) || !serve.hub.reserve(local, port, owner) {
            continue;
        }
        let tuple = FourTuple {
            local: SocketAddr::new(local, port),
            remote: addr,
        };
        match ctx.connect(tuple) {
            Some(data) => {
                *next = ((u32::from(port - lo) + 1) % span) as u16;
                return Some((port, data));
            }
            None => serve.hub.release(local, port, owner, None),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(steer: Option<(PortSteer, usize)>) -> FtpServe {
        FtpServe {
            config: baton_ftp::Config {
                passive_ports: (40000, 40031),
                max_line: 512,
                idle_timeout_ms: 300_000,
            },
            port: 21,
            hub: Arc::new(FtpHub::default()),
            steer,
        }
    }

    #[test]
    fn a_session_offers_only_ports_that_reach_its_worker() {
        let s = serve(Some((
            PortSteer {
                min: 40000,
                max: 40031,
            },
            3,
        )));
        for worker in 0..3 {
            let mine: Vec<u16> = (40000..=40031).filter(|&p| s.reaches(p, worker)).collect();
            assert!(mine.iter().all(|p| usize::from(p - 40000) % 3 == worker));
            assert_eq!(mine.len(), if worker < 2 { 11 } else { 10 });
        }
        // Unsteered (DPDK, one worker): every port.
        let s = serve(None);
        assert!((40000..=40031).all(|p| s.reaches(p, 1)));
    }
}
