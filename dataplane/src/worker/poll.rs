//! One worker: its port, its app and the [`Core`] between them, and the
//! loop that drives them ([`Worker::poll`], [`Worker::run`]) and applies
//! the control core's [`Command`]s.

use std::any::Any;

use super::command::{Command, WorkerStats};
use super::config::{PollMode, WorkerConfig};
use super::restore_stats::RestoreStats;
use super::siblings::Siblings;
use super::state::{app_ctx, Core};
use super::waker::Waker;
use crate::app::App;
use crate::flow::FlowTable;
use crate::neighbour::{arp, ndp, NeighbourCache, PendingFrames};
use crate::port::{Port, PortError, RxMeta, TxBatch};
use crate::stats::Counters;
use crate::tcp::TcbExport;
use crate::tcp::{Listener, Tcb};
use crate::timer::TimerWheel;
use crossbeam_channel::{Receiver, TryRecvError};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Longest a worker blocks. Commands and [`Waker::wake`] interrupt the
/// wait at once; the bound only covers a lost wake-up. A sooner TCP timer
/// or [`App::next_deadline`] shortens it.
const MAX_BLOCK: Duration = Duration::from_millis(100);

/// One worker: a port, an app, and the state between them.
pub struct Worker<P: Port, A: App> {
    port: P,
    app: A,
    core: Core,
    idle: u32,
}

impl<P: Port, A: App> Worker<P, A> {
    /// A worker over `port` serving `app`; `now` starts its timer wheel.
    pub fn new(port: P, app: A, mut cfg: WorkerConfig, now: Instant) -> Self {
        // The budget is per worker: a count of its own, whatever the
        // config was cloned from.
        cfg.tcp.buffer_budget = cfg.tcp.buffer_budget.fresh();
        let listener = Listener::new(cfg.tcp.clone(), cfg.cookie_secret);
        let mac = port.mac();
        let offload = port.tx_offload();
        let (udp_max, udp_idle) = (cfg.max_udp_flows, cfg.udp_idle_timeout);
        Worker {
            port,
            app,
            core: Core {
                cfg,
                mac,
                forwarders: Vec::new(),
                client_routes: Default::default(),
                neighbours: NeighbourCache::default(),
                neighbours6: NeighbourCache::default(),
                flows: FlowTable::new(),
                timers: TimerWheel::new(now, Duration::from_millis(1)),
                listener,
                counters: Counters::default(),
                tx: TxBatch::new(),
                touched: Vec::new(),
                fired: Vec::new(),
                events: Vec::new(),
                ip_id: 0,
                half_open: 0,
                waker: Waker::new(),
                siblings: None,
                draining: false,
                offload,
                unready: Default::default(),
                restores: RestoreStats::default(),
                deferred_restores: Default::default(),
                parked_restores: Default::default(),
                parked_tuples: Default::default(),
                parking: Vec::new(),
                resuming: Vec::new(),
                l2_pending: PendingFrames::default(),
                l2_pending6: PendingFrames::default(),
                udp_flows: crate::udpflow::UdpFlowTable::new(udp_max, udp_idle),
                udp_out: Vec::new(),
            },
            idle: 0,
        }
    }

    /// A handle that wakes this worker from its adaptive wait.
    pub fn waker(&self) -> Waker {
        self.core.waker.clone()
    }

    /// Joins the box's other workers: `waker` (the one `siblings` was
    /// linked with) replaces this worker's own, so that news wakes it.
    pub fn join_siblings(&mut self, waker: Waker, siblings: Siblings) {
        self.core.waker = waker;
        self.core.siblings = siblings.any().then_some(siblings);
    }

