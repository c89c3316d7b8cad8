//! The application interface: what a worker calls, and what an app may do
//! to its connections.
//!
//! An [`App`] lives on one worker and is called by that worker only, so it
//! needs no locks: one instance per worker, made by the factory given to
//! [`crate::runtime::start`]. The worker calls it when a connection is
//! accepted, has data, has send space, or ends; the app acts on
//! connections through [`Ctx`] (receive, send, close). [`Ctx::send`]
//! returns the sequence number of the first byte queued, which is what a
//! checkpoint records as the start of an object (ARCHITECTURE.md,
//! "Checkpoints").
//!
//! This module is imported by the worker and by apps (the responder, the
//! appliance); it imports neither, and knows nothing of ports or of how
//! workers are started.

use crate::flow::{ConnId, FlowTable};
use crate::tcp::{FourTuple, SendError, SeqNum, State, TcbExport, TcbStats};
use crate::wire::ethernet::MacAddr;
use crate::worker::waker::Waker;
use bytes::Bytes;
use std::any::Any;
use std::time::Instant;
use thiserror::Error;

/// Why a connection ended, as told to [`App::on_closed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides closed (FIN exchange completed).
    Normal,
    /// A RST arrived, or the connection was aborted.
    Reset,
    /// Retransmissions, probes or the idle timer ran out.
    TimedOut,
    /// A restored connection could not resume (takeover failed).
    NotReady,
}

