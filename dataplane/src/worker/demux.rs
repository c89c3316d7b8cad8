//! TCP demux: a parsed segment goes to its connection, or, for a 4-tuple
//! this worker does not know, through the steps below, in this order:
//!
//! 1. TIME-WAIT reuse ([`Core::reuse_time_wait`]): a new SYN ends an old
//!    incarnation (RFC 6191).
//! 2. Listener check: a port nobody listens on gets a RST.
//! 3. A SYN ([`Core::on_syn`]): dropped while draining or beyond the
//!    connection limit or the client's (`max_connections_per_client`,
//!    [`Core::admits_syn`]), else the listener's (a new
//!    TCB or a SYN cookie).
//! 4. Anything else ([`Core::on_unknown`]): a SYN cookie's ACK opens its
//!    connection; otherwise the app says whether it is a dead box's
//!    orphan, to forward to another survivor ([`Core::forward`]) or to
//!    restore lazily here ([`Core::restore_lazily`]); otherwise the
//!    listener answers with a RST.
//!
//! Frames are built by the egress (`egress.rs`); the app is only asked
//! ([`App::on_unknown_segment`]) or told ([`App::on_restored`],
//! [`App::on_closed`]).

use super::state::{app_ctx, Core};
use crate::app::{App, CloseReason, UnknownAction};
use crate::flow::ConnId;
use crate::port::RxMeta;
use crate::tcp::{Flags, FourTuple, OutSegment, Segment, State, SynOutcome, Tcb, TcbExport};
use crate::wire::ethernet::MacAddr;
use crate::wire::{ethernet, tcp};
use std::any::Any;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

