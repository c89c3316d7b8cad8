//! RTSP's bundle (issue 18): the control connection's slot carries the
//! session and its RTP flow as one `baton-rtsp` [`BundleRecord`] in
//! `app_state` (`app_protocol` 3), so the TCP connection and the UDP (or
//! interleaved) stream move together in one write.
//!
//! Written after every request answered (SETUP, PLAY, PAUSE, TEARDOWN...)
//! and, while a session plays, every `rtsp.checkpoint_interval_ms`
//! (200 ms by default): RTP has no ACKs
//! to drive the cadence, and a survivor resumes from the last write's
//! packet (repeating at most that much, skipping none). The client's
//! request bytes are committed (acknowledged) only by a write that
//! answered them all.
//!
//! A survivor restores the control connection as TCP does, waits for the
//! record's object in its cache, then restores the `Conn` from the record:
//! same session id and SSRC, the flow from its checkpointed packet with
//! its sequence numbers and timestamps, from the service IP and server
//! ports the client knows. It knows neither the segment's bytes nor
//! RTSP's rules.
use baton_dataplane::app::Ctx;
use baton_dataplane::flow::ConnId;
use baton_rtsp::{BundleRecord, Config, Conn, Transport};
use baton_shmem::record::APP_PROTOCOL_RTSP;
use tracing::{debug, info};

use super::{add, lock, Control, RtspConns};
use crate::serve::checkpoint::{Checkpointer, Member};

impl RtspConns {
    /// Writes the bundles a request made due, and those of playing
    /// sessions on the cadence; without a checkpoint writer, nothing is
    /// held.
    pub fn checkpoint(&mut self, ctx: &mut Ctx<'_>, cp: Option<&mut Checkpointer>) {
        let Some(cp) = cp else {
            for (conn, c) in self.controls.iter_mut().filter(|(_, c)| c.dirty) {
                c.dirty = false;
                ctx.set_ack_hold(*conn, false);
            }
            return;
        };
        let now = ctx.now();
        if !self.any_dirty && self.next_write.is_none_or(|t| now < t) {
            return;
        }
        self.any_dirty = false;
        let every = self.serve.checkpoint_every;
        let due: Vec<ConnId> = self
            .controls
            .iter()
            .filter(|(_, c)| c.restore.is_none() && !c.frozen)
            .filter(|(_, c)| {
                c.dirty
                    || (c.conn.state() == baton_rtsp::State::Playing
                        && c.last_write
                            .is_none_or(|t| now.saturating_duration_since(t) >= every))
            })
            .map(|(id, _)| *id)
            .collect();
        for conn in due {
            self.write(conn, ctx, cp);
        }
        self.next_write = self
            .controls
            .values()
            .filter(|c| c.restore.is_none() && !c.frozen)
            .filter(|c| c.conn.state() == baton_rtsp::State::Playing)
            .map(|c| c.last_write.map_or(now, |t| t + every))
            .min();
    }

    /// `conn` stops here (a drain, or a handoff): its bundle's last write.
    pub fn freeze(&mut self, conn: ConnId, ctx: &mut Ctx<'_>, cp: Option<&mut Checkpointer>) {
        if self.controls.get(&conn).is_none_or(|c| c.frozen) {
            return;
        }
        if let Some(cp) = cp {
            self.write(conn, ctx, cp);
        }
        if let Some(c) = self.controls.get_mut(&conn) {
            c.frozen = true;
        }
    }

    /// `conn` was handed off to another box: forget it without a word.
    pub fn forget(&mut self, conn: ConnId) {
        if let Some(c) = self.controls.remove(&conn) {
            self.unregister(&c);
        }
    }

    fn write(&mut self, conn: ConnId, ctx: &mut Ctx<'_>, cp: &mut Checkpointer) {
        let Some(c) = self.controls.get_mut(&conn) else {
            return;
        };
        c.dirty = false;
        c.last_write = Some(ctx.now());
        let state = match c.conn.checkpoint().encode() {
            Ok(b) => b,
            Err(e) => {
                debug!(%e, "RTSP session not checkpointable: its connection is not recoverable");
                ctx.set_ack_hold(conn, false);
                return;
            }
        };
        let members = [Member {
            conn,
            app_state: &state,
            // Bytes taken from TCP but not given to the session (a request
            // held for its object) are not answered yet.
            answered: c.input.is_empty(),
        }];
        if cp.write_bundle(ctx, conn, APP_PROTOCOL_RTSP, &members) {
            add(&self.context.counters.rtsp_bundle_writes, 1);
        }
    }

