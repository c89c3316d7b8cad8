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

/// The outbound half of a replicator.
pub(super) struct Sender {
    me: u16,
    own: Region,
    auth: Auth,
    /// Every peer's replication address, for what goes to all of them.
    peers: Vec<SocketAddr>,
    /// Every peer's heartbeat address, once heartbeats have their own
    /// socket.
    hb_peers: Option<Vec<SocketAddr>>,
    /// +1 per datagram sent by this process (anti-replay, RFC 4303 §3.4.3).
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
    pub(super) fn new(
        me: u16,
        own: Region,
        auth: Auth,
        peers: Vec<SocketAddr>,
        stats: Arc<ReplicationStats>,
    ) -> Self {
        Sender {
            me,
            own,
            auth,
            peers,
            hb_peers: None,
            counter: 0,
            data_seq: 0,
            stats,
            out: Vec::with_capacity(MAX_DATAGRAM),
            scratch: Box::new(Payload::zeroed()),
        }
    }

    fn begin(&mut self, kind: u8, target: u16) {
        self.counter += 1;
        let header = Outgoing {
            kind,
            sender: self.me,
            epoch: self.own.epoch(),
            target,
            counter: self.counter,
            data_seq: self.data_seq,
        };
        wire::begin(&mut self.out, &header);
    }

    fn send(&self, socket: &impl DatagramSocket, to: SocketAddr) -> io::Result<()> {
        match socket.send_to(&self.out, to) {
            Ok(_) => ReplicationStats::bump(&self.stats.sent),
            // A full socket buffer, an unreachable peer, a local firewall
            // (EPERM) or a down back LAN lose this datagram as the network
            // would; the gap logic recovers, and replication must outlive
            // a flapping link.
            Err(_) => ReplicationStats::bump(&self.stats.send_errors),
        }
        Ok(())
    }

    fn broadcast(&self, socket: &impl DatagramSocket) -> io::Result<()> {
        for &addr in &self.peers {
            self.send(socket, addr)?;
        }
        Ok(())
    }

    /// Heartbeats from now on go to each peer's `hb_addr(replication
    /// address)`, through the socket the caller hands to
    /// [`Sender::send_heartbeat`].
    pub(super) fn split_heartbeats(&mut self, hb_addr: impl Fn(SocketAddr) -> SocketAddr) {
        self.hb_peers = Some(self.peers.iter().map(|&a| hb_addr(a)).collect());
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

    /// Sends every own slot published since the last call to every peer,
    /// as slot updates, each datagram numbered by `data_seq`.
    pub(super) fn ship_dirty(&mut self, socket: &impl DatagramSocket) -> io::Result<()> {
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
                    self.auth.seal(&mut self.out);
                    self.broadcast(socket)?;
                    open = false;
                }
                if !open {
                    self.data_seq += 1;
                    self.begin(wire::K_UPDATE, wire::EVERY_PEER);
                    open = true;
                }
                self.append_entry(s, seq, len);
            }
        }
        if open {
            self.auth.seal(&mut self.out);
            self.broadcast(socket)?;
        }
        Ok(())
    }

    /// Sends the own box-table entry (the heartbeat) to every peer: to
    /// their heartbeat addresses if heartbeats have their own socket
    /// (`socket` is then that socket), else with the rest.
    pub(super) fn send_heartbeat(&mut self, socket: &impl DatagramSocket) -> io::Result<()> {
        let info = self.own.box_info().ok();
        self.begin(wire::K_HEARTBEAT, wire::EVERY_PEER);
        wire::encode_info(&mut self.out, info.as_ref());
        self.auth.seal(&mut self.out);
        match &self.hb_peers {
            Some(addrs) => {
                for &addr in addrs {
                    self.send(socket, addr)?;
                }
                Ok(())
            }
            None => self.broadcast(socket),
        }
    }

    /// Asks peer `target` at `to` for a window of snapshot chunks from
    /// slot `from`.
    pub(super) fn request_snapshot(
        &mut self,
        socket: &impl DatagramSocket,
        target: u16,
        to: SocketAddr,
        from: u32,
    ) -> io::Result<()> {
        self.begin(wire::K_SNAP_REQ, target);
        wire::append_snapshot_request(&mut self.out, from, wire::SNAPSHOT_WINDOW);
        self.auth.seal(&mut self.out);
        ReplicationStats::bump(&self.stats.snapshot_requests);
        self.send(socket, to)
    }

    /// Sends up to `window` chunks of the own region from slot `from` to
    /// peer `to`. A chunk covers a slot range: slots in it that were ever
    /// written are listed (empty ones as deletions), the others are empty.
    pub(super) fn send_snapshot(
        &mut self,
        socket: &impl DatagramSocket,
        to: SocketAddr,
        target: u16,
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
            self.begin(wire::K_SNAP_CHUNK, target);
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
            self.auth.seal(&mut self.out);
            self.send(socket, to)?;
            if s == start {
                // No progress (a slot mid-write): the receiver asks again.
                break;
            }
            start = s;
        }
        Ok(())
    }
}
