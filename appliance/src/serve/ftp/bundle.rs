//! FTP's bundle (issue 17): the control connection's worker writes the
//! control connection and its data connection (when on this worker) as
//! one slot write, each record carrying the `baton-ftp` records in
//! `app_state` (`app_protocol` 2): the control member the control record
//! followed by the data record while a transfer is pending or running,
//! the data member the data record. A survivor restores each member as it
//! comes and joins them again through the hub.
//!
//! Written after every callback that changed a session (a command read
//! and answered, a data connection accepted, a transfer started or
//! finished) and, while a transfer runs, on the checkpoint cadence of the
//! data connection's acknowledged bytes. The control connection's command
//! bytes are committed (acknowledged) only by a write where the session
//! answered all it read. It knows neither the segment's bytes nor the
//! session's rules.
use std::net::SocketAddr;
use std::sync::Arc;

use baton_dataplane::app::Ctx;
use baton_dataplane::flow::ConnId;
use baton_dataplane::tcp::State;
use baton_ftp::checkpoint::{CONTROL_LEN, DATA_LEN};
use baton_ftp::session::Data;
use baton_ftp::{listing, ControlRecord, DataRecord, Session, TransferKind};
use baton_shmem::record::APP_PROTOCOL_FTP;
use bytes::Bytes;
use tracing::{debug, info};

use super::{add, Control, DataConn, FtpConns, Stream};
use crate::serve::checkpoint::{Checkpointer, Member};
use crate::serve::ftp_hub::{CtlEvent, DataEvent, Event};

impl FtpConns {
    /// Writes the bundles the last callback made due (and those a
    /// running transfer's cadence asks for); without a checkpoint writer,
    /// nothing is held.
    pub fn checkpoint(&mut self, ctx: &mut Ctx<'_>, cp: Option<&mut Checkpointer>) {
        if self.left.is_empty() && self.due.is_empty() && self.datas.is_empty() {
            return;
        }
        let Some(cp) = cp else {
            self.due.clear();
            self.left.clear();
            return;
        };
        for conn in self.left.drain(..) {
            cp.leave_bundle(ctx, conn);
        }
        for (conn, d) in &self.datas {
            if let Some(ctl) = d.ctl.filter(|c| c.worker == self.worker) {
                if cp.bundle_due(ctx, ctl.conn, *conn) {
                    self.due.insert(ctl.conn);
                }
            }
        }
        let frozen = &self.frozen;
        let due: Vec<ConnId> = self.due.drain().filter(|c| !frozen.contains(c)).collect();
        for ctl in due {
            self.write_bundle(ctl, ctx, cp);
        }
    }

    /// `conn` stops here (a drain, or a handoff to another box): its
    /// bundle gets its last write, once for both members — the adopter
    /// restores it, and nothing after it is sent from this box.
    pub fn freeze(&mut self, conn: ConnId, ctx: &mut Ctx<'_>, cp: Option<&mut Checkpointer>) {
        let ctl = if self.controls.contains_key(&conn) {
            Some(conn)
        } else {
            self.datas
                .get(&conn)
                .and_then(|d| d.ctl)
                .filter(|c| c.worker == self.worker)
                .map(|c| c.conn)
        };
        let Some(ctl) = ctl else {
            return;
        };
        if self.frozen.contains(&ctl) {
            return;
        }
        if let Some(cp) = cp {
            self.write_bundle(ctl, ctx, cp);
        }
        self.frozen.insert(ctl);
    }

    /// `conn` was handed off to another box: forget it without a word to
    /// the client or the other member (which is handed off with it).
    pub fn forget(&mut self, conn: ConnId) {
        if let Some(c) = self.controls.remove(&conn) {
            if let Some(p) = c.passive {
                self.serve.hub.release(c.local, p, self.me(conn), None);
            }
            self.frozen.remove(&conn);
            self.due.remove(&conn);
        } else {
            self.datas.remove(&conn);
        }
    }

