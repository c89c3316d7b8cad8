//! Writing a worker's connection checkpoints into its slots of the segment.
//!
//! The application hands its block (the HTTP response it is sending); the
//! TCP block comes from the TCB's export (through `crate::record`, the one
//! conversion), so each layer contributes its own state (seed Fig. 4,
//! ARCHITECTURE.md "Checkpoints"). Cadence slides with each connection's
//! throughput: fast connections every `fast_bytes`, slow ones every
//! `slow_bytes`, and at most `interval` apart while bytes flow (seed:
//! "checkpoints occur based upon a sliding scale"); and always at a new
//! response. A checkpoint that covers the client's bytes (a response
//! starts, the session answered all it read, a FIN) commits them: TCP
//! acknowledges requests and FINs only then (issue 13), so a survivor
//! never finds the client ahead of what was acknowledged.
//!
//! It knows neither the record's bytes (baton-shmem) nor what the
//! application block means (HTTP fills it); only when to write, and where.
use baton_dataplane::connmap::{ConnMap, ConnSlab};
use std::time::{Duration, Instant};

use baton_dataplane::app::Ctx;
use baton_dataplane::flow::ConnId;
use baton_dataplane::tcp::{FourTuple, SeqNum};
use baton_shmem::record::{ArchivedConnRecord, ConnRecord, Transport, APP_PROTOCOL_HTTP};
use baton_shmem::{Region, SlotAllocator, SlotId, SlotWriter};
use tracing::warn;

use crate::clock::unix_ms;
use crate::http::checkpoint::ResponseCheckpoint;
use crate::orphans::Orphan;
use crate::record::{
    app_fields, object_start, orphan_of, seqs, tcp_block, upload_covered, write_record,
};

mod bundle;
mod cadence;
pub(crate) use bundle::Member;
pub use cadence::Cadence;
use cadence::{bytes_between, ConnState, Micros};

/// How far a checkpoint write covers the client's bytes (issue 13: they
/// are acknowledged only once a checkpoint covers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cover {
    /// All received: a response starts (the record names its request),
    /// the handshake, or the session answered all it read. Committed.
    All,
    /// Progress of a response: only up to the last `All` point, for the
    /// client may have sent its next request (not yet named).
    UpToLast,
    /// The final checkpoint before a move: nothing is sent after it.
    Final,
}

/// One worker's checkpoint writer: its own slots, so workers never contend.
pub struct Checkpointer {
    slots: SlotAllocator,
    writer: SlotWriter,
    region: Region,
    owner: u16,
    worker: u16,
    epoch: u32,
    cadence: Cadence,
    /// The clock of the connections' last writes.
    micros: Micros,
    /// Every checkpointed connection's (a slab: see `ConnSlab`).
    conns: ConnSlab<ConnId, ConnState>,
    full_warned: bool,
    /// A response's state was left out of a record (no room in the overflow
    /// area, or beyond an entry) and the operator was told once.
    lost_warned: bool,
    /// HTTPS connections' latest sealed TLS block, written with each of
    /// their checkpoints.
    tls: ConnMap<ConnId, Vec<u8>>,
    /// Bundle members' client bytes their last covering write committed
    /// (`bundle`).
    members: ConnMap<ConnId, SeqNum>,
    /// Plain HTTP connections' requests read but not answered, encoded
    /// (`http_pending`): the `app_state` of their checkpoints.
    pending: ConnMap<ConnId, Vec<u8>>,
}

impl Checkpointer {
    /// The checkpointer of worker `worker` of `n_workers` in `region`.
    pub fn new(
        region: &Region,
        worker: usize,
        n_workers: usize,
        cadence: Cadence,
    ) -> Result<Checkpointer, baton_shmem::SegmentError> {
        let slots = region.worker_slots(worker, n_workers)?;
        let writer = slots.writer();
        Ok(Checkpointer {
            slots,
            writer,
            region: region.clone(),
            owner: region.id(),
            worker: worker as u16,
            epoch: region.epoch(),
            cadence,
            micros: Micros::new(Instant::now()),
            conns: ConnSlab::default(),
            full_warned: false,
            lost_warned: false,
            tls: ConnMap::default(),
            members: ConnMap::default(),
            pending: ConnMap::default(),
        })
    }