/// The application a worker serves. Every method runs on the worker's
/// thread; keep them short (no blocking I/O): a worker spends its time
/// moving packets.
pub trait App: 'static {
    /// A client completed the handshake on `conn`.
    fn on_accept(&mut self, conn: ConnId, ctx: &mut Ctx<'_>);
    /// In-order data can be read from `conn` with [`Ctx::recv`].
    fn on_readable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>);
    /// Send space grew on `conn` ([`Ctx::send_capacity`]).
    fn on_writable(&mut self, conn: ConnId, ctx: &mut Ctx<'_>);
    /// The client sent its FIN: it will send no more. The default closes
    /// our side after the data already given to [`Ctx::send`]. An app that
    /// still holds response bytes of its own (waiting for send space) must
    /// override this and close only after its last `send`, or the client
    /// gets a truncated response (see [`crate::responder`]).
    fn on_peer_closed(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        ctx.close(conn);
    }
    /// `conn` is gone; its id is dead from now on.
    fn on_closed(&mut self, conn: ConnId, reason: CloseReason, ctx: &mut Ctx<'_>);
    /// A connection restored from a checkpoint was handed to this worker
    /// (still unready); `data` is what the restorer attached.
    fn on_restored(&mut self, conn: ConnId, data: Box<dyn Any + Send>, ctx: &mut Ctx<'_>) {
        let _ = (conn, data, ctx);
    }
    /// A segment other than a SYN arrived, on a listening port, for a
    /// connection this worker does not know (`rst`: it carries RST). During
    /// a takeover it may belong to a dead box's orphan: see
    /// [`UnknownAction`]. The default lets the listener answer it (SYN
    /// cookie or RST). Called on the data path: keep the lookup cheap.
    fn on_unknown_segment(&mut self, tuple: FourTuple, rst: bool) -> UnknownAction {
        let _ = (tuple, rst);
        UnknownAction::Listener
    }
    /// True while `tuple` is a connection this app is to restore and has
    /// not (an orphan of a takeover; [`UnknownAction::Restore`] restores
    /// it). Asked for a frame another box forwards to an address we do not
    /// own (it is ours to take), and when a restore the control core
    /// parked ([`crate::worker::Command::RestoreLater`]) falls due: one
    /// the client restored or ended meanwhile must not come back. The
    /// default knows no orphans: an app that parks restores answers it.
    fn is_orphan(&mut self, tuple: &FourTuple) -> bool {
        let _ = tuple;
        false
    }
    /// True when `tuple` is a connection this app parked ([`Ctx::park`]) and
    /// holds still: a frame another box forwards for it, to an address we
    /// do not own (the address moved after a hand-off), is ours to take.
    /// The default parks nothing.
    fn holds_parked(&mut self, tuple: &FourTuple) -> bool {
        let _ = tuple;
        false
    }
    /// A restored connection resynchronised with the client: resume sending
    /// at `snd_una` (seed Fig. 6, "ready").
    fn on_ready(&mut self, conn: ConnId, snd_una: SeqNum, rcv_nxt: SeqNum, ctx: &mut Ctx<'_>) {
        let _ = (conn, snd_una, rcv_nxt, ctx);
    }
    /// The worker is about to stop for a planned move (drain): write
    /// `conn`'s exact final checkpoint now; nothing more will be sent on it
    /// from this box.
    fn on_freeze(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        let _ = (conn, ctx);
    }
    /// `conn` moves to the box whose MAC is `to` (a planned move of some
    /// connections): write its final checkpoint and forward its future
    /// frames there. The worker drops the TCB right after, silently.
    fn on_handoff(&mut self, conn: ConnId, to: MacAddr, ctx: &mut Ctx<'_>) {
        let _ = to;
        self.on_freeze(conn, ctx);
    }
    /// `conn` is let go at the end of a drain's hand-over (it could not be
    /// handed to a box by name): write its final checkpoint, which the
    /// survivors' takeover restores; its frames are no longer this box's.
    /// The worker drops the TCB right after, silently.
    fn on_release(&mut self, conn: ConnId, ctx: &mut Ctx<'_>) {
        self.on_freeze(conn, ctx);
    }
    /// `tuple`, which no TCB of this worker holds, moves to the box whose
    /// MAC is `to` (a planned move): true when it is a connection this app
    /// parked ([`Ctx::park`]), whose checkpoint the adopter takes as it
    /// is; its frames are forwarded there from now on. The default parks
    /// nothing.
    fn on_handoff_parked(&mut self, tuple: &FourTuple, to: MacAddr) -> bool {
        let _ = (tuple, to);
        false
    }
    /// Every connection this app parked is let go with the live ones (see
    /// [`App::on_release`]): their checkpoints are the survivors'. Returns
    /// how many.
    fn on_release_parked(&mut self) -> usize {
        0
    }
    /// A UDP datagram on `tuple`'s flow (local side ours), for a port of
    /// the worker's UDP range; the payload is lent for the call.
    fn on_datagram(&mut self, tuple: FourTuple, payload: &[u8], ctx: &mut Ctx<'_>) {
        let _ = (tuple, payload, ctx);
    }
    /// Called once per worker iteration, for work not driven by a packet
    /// (e.g. data that arrived from an origin fetch on another thread).
    fn poll(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }
    /// When the app next wants [`App::poll`] called though no packet came
    /// (e.g. the next RTP packet of a paced stream). A worker in adaptive
    /// mode blocks no longer than this; asked only before it blocks, so
    /// the answer may cost a scan of the app's own state.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
}

/// What to do with a segment for an unknown connection
/// ([`App::on_unknown_segment`]).
pub enum UnknownAction {
    /// Not an orphan: SYN-cookie check or RST, as for any stray segment.
    Listener,
    /// Ours to take over (lazy takeover): restore from this checkpoint
    /// block, feed it the segment, and call [`App::on_restored`] with the
    /// data. Ignored for a RST.
    Restore(TcbExport, Box<dyn Any + Send>),
    /// A connection this app parked ([`Ctx::park`]): rebuild it from this
    /// checkpoint block, feed it the segment, and call
    /// [`App::on_restored`] with the data. Like `Restore`, but no takeover
    /// (not tallied as one). Ignored for a RST.
    Resume(TcbExport, Box<dyn Any + Send>),
    /// Another survivor took this connection over: send it the frame with
    /// its MAC as destination (ARCHITECTURE.md "Takeover" step 3).
    Forward(MacAddr),
    /// Drop silently (e.g. the orphan is being restored elsewhere right now).
    Drop,
}

impl std::fmt::Debug for UnknownAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnknownAction::Listener => write!(f, "Listener"),
            UnknownAction::Restore(e, _) => write!(f, "Restore({:?})", e.tuple),
            UnknownAction::Resume(e, _) => write!(f, "Resume({:?})", e.tuple),
            UnknownAction::Forward(m) => write!(f, "Forward({m})"),
            UnknownAction::Drop => write!(f, "Drop"),
        }
    }
}