    /// The data connection of `ctl`'s bundle: on this worker, started for
    /// `ctl` and not reported yet; with its transfer's first sequence.
    fn member_data(&self, ctl: ConnId, c: &Control) -> Option<(ConnId, u32)> {
        let d = c.data.filter(|d| d.worker == self.worker)?;
        let dc = self.datas.get(&d.conn)?;
        if dc.ctl.map(|w| w.conn) != Some(ctl) {
            return None;
        }
        Some((d.conn, dc.first_seq?.0))
    }

    fn write_bundle(&mut self, ctl: ConnId, ctx: &mut Ctx<'_>, cp: &mut Checkpointer) {
        let Some(c) = self.controls.get(&ctl) else {
            return;
        };
        let data = self.member_data(ctl, c);
        let (mut control, record) = match c.session.checkpoint(data.map_or(0, |(_, s)| s)) {
            Ok(r) => r,
            Err(e) => {
                debug!(%e, "FTP session not checkpointable: its connections are not recoverable");
                ctx.set_ack_hold(ctl, false);
                return;
            }
        };
        let data_bytes = match record.map(|r| r.encode()).transpose() {
            Ok(b) => b,
            Err(e) => {
                debug!(%e, "FTP transfer not checkpointable");
                ctx.set_ack_hold(ctl, false);
                return;
            }
        };
        if matches!(control.data, Data::Active { .. }) {
            // The port the active data connection was opened from: its
            // restored control connection takes it back like a passive one.
            control.active_port = c.passive.unwrap_or(0);
        }
        let mut ctl_state = control.encode().to_vec();
        if let Some(b) = &data_bytes {
            ctl_state.extend_from_slice(b);
        }
        let mut members = vec![Member {
            conn: ctl,
            app_state: &ctl_state,
            answered: c.session.answered_all(),
        }];
        if let (Some((conn, _)), Some(b)) = (data, &data_bytes) {
            members.push(Member {
                conn,
                app_state: b,
                answered: true,
            });
        }
        if cp.write_bundle(ctx, ctl, APP_PROTOCOL_FTP, &members) {
            add(&self.context.counters.ftp_bundle_writes, 1);
        }
    }

    /// A connection to an FTP port taken over from a dead box, ready:
    /// a control connection continues its session from its records, a
    /// data connection its transfer at the byte the client expects next.
    /// Without state (or with state that does not restore) it is reset.
    pub fn on_restored(&mut self, conn: ConnId, state: Option<&[u8]>, ctx: &mut Ctx<'_>) {
        let Some(t) = ctx.tuple(conn) else {
            ctx.abort(conn);
            return;
        };
        ctx.set_ack_hold(conn, false);
        let ok = match state {
            None => Err("no FTP state in the record".to_string()),
            Some(b) if t.local.port() == self.serve.port => self.restore_control(conn, b, ctx),
            Some(b) => self.restore_data(conn, b, ctx),
        };
        if let Err(why) = ok {
            info!(tuple = ?t, "FTP connection not restored: {why}");
            add(&self.context.counters.ftp_not_restored, 1);
            ctx.abort(conn);
        }
    }