    /// Writes `conn`'s checkpoint now, with the application block `app`:
    /// a response starts (or resumes), or the connection is new. The
    /// client's bytes are committed (acknowledged) with a response block
    /// or right after the handshake; otherwise a request may be among them
    /// that no record names yet, and they wait.
    pub fn commit(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, app: Option<&ResponseCheckpoint>) {
        let handshake = ctx
            .export(conn)
            .is_some_and(|e| seqs(&e).rcv_nxt == seqs(&e).irs + 1);
        let cover = if app.is_some() || handshake {
            Cover::All
        } else {
            Cover::UpToLast
        };
        self.write(ctx, conn, app, cover);
    }

    /// Writes `conn`'s checkpoint covering every client byte received
    /// (its FIN included): the session has answered all it read, so a
    /// survivor may start after them. Their ACK goes out with it.
    pub fn cover(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, app: Option<&ResponseCheckpoint>) {
        self.write(ctx, conn, app, Cover::All);
    }

    /// Writes `conn`'s last checkpoint before it moves to another box
    /// (drain, migrate): the box sends nothing more on it, so no ACK will
    /// pass what this checkpoint covers, and the adopter may wait for
    /// client bytes beyond it instead of resetting.
    pub fn commit_final(
        &mut self,
        ctx: &mut Ctx<'_>,
        conn: ConnId,
        app: Option<&ResponseCheckpoint>,
    ) {
        self.write(ctx, conn, app, Cover::Final);
    }

    fn write(
        &mut self,
        ctx: &mut Ctx<'_>,
        conn: ConnId,
        app: Option<&ResponseCheckpoint>,
        cover: Cover,
    ) -> bool {
        let Some(tcp) = ctx.export(conn) else {
            return false;
        };
        let seq = seqs(&tcp);
        let now_us = self.micros.at(ctx.now());
        let state = match self.conns.get_mut(&conn) {
            Some(s) => s,
            None => {
                let Some(slot) = self.slots.alloc() else {
                    // Nothing will ever commit its bytes: acknowledge them
                    // as they come.
                    ctx.set_ack_hold(conn, false);
                    if !self.full_warned {
                        warn!(
                            worker = self.worker,
                            "checkpoint slots exhausted: new connections are not recoverable"
                        );
                        self.full_warned = true;
                    }
                    return false;
                };
                self.region.add_connections(1);
                self.conns.insert(
                    conn,
                    ConnState::new(
                        slot,
                        seq.snd_una,
                        // What the connection's first record may claim: all
                        // but the bytes nobody read yet (a restored
                        // connection: its checkpoint's rcv_nxt; the request
                        // the client sent again is still unread).
                        seq.rcv_nxt - ctx.recv_available(conn) as u32,
                        now_us,
                    ),
                )
            }
        };
        state.advance(seq.snd_una, now_us, true);
        // An upload covers the client's bytes only up to what its spool
        // holds: that is where a survivor's connection must expect the
        // client's next byte, and all we may acknowledge (never beyond
        // what we actually received).
        let mut covered = app
            .and_then(upload_covered)
            .filter(|c| c.le(seq.rcv_nxt))
            .unwrap_or(seq.rcv_nxt);
        if cover == Cover::UpToLast && covered.gt(state.covered) {
            covered = state.covered;
        }
        let sent = app.map_or(0, |cp| bytes_between(object_start(cp), seq.snd_nxt));
        let (app_block, app_lost) = app_fields(app, sent);
        let record = ConnRecord {
            owner: self.owner,
            worker: self.worker,
            epoch: self.epoch,
            checkpoint_ms: unix_ms(),
            local: tcp.tuple.local.into(),
            remote: tcp.tuple.remote.into(),
            transport: Transport::Tcp,
            app_protocol: APP_PROTOCOL_HTTP,
            // Final: nothing is acknowledged after it. Otherwise only if
            // acknowledgements wait for commits — and only up to `covered`,
            // which an upload may hold below RCV.NXT.
            tcp: Some(tcp_block(
                &tcp,
                covered,
                (cover == Cover::Final && covered == seq.rcv_nxt) || tcp.acks_covered,
            )),
            app: app_block,
            app_lost,
            tls: self.tls.get(&conn).map(Vec::as_slice),
            app_state: self.pending.get(&conn).map(Vec::as_slice),
        };
        let slot = state.slot;
        if cover == Cover::All {
            state.covered = covered;
        }
        // An upload's body is acknowledged as it comes unless the box
        // requires commits (`ack_after_commit`, which the TCB enforces
        // whatever we say here): today's trade-off for uploads.
        let uploading = app
            .and_then(|cp| cp.upload.as_ref())
            .is_some_and(|u| u.received < u.content_length);
        match write_record(&mut self.writer, slot, record) {
            Ok(lost) => {
                if lost && !self.lost_warned {
                    // Once: a box whose overflow area is full says so on
                    // every record that does not fit its slot.
                    warn!(
                        worker = self.worker,
                        slot_payload = self.region.slot_payload(),
                        "a response's state does not fit its checkpoint (the overflow area is full, or the record is beyond an entry): a survivor would reset such connections; larger checkpoint.slot_bytes keeps more records in their slots"
                    );
                    self.lost_warned = true;
                } else if lost {
                    tracing::debug!(
                        worker = self.worker,
                        "response too large to checkpoint: a survivor would reset it"
                    );
                }
                self.region.add_checkpoints(1);
                ctx.set_ack_hold(conn, !uploading);
                // The client's bytes up to here are in the segment: they
                // may be acknowledged now (the response queued in this
                // poll carries the ACK).
                if cover == Cover::All {
                    ctx.commit_ack(conn, covered);
                }
                true
            }
            Err(err) => {
                // A failed write commits nothing: do not hold the client.
                ctx.set_ack_hold(conn, false);
                warn!(worker = self.worker, %err, "checkpoint write failed");
                false
            }
        }
    }

