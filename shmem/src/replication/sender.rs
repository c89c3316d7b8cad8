//! The sending side: ships the own region's dirty slots and box-table
//! entry to every peer, and answers snapshot requests with chunks.
//!
//! It numbers what it sends (the per-process `counter` the anti-replay
//! window checks, the `data_seq` of slot updates the receivers' loss
//! detection follows) and knows nothing of replicas: which peer needs a
//! snapshot, and from where, is the receiver's decision.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use super::auth::Auth;
use super::socket::DatagramSocket;
use super::stats::ReplicationStats;
use super::wire::{self, Outgoing, ENTRY_HDR, HDR, MAX_BODY, MAX_DATAGRAM};
use crate::segment::Region;
use crate::slot::{Payload, Raw};

/// Where a datagram goes: a peer's address on the socket it is sent from,
/// and the incarnation of the peer it is meant for (the newest the receiver
/// heard of; 0 before any). Each copy is tagged over its own target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) id: u16,
    pub(super) addr: SocketAddr,
    pub(super) epoch: u32,
}

/// The outbound half of a replicator.
pub(super) struct Sender {
    me: u16,
    own: Region,
    auth: Auth,
    /// +1 per datagram built by this process (anti-replay, RFC 4303
    /// §3.4.3); the copies of one datagram to several peers share it, each
    /// peer's window being its own.
    counter: u64,
    /// Number of the last slot update sent.
    data_seq: u64,
    stats: Arc<ReplicationStats>,
    /// The datagram being built.
    out: Vec<u8>,
    /// A stable copy of the slot being shipped.
    scratch: Box<Payload>,
}

impl Sender {
    pub(super) fn new(me: u16, own: Region, auth: Auth, stats: Arc<ReplicationStats>) -> Self {
        Sender {
            me,
            own,
            auth,
            counter: 0,
            data_seq: 0,
            stats,
            out: Vec::with_capacity(MAX_DATAGRAM),
            scratch: Box::new(Payload::zeroed()),
        }
    }

    fn begin(&mut self, kind: u8) {
        self.counter += 1;
        let header = Outgoing {
            kind,
            sender: self.me,
            epoch: self.own.epoch(),
            target: 0,
            target_epoch: 0,
            counter: self.counter,
            data_seq: self.data_seq,
        };
        wire::begin(&mut self.out, &header);
    }

    /// Seals the datagram built in `out` for `to` and sends it. The body
    /// stays in place: [`Sender::send_to`] may be called again for the
    /// next peer.
    fn send_to(&mut self, socket: &impl DatagramSocket, to: Target, body_end: usize) {
        self.out.truncate(body_end);
        wire::set_target(&mut self.out, to.id, to.epoch);
        self.auth.seal(&mut self.out);
        match socket.send_to(&self.out, to.addr) {
            Ok(_) => ReplicationStats::bump(&self.stats.sent),
            // A full socket buffer, an unreachable peer, a local firewall
            // (EPERM) or a down back LAN lose this datagram as the network
            // would; the gap logic recovers, and replication must outlive
            // a flapping link.
            Err(_) => ReplicationStats::bump(&self.stats.send_errors),
        }
    }

    fn broadcast(&mut self, socket: &impl DatagramSocket, to: &[Target]) {
        let body_end = self.out.len();
        for &t in to {
            self.send_to(socket, t, body_end);
        }
    }

    /// Copies a stable snapshot of own slot `s` into the scratch buffer:
    /// its sequence and length, or None if it is mid-write or unreadable.
    fn read_entry(&mut self, s: u32) -> Option<(u64, usize)> {
        match self.own.read_raw(s, &mut self.scratch) {
            Ok(Raw::Empty { seq }) => Some((seq, 0)),
            Ok(Raw::Data { seq, len }) => Some((seq, len)),
            Err(_) => None,
        }
    }

    /// Appends the scratch copy of slot `s` to the datagram as an entry.
    fn append_entry(&mut self, s: u32, seq: u64, len: usize) {
        wire::append_entry(&mut self.out, s, seq, &self.scratch.0[..len]);
    }

