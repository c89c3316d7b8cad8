//! Bundles: several connections of one session written into one slot by
//! one seqlock write (issue 17: an FTP control connection and its data
//! connection), so a survivor finds all of them at one instant or none.
//!
//! The slot belongs to the bundle's key (the control connection); each
//! member brings its protocol's state as opaque `app_state` bytes and the
//! TCP block comes from its TCB's export, as for one connection. Knows
//! neither what the state bytes mean nor when the protocol wants a write;
//! only how the records go into the slot and what that commits.
use baton_dataplane::app::Ctx;
use baton_dataplane::flow::ConnId;
use baton_shmem::record::{ConnRecord, Transport};
use tracing::warn;

use super::{Checkpointer, ConnState};
use crate::clock::unix_ms;
use crate::record::{seqs, tcp_block};

/// One connection of a bundle.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member<'a> {
    /// The connection.
    pub conn: ConnId,
    /// Its protocol's state (the record's `app_state`).
    pub app_state: &'a [u8],
    /// True when the protocol answered every client byte it read: the
    /// write covers (commits) them. False: only what an earlier write of
    /// this member covered.
    pub answered: bool,
}

impl Checkpointer {
    /// Writes `members` as the bundle of `key` (its slot; allocated at the
    /// first write), `app_protocol` on every record, in one slot write.
    /// The last member is the one whose acknowledged bytes drive the
    /// cadence ([`Checkpointer::bundle_due`]). Returns false when nothing
    /// was written (no slot, a failed write): the members' client bytes
    /// are then acknowledged as they come.
    pub(crate) fn write_bundle(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: ConnId,
        app_protocol: u8,
        members: &[Member<'_>],
    ) -> bool {
        let exports: Vec<_> = members
            .iter()
            .filter_map(|m| ctx.export(m.conn).map(|e| (m, e)))
            .collect();
        let Some((_, last)) = exports.last() else {
            return false;
        };
        let progress = seqs(last).snd_una;
        let now_us = self.micros.at(ctx.now());
        let slot = match self.conns.get(&key) {
            Some(s) => s.slot,
            None => {
                let Some(slot) = self.slots.alloc() else {
                    for m in members {
                        ctx.set_ack_hold(m.conn, false);
                    }
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
                let rcv = seqs(last).rcv_nxt;
                self.conns
                    .insert(key, ConnState::new(slot, progress, rcv, now_us));
                slot
            }
        };
        let mut covers = Vec::with_capacity(exports.len());
        let mut records = Vec::with_capacity(exports.len());
        for (m, tcp) in &exports {
            let s = seqs(tcp);
            let all = s.rcv_nxt - ctx.recv_available(m.conn) as u32;
            let covered = match self.members.get(&m.conn) {
                Some(prev) if !m.answered => *prev,
                _ => all,
            };
            covers.push((
                m.conn,
                covered,
                m.answered || !self.members.contains_key(&m.conn),
            ));
            records.push(ConnRecord {
                owner: self.owner,
                worker: self.worker,
                epoch: self.epoch,
                checkpoint_ms: unix_ms(),
                local: tcp.tuple.local.into(),
                remote: tcp.tuple.remote.into(),
                transport: Transport::Tcp,
                app_protocol,
                tcp: Some(tcp_block(tcp, covered, tcp.acks_covered)),
                app: None,
                app_lost: false,
                tls: None,
                app_state: Some(m.app_state),
            });
        }
        if let Some(state) = self.conns.get_mut(&key) {
            state.advance(progress, now_us, false);
        }
        match self.writer.write(slot, &records) {
            Ok(()) => {
                self.region.add_checkpoints(1);
                for (conn, covered, commit) in covers {
                    ctx.set_ack_hold(conn, true);
                    if commit {
                        ctx.commit_ack(conn, covered);
                        self.members.insert(conn, covered);
                    }
                }
                true
            }
            Err(err) => {
                for m in members {
                    ctx.set_ack_hold(m.conn, false);
                }
                warn!(worker = self.worker, %err, "bundle checkpoint write failed");
                false
            }
        }
    }

    /// True when `key`'s bundle is due for a write because its member
    /// `progress` had bytes acknowledged (the same sliding scale as one
    /// connection's, [`Checkpointer::on_progress`]).
    pub(crate) fn bundle_due(&self, ctx: &Ctx<'_>, key: ConnId, progress: ConnId) -> bool {
        let Some(state) = self.conns.get(&key) else {
            return false;
        };
        let Some(una) = ctx.export(progress).map(|e| seqs(&e).snd_una) else {
            return false;
        };
        state.due(&self.cadence, una, self.micros.at(ctx.now()))
    }

    /// `conn` left its bundle (its transfer ended): its client bytes are
    /// acknowledged as they come from now on.
    pub(crate) fn leave_bundle(&mut self, ctx: &mut Ctx<'_>, conn: ConnId) {
        self.members.remove(&conn);
        ctx.set_ack_hold(conn, false);
    }
}