impl Core {
    /// A TCP segment for an address we own (or a connection we hold).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_tcp<A: App>(
        &mut self,
        app: &mut A,
        frame: &[u8],
        src: IpAddr,
        dst: IpAddr,
        l4: &[u8],
        meta: RxMeta,
        now: Instant,
    ) {
        let seg = match tcp::parse(src, dst, l4, meta.checksum_trusted) {
            Ok(s) => s,
            Err(e) => return self.counters.record(e),
        };
        let tuple = FourTuple {
            local: SocketAddr::new(dst, seg.dst_port),
            remote: SocketAddr::new(src, seg.src_port),
        };
        // The client's MAC, for our replies. A forwarded frame (an address
        // we do not own, or one from a box that forwards to us: an anycast
        // address is everyone's) carries the forwarding box's MAC instead:
        // replying to it would send our frames to that box, and learning
        // it would point the client's address there for every connection.
        let peer = if self.owns(dst) {
            frame
                .get(6..12)
                .and_then(|b| <[u8; 6]>::try_from(b).ok())
                .map(MacAddr)
                .filter(|mac| !self.forwarders.contains(mac))
        } else {
            None
        };
        if let Some(id) = self.flows.lookup(&tuple) {
            if !self
                .flows
                .get(id)
                .is_some_and(|c| c.tcb.accepts_new_syn(&seg))
            {
                let before = self.flows.get(id).map(|c| c.tcb.segments_accepted());
                if let Some(c) = self.flows.get_mut(id) {
                    let answered = c.tcb.oow_acks();
                    c.tcb.on_segment(now, &seg);
                    self.counters.tcp_oow_acks +=
                        u64::from(c.tcb.oow_acks().wrapping_sub(answered));
                }
                let accepted = self.accepted_since(id, before);
                self.confirm_peer(id, accepted, peer, now);
                self.touch(id);
                return;
            }
            self.reuse_time_wait(app, id, now);
        }
        // A new connection of a migrated FTP session's client (its next
        // data connection) is the adopter's: forwarded before our listener.
        if let Some(to) = self.client_routes.route(dst, src, seg.dst_port, now) {
            return self.forward(frame, to);
        }
        if peer.is_some_and(|_| self.neighbour_mac(src, now).is_none()) {
            // Neither a known connection nor a completed handshake yet: a
            // bare SYN or a stray segment, whose source anyone can forge.
            self.counters.neighbour_learn_refused += 1;
        }
        if !self.cfg.listen_ports.contains(&seg.dst_port) {
            self.counters.tcp_no_listener += 1;
            if let Some(rst) = reset_for(&seg) {
                self.emit_tcp(&tuple, &rst, now, 0, peer);
            }
            return;
        }
        if seg.flags.syn && !seg.flags.ack {
            self.on_syn(tuple, &seg, peer, now);
        } else {
            self.on_unknown(app, frame, tuple, &seg, peer, now);
        }
    }

    /// True if connection `id` accepted a segment since its count was
    /// `before` (the sequence check, a takeover probe's answer).
    fn accepted_since(&self, id: ConnId, before: Option<u8>) -> bool {
        let now = self.flows.get(id).map(|c| c.tcb.segments_accepted());
        matches!((before, now), (Some(b), Some(n)) if n != b)
    }

    /// Connection `id` has processed a segment from `peer` (the frame's
    /// MAC; None if forwarded). If the segment was `accepted` and the
    /// connection is synchronized (a SYN-RECEIVED one has not seen its
    /// handshake complete), the sender is the client: the neighbour cache
    /// learns (or confirms) its MAC, and the connection keeps it.
    pub(super) fn confirm_peer(
        &mut self,
        id: ConnId,
        accepted: bool,
        peer: Option<MacAddr>,
        now: Instant,
    ) {
        let Some(mac) = peer.filter(|_| accepted) else {
            return;
        };
        let Some(c) = self.flows.get_mut(id) else {
            return;
        };
        let synchronized = !matches!(
            c.tcb.state(),
            State::SynReceived | State::SynSent | State::Unready | State::Closed
        );
        if !synchronized {
            return;
        }
        c.peer_mac = Some(mac);
        let ip = c.tcb.packed_tuple().remote_ip();
        let known = self.neighbour_mac(ip, now) == Some(mac);
        self.learn_neighbour(ip, mac, now);
        if !known {
            self.send_pending(ip, now);
        }
    }

    /// RFC 6191 §2 (as Linux's tcp_timewait_state_process): a SYN newer
    /// than anything of the old connection `id` ends its TIME-WAIT; the SYN
    /// then opens a new incarnation through the listener.
    fn reuse_time_wait<A: App>(&mut self, app: &mut A, id: ConnId, now: Instant) {
        if self.flows.get(id).is_some_and(|c| c.announced) {
            let mut ctx = app_ctx!(self, now);
            app.on_closed(id, CloseReason::Normal, &mut ctx);
        }
        if let Some(c) = self.flows.remove(id) {
            if c.half_open {
                self.half_open = self.half_open.saturating_sub(1);
            }
            self.counters.tcp_closed += 1;
            self.counters.tcp_time_wait_reopened += 1;
        }
        self.timers.cancel(id.index());
    }

    /// A SYN for a listening port: drain and the connection limit first,
    /// then the listener (a half-open TCB, or a SYN cookie when the backlog
    /// is full).
    fn on_syn(&mut self, tuple: FourTuple, seg: &Segment<'_>, peer: Option<MacAddr>, now: Instant) {
        if !self.admits_syn(&tuple) {
            return;
        }
        match self
            .listener
            .on_syn(now, tuple, seg, self.half_open, self.cfg.syn_backlog)
        {
            SynOutcome::Tcb(tcb) => {
                let id = self.flows.insert(tcb);
                if let Some(c) = self.flows.get_mut(id) {
                    c.half_open = true;
                    c.peer_mac = peer;
                }
                self.half_open += 1;
                self.touch(id);
            }
            SynOutcome::Cookie(out) => {
                self.counters.tcp_syn_backlog_full += 1;
                self.emit_tcp(&tuple, &out, now, 0, peer);
            }
            SynOutcome::Drop => self.counters.drop_tcp_listener += 1,
        }
    }

    /// Drain and the connection limit: false (counted) when a new
    /// connection may not start now. Dropped, not reset: the client
    /// retries its SYN later, perhaps at the box that owns the address by
    /// then.
    fn admits_syn(&mut self, tuple: &FourTuple) -> bool {
        if self.draining {
            self.counters.drop_tcp_draining += 1;
            return false;
        }
        if self.flows.len() >= self.cfg.max_connections {
            self.counters.drop_tcp_max_connections += 1;
            return false;
        }
        self.admits_client(tuple)
    }

    /// `dataplane.max_connections_per_client`: false (counted) when the
    /// client address holds its share already. Restored connections count
    /// toward it but never meet it (they are not opened here).
    fn admits_client(&mut self, tuple: &FourTuple) -> bool {
        if self.flows.of_client(tuple.remote.ip()) >= self.cfg.max_connections_per_client {
            self.counters.drop_tcp_client_limit += 1;
            return false;
        }
        true
    }

    /// A segment other than a SYN for a connection we do not know.
    /// Takeover (ARCHITECTURE.md "Takeover" step 3): it may belong to a
    /// dead box's orphan, ours to restore lazily or another survivor's to
    /// forward; the app knows. Otherwise the listener answers it.
    fn on_unknown<A: App>(
        &mut self,
        app: &mut A,
        frame: &[u8],
        tuple: FourTuple,
        seg: &Segment<'_>,
        peer: Option<MacAddr>,
        now: Instant,
    ) {
        // A cookie's ACK first: the new connection of a client that reused
        // the 4-tuple of a connection some route still names (a box
        // restarted after a takeover holds routes to its old connections'
        // restorers) is ours, not the route's. Checked only while cookies
        // may come back.
        if let Some(tcb) = self.listener.cookie_ack(now, tuple, seg) {
            return self.accept_from_cookie(tcb, &tuple, peer, now);
        }
        match app.on_unknown_segment(tuple, seg.flags.rst) {
            UnknownAction::Listener => {}
            UnknownAction::Drop => {
                self.counters.drop_tcp_unknown_by_app += 1;
                return;
            }
            UnknownAction::Forward(mac) => return self.forward(frame, mac),
            // A RST ends the orphan: nothing to restore (the app, told
            // of the RST, forgets a parked connection's checkpoint).
            UnknownAction::Restore(..) if seg.flags.rst => {
                self.counters.drop_tcp_unknown_by_app += 1;
                return;
            }
            UnknownAction::Restore(export, data) if export.tuple == tuple => {
                return self.restore_lazily(app, &export, data, seg, peer, now);
            }
            UnknownAction::Resume(..) if seg.flags.rst => {
                self.counters.drop_tcp_unknown_by_app += 1;
                return;
            }
            UnknownAction::Resume(export, data) if export.tuple == tuple => {
                return self.resume_from_segment(app, &export, data, seg, peer, now);
            }
            UnknownAction::Restore(..) | UnknownAction::Resume(..) => {
                // A checkpoint of another connection: the app's bug,
                // not the client's; answer as if unknown.
                self.counters.drop_emit_error += 1;
            }
        }
        let unexpected = self.listener.cookie_acks_unexpected();
        let reply = self.listener.on_unknown(now, tuple, seg);
        self.counters.tcp_cookie_ack_unexpected += self
            .listener
            .cookie_acks_unexpected()
            .saturating_sub(unexpected);
        match reply {
            Some(out) => self.emit_tcp(&tuple, &out, now, 0, peer),
            None => self.counters.drop_tcp_listener += 1,
        }
    }

    /// A valid cookie completed a handshake: the client is real (the TCB
    /// accepted the ACK already), so its connection is admitted as one
    /// from the listener's backlog would be.
    fn accept_from_cookie(
        &mut self,
        tcb: Tcb,
        tuple: &FourTuple,
        peer: Option<MacAddr>,
        now: Instant,
    ) {
        if self.flows.len() >= self.cfg.max_connections {
            self.counters.drop_tcp_max_connections += 1;
            return;
        }
        if !self.admits_client(tuple) {
            return;
        }
        let id = self.flows.insert(tcb);
        self.confirm_peer(id, true, peer, now);
        self.touch(id);
    }

    /// The connection was assigned to another survivor (whose MAC is
    /// `to`): hand it the client's frame unchanged but for the MACs.
    fn forward(&mut self, frame: &[u8], to: MacAddr) {
        let ours = self.mac;
        let buf = self.tx.next_buf();
        match buf.get_mut(..frame.len()) {
            Some(out) if frame.len() >= ethernet::HEADER_LEN => {
                out.copy_from_slice(frame);
                out[0..6].copy_from_slice(&to.0);
                out[6..12].copy_from_slice(&ours.0);
                self.tx.commit(frame.len());
                self.counters.tcp_forwarded += 1;
            }
            _ => self.counters.drop_emit_error += 1,
        }
    }

    /// Lazy takeover: the orphan's TCB is rebuilt from its checkpoint and
    /// given the client's segment, which may already be the answer its
    /// probe waits for.
    fn restore_lazily<A: App>(
        &mut self,
        app: &mut A,
        export: &TcbExport,
        data: Box<dyn Any + Send>,
        seg: &Segment<'_>,
        peer: Option<MacAddr>,
        now: Instant,
    ) {
        self.parked_tuples.remove(&export.tuple);
        let tcb = Tcb::restore(now, self.restored_tcp(), export);
        let id = self.flows.insert(tcb);
        if let Some(c) = self.flows.get_mut(id) {
            c.announced = true;
        }
        self.feed_rebuilt(id, seg, peer, now);
        self.note_restored(id, now);
        self.counters.tcp_lazy_restored += 1;
        let mut ctx = app_ctx!(self, now);
        app.on_restored(id, data, &mut ctx);
    }

    /// A connection just rebuilt from its checkpoint takes its client's
    /// segment; the client's MAC is learned if the segment was accepted.
    pub(super) fn feed_rebuilt(
        &mut self,
        id: ConnId,
        seg: &Segment<'_>,
        peer: Option<MacAddr>,
        now: Instant,
    ) {
        let before = self.flows.get(id).map(|c| c.tcb.segments_accepted());
        if let Some(c) = self.flows.get_mut(id) {
            c.tcb.on_segment(now, seg);
        }
        let accepted = self.accepted_since(id, before);
        self.confirm_peer(id, accepted, peer, now);
        self.touch(id);
    }
}

/// The RST for a segment to a port nobody listens on (RFC 9293 §3.10.7.1:
/// if the ACK bit is off, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>,
/// otherwise <SEQ=SEG.ACK><CTL=RST>). A RST is never answered.
fn reset_for(seg: &Segment<'_>) -> Option<OutSegment> {
    if seg.flags.rst {
        return None;
    }
    let mut out = OutSegment {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        ..OutSegment::default()
    };
    if seg.flags.ack {
        out.seq = seg.ack;
        out.flags = Flags {
            rst: true,
            ..Flags::default()
        };
    } else {
        out.ack = seg.seq + seg.seq_len();
        out.flags = Flags {
            rst: true,
            ack: true,
            ..Flags::default()
        };
    }
    Some(out)
}