    /// Sends every own slot published since the last call to every peer
    /// (`to`), as slot updates, each datagram numbered by `data_seq`.
    pub(super) fn ship_dirty(
        &mut self,
        socket: &impl DatagramSocket,
        to: &[Target],
    ) -> io::Result<()> {
        let mut open = false;
        for wi in 0..self.own.dirty_len() {
            let mut bits = self.own.take_dirty(wi);
            while bits != 0 {
                let s = (wi * 64) as u32 + bits.trailing_zeros();
                bits &= bits - 1;
                // Mid-write or unreadable: the writer's publish sets the
                // bit again; a slot that stays unreadable is lost with its
                // writer.
                let Some((seq, len)) = self.read_entry(s) else {
                    continue;
                };
                if open && self.out.len() + ENTRY_HDR + len > HDR + MAX_BODY {
                    self.broadcast(socket, to);
                    open = false;
                }
                if !open {
                    self.data_seq += 1;
                    self.begin(wire::K_UPDATE);
                    open = true;
                }
                self.append_entry(s, seq, len);
            }
        }
        if open {
            self.broadcast(socket, to);
        }
        Ok(())
    }

    /// Sends the own box-table entry (the heartbeat) to every peer, `to`:
    /// their heartbeat addresses if heartbeats have their own socket
    /// (`socket` is then that socket).
    pub(super) fn send_heartbeat(
        &mut self,
        socket: &impl DatagramSocket,
        to: &[Target],
    ) -> io::Result<()> {
        let info = self.own.box_info().ok();
        self.begin(wire::K_HEARTBEAT);
        wire::encode_info(
            &mut self.out,
            info.as_ref(),
            wire::RegionLayout::of(&self.own),
        );
        self.broadcast(socket, to);
        Ok(())
    }

    /// Asks peer `to` for a window of snapshot chunks from slot `from`.
    pub(super) fn request_snapshot(
        &mut self,
        socket: &impl DatagramSocket,
        to: Target,
        from: u32,
    ) -> io::Result<()> {
        self.begin(wire::K_SNAP_REQ);
        wire::append_snapshot_request(&mut self.out, from, wire::SNAPSHOT_WINDOW);
        ReplicationStats::bump(&self.stats.snapshot_requests);
        let body_end = self.out.len();
        self.send_to(socket, to, body_end);
        Ok(())
    }

    /// Sends up to `window` chunks of the own region from slot `from` to
    /// peer `to`. A chunk covers a slot range: slots in it that were ever
    /// written are listed (empty ones as deletions), the others are empty.
    pub(super) fn send_snapshot(
        &mut self,
        socket: &impl DatagramSocket,
        to: Target,
        from: u32,
        window: u16,
    ) -> io::Result<()> {
        let slots = self.own.unit_count();
        let mut start = from.min(slots);
        let window = window.max(1);
        for n in 0..window {
            if start >= slots {
                break;
            }
            self.begin(wire::K_SNAP_CHUNK);
            wire::set_data_seq(&mut self.out, self.data_seq);
            self.out.extend_from_slice(&start.to_le_bytes());
            let end_at = self.out.len();
            self.out.extend_from_slice(&0u32.to_le_bytes());
            self.out.push(0); // last chunk of this window, set below
            let mut s = start;
            while s < slots {
                if self.own.seq_of(s) != 0 {
                    // A slot that cannot be copied now ends the chunk before
                    // it: slots a chunk does not list are read as empty.
                    let Some((seq, len)) = self.read_entry(s) else {
                        break;
                    };
                    if self.out.len() + ENTRY_HDR + len > HDR + MAX_BODY {
                        break;
                    }
                    self.append_entry(s, seq, len);
                }
                s += 1;
            }
            self.out[end_at..end_at + 4].copy_from_slice(&s.to_le_bytes());
            self.out[end_at + 4] = u8::from(n + 1 == window || s >= slots || s == start);
            let body_end = self.out.len();
            self.send_to(socket, to, body_end);
            if s == start {
                // No progress (a slot mid-write): the receiver asks again.
                break;
            }
            start = s;
        }
        Ok(())
    }
}