    /// Bytes were acknowledged on `conn`: true when its cadence says to
    /// checkpoint now (the caller refreshes what the checkpoint carries,
    /// e.g. its TLS block, only then: sealing one costs as much as a
    /// response's body record).
    pub fn progress_due(&self, ctx: &mut Ctx<'_>, conn: ConnId) -> bool {
        let Some(state) = self.conns.get(&conn) else {
            return false;
        };
        let Some(una) = ctx.export(conn).map(|e| seqs(&e).snd_una) else {
            return false;
        };
        state.due(&self.cadence, una, self.micros.at(ctx.now()))
    }

    /// The sequence the client acknowledged when that is every byte handed
    /// to TCP on `conn` (none in flight, none queued behind a closed
    /// window) and its last checkpoint predates it: the caller, whose
    /// connection rests (its response done, nothing read to answer),
    /// writes one more ([`Self::write_progress`]) so that the record says
    /// the client has it all. A survivor of a mass takeover then leaves
    /// the connection to its client's next segment instead of probing it
    /// (`Orphan::sent_everything`). One write per response at most, and
    /// none in a request-response stream whose next request carries the
    /// ACK (the caller sees it unread).
    pub fn settle_due(&self, ctx: &mut Ctx<'_>, conn: ConnId) -> Option<SeqNum> {
        let state = self.conns.get(&conn)?;
        let s = ctx.export(conn).map(|e| seqs(&e))?;
        // A client whose window closed has acknowledged all that was sent
        // while the rest of a response waits in the queue: not settled.
        let all = s.snd_una == s.snd_nxt && ctx.next_seq(conn) == Some(s.snd_una);
        (all && s.snd_una != state.last_una).then_some(s.snd_una)
    }

    /// Writes `conn`'s checkpoint for the progress [`Self::progress_due`]
    /// found.
    pub fn write_progress(
        &mut self,
        ctx: &mut Ctx<'_>,
        conn: ConnId,
        app: Option<&ResponseCheckpoint>,
    ) {
        self.write(ctx, conn, app, Cover::UpToLast);
    }

    /// The sealed TLS block `conn`'s next checkpoints carry (`None`: none,
    /// a plain connection or a TLS one not resumable now).
    pub fn set_tls(&mut self, conn: ConnId, block: Option<Vec<u8>>) {
        put(&mut self.tls, conn, block);
    }

    /// The encoded pending requests (`http_pending`) `conn`'s next
    /// checkpoints carry (`None`: nothing owed beyond the response).
    pub fn set_pending(&mut self, conn: ConnId, state: Option<Vec<u8>>) {
        put(&mut self.pending, conn, state);
    }

    /// `conn` moved to another box, which reads its final checkpoint from
    /// our region: stop writing it, leave the slot as it is (the control
    /// core clears it once the adopter has the connection).
    pub fn forget(&mut self, conn: ConnId) {
        if self.conns.get(&conn).is_some() {
            self.region.add_connections(-1);
        }
        self.detach(conn);
    }

    /// How long a connection rests before it is parked (`None`: never).
    pub fn park_after(&self) -> Option<Duration> {
        self.cadence.park_after
    }

    /// This worker's slots.
    pub fn slot_range(&self) -> std::ops::Range<u32> {
        self.slots.range()
    }