    /// The worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.core.counters
    }

    /// The app.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The app, mutably.
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// The port (tests reach the other end of a memory port this way).
    pub fn port_mut(&mut self) -> &mut P {
        &mut self.port
    }

    /// Connections in the flow table.
    pub fn connections(&self) -> usize {
        self.core.flows.len()
    }

    /// A stats snapshot.
    pub fn stats(&self) -> WorkerStats {
        let mut counters = self.core.counters;
        counters.tcp_open = self.core.flows.len() as u64;
        let budget = self.core.cfg.tcp.buffer_budget.stats();
        counters.tcp_buffer_bytes = budget.used;
        counters.tcp_budget_send_limited = budget.send_limited;
        counters.tcp_budget_window_limited = budget.window_limited;
        counters.drop_rx_truncated = self.port.rx_truncated();
        counters.rx_oversized = self.port.rx_oversized();
        WorkerStats {
            worker: self.core.cfg.id,
            counters,
            connections: self.core.flows.len(),
            half_open: self.core.half_open,
            neighbours: self.core.neighbours.len() + self.core.neighbours6.len(),
            timers: self.core.timers.len(),
            ring_drops: self.port.rx_ring_drops(),
            restores: RestoreStats {
                pending: (self.core.unready.len() + self.core.deferred_restores.len()) as u64,
                parked: self.core.parked_tuples.len() as u64,
                ..self.core.restores.clone()
            },
        }
    }

    /// Runs one frame through the receive path (parse and dispatch) without
    /// polling the port; [`Worker::poll`] then does the rest. For tests and
    /// the fuzz target.
    pub fn handle_frame(&mut self, frame: &[u8], meta: RxMeta, now: Instant) {
        self.core.on_frame(&mut self.app, frame, meta, now);
    }

    /// One iteration; returns whether there was any work.
    pub fn poll(&mut self, now: Instant) -> Result<bool, PortError> {
        // Answers the previous iteration read made room (a connection is
        // ready once its touched TCB ran, late in an iteration).
        let admitted = self.admit_restores(now, self.core.cfg.restore_window);
        let core = &mut self.core;
        let app = &mut self.app;
        let n = self.port.rx_burst(core.cfg.rx_burst, |frame, meta| {
            core.on_frame(app, frame, meta, now)
        })?;
        core.take_neighbour_news(now);
        core.fired.clear();
        core.timers.expire(now, &mut core.fired);
        let fired = !core.fired.is_empty();
        core.counters.timers_fired += core.fired.len() as u64;
        for i in 0..core.fired.len() {
            let index = core.fired[i];
            if let Some(id) = core.flows.id_at(index) {
                if let Some(c) = core.flows.get_mut(id) {
                    c.tcb.on_timeout(now);
                }
                core.touch(id);
            }
        }
        {
            let mut ctx = app_ctx!(core, now);
            self.app.poll(&mut ctx);
        }
        core.settle_parking(&mut self.app, now);
        let touched = !core.touched.is_empty();
        core.process_touched(&mut self.port, &mut self.app, now)?;
        // Parked from an event's callback: gone before the next frame.
        core.settle_parking(&mut self.app, now);
        core.send_datagrams(&mut self.port, now)?;
        let sent = !core.tx.is_empty();
        core.flush(&mut self.port)?;
        Ok(n > 0 || fired || touched || sent || admitted)
    }

    /// Restores deferred restores, then parked ones that are due, while
    /// fewer than `window` restored connections wait for their client;
    /// returns whether it restored any.
    fn admit_restores(&mut self, now: Instant, window: usize) -> bool {
        let mut any = false;
        while self.core.unready.young(now) < window {
            if let Some((export, app_data)) = self.core.deferred_restores.pop_front() {
                self.restore_now(&export, app_data, now);
            } else if self
                .core
                .parked_restores
                .front()
                .is_some_and(|p| p.0 <= now)
            {
                self.restore_parked(now);
            } else {
                break;
            }
            any = true;
        }
        any
    }

    /// Restores every deferred and parked restore now, before a release or
    /// hand-off moves this worker's connections: none is left behind.
    fn admit_all_restores(&mut self, now: Instant) {
        self.admit_restores(now, usize::MAX);
        while !self.core.parked_restores.is_empty() {
            self.restore_parked(now);
        }
    }

    /// The first parked restore, unless its client restored it since (a
    /// lazy restore took it out of `parked_tuples`) or the app no longer
    /// counts it an orphan (ended): a connection closed meanwhile must not
    /// come back.
    fn restore_parked(&mut self, now: Instant) {
        let Some((_, export, app_data)) = self.core.parked_restores.pop_front() else {
            return;
        };
        if self.core.parked_tuples.remove(&export.tuple) && self.app.is_orphan(&export.tuple) {
            self.restore_now(&export, app_data, now);
        } else {
            self.core.counters.restore_duplicate += 1;
        }
    }

    /// Restores one connection from the control core's checkpoint.
    fn restore_now(&mut self, export: &TcbExport, app_data: Box<dyn Any + Send>, now: Instant) {
        let core = &mut self.core;
        if core.flows.lookup(&export.tuple).is_some() {
            // Already ours (restored lazily, or a duplicate order).
            core.counters.restore_duplicate += 1;
            return;
        }
        let tcb = Tcb::restore(now, core.restored_tcp(), export);
        let id = core.flows.insert(tcb);
        if let Some(c) = core.flows.get_mut(id) {
            c.announced = true;
        }
        core.note_restored(id, now);
        core.touch(id);
        let mut ctx = app_ctx!(core, now);
        self.app.on_restored(id, app_data, &mut ctx);
    }

    /// Applies a control command; returns false for `Shutdown`.
    pub fn command(&mut self, cmd: Command, now: Instant) -> bool {
        let core = &mut self.core;
        match cmd {
            Command::Announce(IpAddr::V4(ip)) => {
                let mac = core.mac;
                let buf = core.tx.next_buf();
                if let Ok(n) = arp::emit_announcement(buf, mac, ip) {
                    core.tx.commit(n);
                    core.counters.arp_announcements_sent += 1;
                }
            }
            Command::Announce(IpAddr::V6(ip)) => {
                let mac = core.mac;
                let buf = core.tx.next_buf();
                if let Ok(n) = ndp::emit_announcement(buf, mac, ip) {
                    core.tx.commit(n);
                    core.counters.nd_announcements_sent += 1;
                }
            }
            Command::AddServiceIp(ip) => {
                if !core.cfg.service_ips.contains(&ip) {
                    core.cfg.service_ips.push(ip);
                }
            }
            Command::RemoveServiceIp(ip) => core.cfg.service_ips.retain(|i| *i != ip),
            Command::AddForwarders(macs) => {
                for mac in macs {
                    if !core.forwarders.contains(&mac) {
                        core.forwarders.push(mac);
                    }
                }
            }
            Command::RouteClient {
                local,
                client,
                ports,
                to,
                ttl,
            } => core
                .client_routes
                .insert(local, client, ports, to, ttl, now),
            Command::Restore { export, app_data } => {
                if core.deferred_restores.is_empty()
                    && core.unready.young(now) < core.cfg.restore_window
                {
                    self.restore_now(&export, app_data, now);
                } else {
                    core.deferred_restores.push_back((export, app_data));
                }
            }
            Command::RestoreLater {
                export,
                app_data,
                after,
            } => {
                core.parked_tuples.insert(export.tuple);
                core.parked_restores
                    .push_back((now + after, export, app_data));
            }
            Command::Drain(on) => core.draining = on,
            Command::Stats(reply) => {
                let _ = reply.send(self.stats());
            }
            Command::Freeze => {
                // Restores still queued or parked get their final
                // checkpoint with the rest: a drain with nobody to hand to
                // leaves them to whoever takes the region.
                self.admit_all_restores(now);
                let core = &mut self.core;
                let mut ctx = app_ctx!(core, now);
                for id in ctx.flows.ids() {
                    self.app.on_freeze(id, &mut ctx);
                }
                // Frames built but not sent are dropped with the worker:
                // the client never saw them, and the survivor syncs to the
                // client's acknowledgement anyway.
                core.tx.clear();
                return false;
            }
            Command::Handoff { tuples, to, done } => {
                // A connection still waiting for its turn moves like the
                // others (the window only spaces out probes).
                self.admit_all_restores(now);
                let core = &mut self.core;
                let mut moved = Vec::with_capacity(tuples.len());
                for tuple in tuples {
                    let Some(id) = core.flows.lookup(&tuple) else {
                        if self.app.on_handoff_parked(&tuple, to) {
                            moved.push(tuple);
                        }
                        continue;
                    };
                    let mut ctx = app_ctx!(core, now);
                    self.app.on_handoff(id, to, &mut ctx);
                    // Silently: the adopting box continues the connection.
                    core.drop_silently(id);
                    moved.push(tuple);
                }
                let _ = done.send(moved);
            }
            Command::Release(done) => {
                self.admit_all_restores(now);
                let core = &mut self.core;
                let mut ctx = app_ctx!(core, now);
                let ids = ctx.flows.ids();
                for &id in &ids {
                    self.app.on_release(id, &mut ctx);
                }
                // Silently: the survivors' takeover continues them.
                for &id in &ids {
                    core.drop_silently(id);
                }
                let parked = self.app.on_release_parked();
                let _ = done.send(ids.len() + parked);
            }
            Command::Shutdown => return false,
        }
        true
    }

    /// Runs until `Shutdown` or until the control channel closes.
    pub fn run(mut self, ctl: Receiver<Command>) -> Result<(), PortError> {
        loop {
            loop {
                match ctl.try_recv() {
                    Ok(cmd) => {
                        if !self.command(cmd, Instant::now()) {
                            return Ok(());
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            }
            let now = Instant::now();
            let worked = self.poll(now)?;
            if let PollMode::Adaptive { spins } = self.core.cfg.poll_mode {
                if worked {
                    self.idle = 0;
                } else {
                    self.idle += 1;
                    if self.idle >= spins {
                        // A parked restore falls due like a timer.
                        let parked = self.core.parked_restores.front().map(|p| p.0);
                        let timer = match (self.core.timers.next_wakeup(), parked) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                        let timeout = block_for(now, timer, self.app.next_deadline());
                        self.core.counters.idle_waits += 1;
                        self.port.wait(Some(timeout), self.core.waker.raw_fd())?;
                        // `now` precedes the wait, so a wait that ran its
                        // full timeout never counts as woken.
                        let woke = Instant::now();
                        self.core.counters.idle_wait_us +=
                            woke.saturating_duration_since(now).as_micros() as u64;
                        if self.core.waker.drain() && woke < now + timeout {
                            self.core.counters.idle_woken += 1;
                        }
                        self.idle = 0;
                    }
                }
            }
        }
    }
}

/// How long an idle worker blocks at `now`: until its next TCP timer or
/// the app's deadline, whichever is first, at most [`MAX_BLOCK`].
fn block_for(now: Instant, timer: Option<Instant>, app: Option<Instant>) -> Duration {
    let next = match (timer, app) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    next.map_or(MAX_BLOCK, |t| {
        t.saturating_duration_since(now).min(MAX_BLOCK)
    })
}

#[cfg(test)]
mod block_tests {
    use super::*;

    #[test]
    fn the_app_deadline_bounds_the_block_like_a_timer() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(block_for(now, None, None), MAX_BLOCK);
        assert_eq!(block_for(now, Some(now + ms(40)), None), ms(40));
        assert_eq!(block_for(now, None, Some(now + ms(5))), ms(5));
        assert_eq!(block_for(now, Some(now + ms(40)), Some(now + ms(5))), ms(5));
        assert_eq!(block_for(now, Some(now + ms(3)), Some(now + ms(5))), ms(3));
        // A deadline already past: no block; one far away: the bound.
        assert_eq!(block_for(now + ms(9), None, Some(now)), Duration::ZERO);
        assert_eq!(block_for(now, None, Some(now + ms(900))), MAX_BLOCK);
    }
}