/// What an app can do to a connection that is gone or refuses.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    /// The id names no live connection of this worker.
    #[error("no such connection")]
    Unknown,
    /// The TCP layer refused the data.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// The app's view of its worker's connections during a callback.
pub struct Ctx<'a> {
    pub(crate) flows: &'a mut FlowTable,
    pub(crate) touched: &'a mut Vec<ConnId>,
    pub(crate) now: Instant,
    pub(crate) worker: usize,
    pub(crate) waker: &'a Waker,
    pub(crate) datagrams: &'a mut Vec<(FourTuple, Bytes)>,
    pub(crate) listener: &'a mut crate::tcp::Listener,
    pub(crate) parking: &'a mut Vec<ConnId>,
    pub(crate) resuming: &'a mut Vec<(TcbExport, Box<dyn Any + Send>)>,
}

impl Ctx<'_> {
    /// Queues a UDP datagram from `tuple.local` (an address this box
    /// owns) to `tuple.remote`, sent at the end of this iteration to the
    /// remote's known MAC: UDP learns no neighbour (its source is
    /// unvalidated), so a datagram to an unresolved address is dropped and
    /// counted (`drop_no_neighbour`).
    pub fn send_datagram(&mut self, tuple: FourTuple, payload: Bytes) {
        self.datagrams.push((tuple, payload));
    }

    fn touch(&mut self, conn: ConnId) -> Option<&mut crate::tcp::Tcb> {
        let c = self.flows.get_mut(conn)?;
        if !c.touched {
            c.touched = true;
            self.touched.push(conn);
        }
        Some(&mut c.tcb)
    }

    /// The time of this worker iteration.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// This worker's index.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// A waker for this worker: give it to threads whose results
    /// [`App::poll`] picks up, so a worker blocked in adaptive mode
    /// notices them at once.
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Queues `data` for sending; returns the sequence number of its first
    /// byte. The bytes go to the wire without a copy until the frame.
    pub fn send(&mut self, conn: ConnId, data: Bytes) -> Result<SeqNum, ConnError> {
        let tcb = self.touch(conn).ok_or(ConnError::Unknown)?;
        Ok(tcb.send(data)?)
    }

    /// Copies received bytes into `buf`; returns how many.
    pub fn recv(&mut self, conn: ConnId, buf: &mut [u8]) -> Result<usize, ConnError> {
        // Reading opens the receive window: the TCB may want to send an update.
        let tcb = self.touch(conn).ok_or(ConnError::Unknown)?;
        Ok(tcb.recv(buf))
    }

    /// Opens a connection from this box to `tuple.remote`, from
    /// `tuple.local` (one of our addresses): its SYN goes out with this
    /// iteration. The app hears `on_accept` once it is established and
    /// `on_closed` if it ends, established or not (refused, timed out).
    /// `None` when the 4-tuple is in use. Frames of the connection must
    /// reach this worker: the caller picks a local port the fanout steers
    /// here (FTP's active mode uses its passive range).
    pub fn connect(&mut self, tuple: FourTuple) -> Option<ConnId> {
        if self.flows.lookup(&tuple).is_some() {
            return None;
        }
        let tcb = self.listener.open(self.now, tuple);
        let id = self.flows.insert(tcb);
        if let Some(c) = self.flows.get_mut(id) {
            c.opened = true;
        }
        self.touch(id);
        Some(id)
    }

    /// Bytes waiting to be read.
    pub fn recv_available(&self, conn: ConnId) -> usize {
        self.flows.get(conn).map_or(0, |c| c.tcb.recv_available())
    }

    /// Bytes [`Ctx::send`] accepts now.
    pub fn send_capacity(&self, conn: ConnId) -> usize {
        self.flows.get(conn).map_or(0, |c| c.tcb.send_capacity())
    }

    /// The sequence number the next byte sent will get.
    pub fn next_seq(&self, conn: ConnId) -> Option<SeqNum> {
        self.flows.get(conn).map(|c| c.tcb.next_seq())
    }

    /// Sends a FIN after the queued data.
    pub fn close(&mut self, conn: ConnId) {
        if let Some(t) = self.touch(conn) {
            t.close();
        }
    }

    /// Resets the connection now.
    pub fn abort(&mut self, conn: ConnId) {
        if let Some(t) = self.touch(conn) {
            t.abort();
        }
    }

    /// The connection's addresses.
    pub fn tuple(&self, conn: ConnId) -> Option<FourTuple> {
        self.flows.get(conn).map(|c| c.tcb.tuple())
    }

    /// The connection's TCP state.
    pub fn state(&self, conn: ConnId) -> Option<State> {
        self.flows.get(conn).map(|c| c.tcb.state())
    }

    /// The connection's counters and estimates.
    pub fn tcp_stats(&self, conn: ConnId) -> Option<TcbStats> {
        self.flows.get(conn).map(|c| c.tcb.stats())
    }

    /// The TCP block of a checkpoint of `conn`.
    pub fn export(&self, conn: ConnId) -> Option<TcbExport> {
        self.flows.get(conn).map(|c| c.tcb.export(self.now))
    }

    /// A checkpoint covering the client's bytes up to `upto` is committed:
    /// with `ack_after_commit`, they may be acknowledged now (seed: "no ACK
    /// is sent back by the server to the client until the subject server
    /// application permits it").
    pub fn commit_ack(&mut self, conn: ConnId, upto: SeqNum) {
        if let Some(tcb) = self.touch(conn) {
            tcb.commit_ack(upto);
        }
    }

    /// Under `hold_acks`: `false` lets `conn`'s client bytes be
    /// acknowledged as they arrive (nothing will commit them: an upload
    /// body acknowledged freely, or no checkpoint slot), `true` holds them
    /// for the next commit again ([`crate::tcp::Tcb::set_ack_hold`]).
    pub fn set_ack_hold(&mut self, conn: ConnId, hold: bool) {
        if let Some(tcb) = self.touch(conn) {
            tcb.set_ack_hold(hold);
        }
    }

    /// True when `conn` rests with nothing beyond its checkpoint's TCP
    /// block ([`crate::tcp::Tcb::quiescent`]): it may be parked.
    pub fn quiescent(&self, conn: ConnId) -> bool {
        self.flows.get(conn).is_some_and(|c| c.tcb.quiescent())
    }

    /// Parks `conn` (issue 19): its TCB is dropped, silently, once this
    /// callback returns; the app keeps its checkpoint, written from
    /// [`Ctx::export`] before this call, and answers the client's next
    /// segment with [`UnknownAction::Resume`]. The app hears no
    /// `on_closed`. False (nothing done) unless it is
    /// [`Ctx::quiescent`]: a TCB with anything in flight, queued or owed
    /// is not what its export says.
    pub fn park(&mut self, conn: ConnId) -> bool {
        if !self.quiescent(conn) {
            return false;
        }
        self.parking.push(conn);
        true
    }

    /// Brings a parked connection back without waiting for its client
    /// (to close it, or before it moves): rebuilt from `export` once this
    /// callback returns and probed; [`App::on_restored`] gets `data`, then
    /// [`App::on_ready`] when the client answers (or `on_closed` with
    /// [`CloseReason::NotReady`] when it never does).
    pub fn resume(&mut self, export: TcbExport, data: Box<dyn Any + Send>) {
        self.resuming.push((export, data));
    }

    /// True while client bytes of `conn` are received but held
    /// unacknowledged until a commit.
    pub fn ack_held(&self, conn: ConnId) -> bool {
        self.flows.get(conn).is_some_and(|c| c.tcb.ack_held())
    }
}