    fn restore_control(&mut self, conn: ConnId, b: &[u8], ctx: &mut Ctx<'_>) -> Result<(), String> {
        let t = ctx.tuple(conn).ok_or("gone")?;
        let control = ControlRecord::decode(b).map_err(|e| e.to_string())?;
        let data = match b.get(CONTROL_LEN..) {
            Some(rest) if rest.len() >= DATA_LEN => {
                Some(DataRecord::decode(rest).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let now = self.ms(ctx);
        let catalog = self.serve.hub.catalog();
        let local = SocketAddr::new(t.local.ip(), t.local.port());
        let client = SocketAddr::new(t.remote.ip(), t.remote.port());
        let (session, actions) = Session::restore(
            self.serve.config.clone(),
            client,
            local,
            &control,
            data.as_ref(),
            &*catalog,
            now,
        )
        .map_err(|e| e.to_string())?;
        let me = self.me(conn);
        let mut c = Control {
            seen: session.counters(),
            session,
            local: t.local.ip(),
            passive: None,
            data: None,
        };
        let port = match control.data {
            Data::Passive {
                port,
                connected: true,
            } => Some(port),
            Data::Active {
                connected: true, ..
            } if control.active_port != 0 => Some(control.active_port),
            _ => None,
        };
        if let Some(port) = port {
            let (held, restored) = self.serve.hub.reserve_restored(t.local.ip(), port, me);
            if held {
                c.passive = Some(port);
            }
            if let Some(d) = restored {
                c.data = Some(d);
                self.tell_data(d, me);
            }
        }
        self.controls.insert(conn, c);
        add(&self.context.counters.ftp_restored_control, 1);
        info!(tuple = ?t, reply = control.awaited_reply(), "FTP control connection restored");
        self.apply(conn, actions, ctx);
        if matches!(ctx.state(conn), Some(State::CloseWait | State::LastAck)) {
            self.on_peer_closed(conn, ctx);
        }
        Ok(())
    }

    /// Tells restored data connection `d` that `ctl` is its control.
    fn tell_data(&mut self, d: super::Where<ConnId>, ctl: super::Where<ConnId>) {
        if d.worker == self.worker {
            if let Some(dc) = self.datas.get_mut(&d.conn) {
                dc.ctl = Some(ctl);
            }
        } else {
            self.serve.hub.post(
                d,
                Event::Data {
                    data: d.conn,
                    ev: DataEvent::Adopt(ctl),
                },
            );
        }
    }

    fn restore_data(&mut self, conn: ConnId, b: &[u8], ctx: &mut Ctx<'_>) -> Result<(), String> {
        let t = ctx.tuple(conn).ok_or("gone")?;
        let record = DataRecord::decode(b).map_err(|e| e.to_string())?;
        let next = ctx.next_seq(conn).ok_or("gone")?;
        // Bytes of the transfer the client has (or will get from TCP's
        // retransmission) before the first byte sent from here.
        let done = u64::from(next.0.wrapping_sub(record.first_seq));
        let fin_sent = matches!(
            ctx.state(conn),
            Some(
                State::FinWait1
                    | State::FinWait2
                    | State::Closing
                    | State::TimeWait
                    | State::LastAck
            )
        );
        let stream = if fin_sent {
            Stream::Finished
        } else if record.kind == TransferKind::Retr {
            if done > record.size.saturating_sub(record.offset) {
                return Err(format!("position {done} past the object's end"));
            }
            let url = format!("/{}", record.object);
            let l = self
                .cache
                .try_lookup(&url, ctx.now())
                .map_err(|e| format!("{url}: {e}"))?;
            Stream::Object {
                object: Arc::clone(l.object()),
                pos: record.offset + done,
            }
        } else {
            let entries = self.serve.hub.catalog();
            let mut bytes = Bytes::from(match record.kind {
                TransferKind::List => listing::list_bytes(&entries),
                TransferKind::Nlst => listing::nlst_bytes(&entries),
                _ => listing::mlsd_bytes(&entries),
            });
            if done > bytes.len() as u64 {
                return Err("listing shorter than what was sent".into());
            }
            let _ = bytes.split_to(done as usize);
            Stream::Listing(bytes)
        };
        let key = (t.local.ip(), t.local.port());
        let me = self.me(conn);
        let ctl = self.serve.hub.data_restored(key.0, key.1, me);
        self.datas.insert(
            conn,
            DataConn {
                ctl,
                key,
                stream,
                first_seq: Some(baton_dataplane::tcp::SeqNum(record.first_seq)),
            },
        );
        if let Some(ctl) = ctl {
            if ctl.worker == self.worker {
                if let Some(c) = self.controls.get_mut(&ctl.conn) {
                    c.data = Some(me);
                }
                self.due.insert(ctl.conn);
            } else {
                self.serve.hub.post(
                    ctl,
                    Event::Control {
                        ctl: ctl.conn,
                        ev: CtlEvent::Adopted(me),
                    },
                );
            }
        }
        add(&self.context.counters.ftp_restored_data, 1);
        info!(tuple = ?t, object = %record.object, at = record.offset + done, "FTP data connection restored: resuming");
        self.pump(conn, ctx);
        self.report_acknowledged(ctx);
        Ok(())
    }
}