    /// A connection to the RTSP port taken over from a dead box, ready:
    /// its session continues from the record once its object is in the
    /// cache. Without state (or with state that does not decode) it is
    /// reset.
    pub fn on_restored(&mut self, conn: ConnId, state: Option<&[u8]>, ctx: &mut Ctx<'_>) {
        // Until the restored session's first write.
        ctx.set_ack_hold(conn, false);
        let (Some(tuple), Some(state)) = (ctx.tuple(conn), state) else {
            info!(tuple = ?ctx.tuple(conn), "RTSP connection not restored: no state in the record");
            add(&self.context.counters.rtsp_not_restored, 1);
            ctx.abort(conn);
            return;
        };
        let rec = match BundleRecord::decode(state) {
            Ok(r) => r,
            Err(e) => {
                info!(?tuple, %e, "RTSP connection not restored");
                add(&self.context.counters.rtsp_not_restored, 1);
                ctx.abort(conn);
                return;
            }
        };
        debug!(
            ?tuple,
            session = rec.session_id,
            "RTSP connection taken over: waiting for its object"
        );
        if rec.flow.is_some()
            && matches!(rec.session.transport, Some(Transport::Interleaved { .. }))
        {
            // The client may hold part of an interleaved frame and RTP
            // past the record's packet, and nothing here says where the
            // frames fall in TCP's sequence space: a reset is better than
            // a misframed stream (docs/RTSP.md, "What is left").
            info!(
                ?tuple,
                "RTSP connection not restored: interleaved media since its first PLAY"
            );
            add(&self.context.counters.rtsp_not_restored, 1);
            ctx.abort(conn);
            return;
        }
        // A placeholder `Conn` until the object is here (`finish_restore`).
        let placeholder = Conn::new(
            self.config(&tuple, rec.session_id, rec.ssrc),
            self.serve.flow,
            self.serve.limits,
            Box::new(|_: &str| None),
        );
        self.controls
            .insert(conn, Control::new(placeholder, tuple, Some(rec)));
        self.turn(conn, ctx);
    }

    /// The session's configuration on this box for `tuple`.
    fn config(
        &self,
        tuple: &baton_dataplane::tcp::FourTuple,
        session_id: u64,
        ssrc: u32,
    ) -> Config {
        Config {
            client: tuple.remote.ip(),
            server: tuple.local.ip(),
            server_ports: self.serve.server_ports,
            timeout_ms: self.serve.timeout_ms,
            session_id,
            ssrc,
        }
    }

    /// Restores `c`'s `Conn` from its record once the object is here.
    /// False while it waits (`c.restore` kept) or when the connection was
    /// reset (`c.restore` taken: the caller drops `c`).
    pub(super) fn finish_restore(
        &self,
        conn: ConnId,
        c: &mut Control,
        now_us: u64,
        ctx: &mut Ctx<'_>,
    ) -> bool {
        let Some(path) = c.restore.as_ref().map(|r| r.session.path.clone()) else {
            return true;
        };
        if let Some(path) = path.as_deref() {
            if !self.ready(c, path, ctx.now()) {
                return false;
            }
        }
        let Some(rec) = c.restore.take() else {
            return true;
        };
        let serve = std::sync::Arc::clone(&self.serve);
        let lookup = Box::new(move |p: &str| lock(&serve.objects).get(p).cloned());
        let cfg = self.config(&c.tuple, rec.session_id, rec.ssrc);
        match Conn::restore(
            cfg,
            self.serve.flow,
            self.serve.limits,
            lookup,
            &rec,
            now_us,
        ) {
            Some(mut restored) => {
                restored.set_udp(true);
                c.conn = restored;
                c.dirty = true;
                add(&self.context.counters.rtsp_restored, 1);
                info!(
                    tuple = ?c.tuple,
                    state = ?rec.session.state,
                    path = ?rec.session.path,
                    next = ?rec.flow.map(|f| (f.ssrc, f.next_seq, f.offset)),
                    "RTSP session restored: resuming its stream"
                );
                true
            }
            None => {
                info!(tuple = ?c.tuple, path = ?rec.session.path, "RTSP connection not restored: its object is not found");
                add(&self.context.counters.rtsp_not_restored, 1);
                ctx.abort(conn);
                false
            }
        }
    }
}