    /// Writes `conn`'s checkpoint for parking: final (nothing is sent after
    /// it), with no application block (the connection rests: a survivor or
    /// this box serves it as a new idle one), and findable through the
    /// segment's tuple index, by which the client's next segment finds it
    /// again. Returns the slot, or `None` when the connection is not
    /// parkable after all (no slot, TLS or pending requests of its own, the
    /// write failed, or its index buckets are full); the caller then keeps
    /// it live. The connection's state here stays until [`Self::detach`].
    pub fn write_parked(&mut self, ctx: &mut Ctx<'_>, conn: ConnId) -> Option<SlotId> {
        let slot = self.conns.get(&conn)?.slot;
        if self.tls.contains_key(&conn)
            || self.pending.contains_key(&conn)
            || self.members.contains_key(&conn)
        {
            return None;
        }
        if !self.write(ctx, conn, None, Cover::Final) {
            return None;
        }
        let tuple = ctx.tuple(conn)?;
        self.region
            .slots_of(tuple.local, tuple.remote)
            .contains(&slot)
            .then_some(slot)
    }

    /// Stops tracking `conn` (parked: its TCB is dropped) but keeps its
    /// slot and record, which [`Self::adopt`] or [`Self::free_slot`] take
    /// up again.
    pub fn detach(&mut self, conn: ConnId) {
        self.tls.remove(&conn);
        self.pending.remove(&conn);
        self.members.remove(&conn);
        self.conns.remove(&conn);
    }

    /// `conn`, rebuilt from the record in `slot` (a parked connection
    /// back), is written there again from now on.
    pub fn adopt(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, slot: SlotId) {
        let Some(seq) = ctx.export(conn).map(|e| seqs(&e)) else {
            return;
        };
        let now_us = self.micros.at(ctx.now());
        self.conns
            .insert(conn, ConnState::new(slot, seq.snd_una, seq.rcv_nxt, now_us));
    }

    /// The record of `tuple` in `slot` of this worker's, as a restore
    /// takes it; `None` if the slot holds no readable record of it.
    pub fn read_record(&self, slot: SlotId, tuple: &FourTuple) -> Option<Orphan> {
        let (l, r) = (tuple.local.into(), tuple.remote.into());
        self.first_orphan_in(slot, |rec| rec.is_between(&l, &r))
    }

    /// The connection recorded in `slot` of this worker's, as a restore
    /// takes it (a plain HTTP record holds one).
    pub fn read_record_in(&self, slot: SlotId) -> Option<Orphan> {
        self.first_orphan_in(slot, |_| true)
    }

    /// The first record in `slot` that `wanted` picks and a restore can
    /// take: the one slot read behind both lookups above.
    fn first_orphan_in(
        &self,
        slot: SlotId,
        wanted: impl Fn(&ArchivedConnRecord<'_>) -> bool,
    ) -> Option<Orphan> {
        let valid = self.region.read(slot).ok()??;
        valid
            .bundle()
            .records
            .iter()
            .filter(|rec| wanted(rec))
            .find_map(orphan_of)
    }

    /// The slots of this worker's range holding a record of `tuple`
    /// (through the segment's tuple index).
    pub fn slots_of(&self, tuple: &FourTuple) -> impl Iterator<Item = SlotId> {
        let range = self.slots.range();
        self.region
            .slots_of(tuple.local, tuple.remote)
            .into_iter()
            .filter(move |s| range.contains(&s.0))
    }

    /// A parked connection ended (its client reset it, or a new connection
    /// took its 4-tuple): its slot is cleared and reused.
    pub fn free_slot(&mut self, slot: SlotId) {
        let _ = self.writer.clear(slot);
        let _ = self.slots.free(slot);
        self.region.add_connections(-1);
    }

    /// Parked connections left this box (handed over, released): their
    /// records stay for whoever adopts them, as [`Self::forget`] leaves a
    /// live one's.
    pub fn forget_parked(&mut self, n: usize) {
        self.region.add_connections(-(n as i64));
    }

    /// `conn` is gone: its slot is cleared and reused.
    pub fn release(&mut self, conn: ConnId) {
        self.tls.remove(&conn);
        self.pending.remove(&conn);
        self.members.remove(&conn);
        if let Some(state) = self.conns.remove(&conn) {
            let _ = self.writer.clear(state.slot);
            let _ = self.slots.free(state.slot);
            self.region.add_connections(-1);
        }
    }
}

/// `conn`'s entry in `map` becomes `value`, or goes with `None`.
fn put(map: &mut ConnMap<ConnId, Vec<u8>>, conn: ConnId, value: Option<Vec<u8>>) {
    match value {
        Some(v) => {
            map.insert(conn, v);
        }
        None => {
            map.remove(&conn);
        }
    }
}
