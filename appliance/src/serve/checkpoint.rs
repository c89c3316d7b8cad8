//! Writing a worker's connection checkpoints into its slots of the segment.
//!
//! The application hands its block (the HTTP response it is sending); the
//! TCP block comes from the TCB's export and the IP block from the port, so
//! each layer contributes its own state (seed Fig. 4, ARCHITECTURE.md
//! "Checkpoints"). Cadence slides with each connection's throughput: fast
//! connections every `fast_bytes`, slow ones every `slow_bytes`, and at
//! most `interval` apart while bytes flow (seed: "checkpoints occur based
//! upon a sliding scale"); and always at a new response.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use baton_dataplane::app::Ctx;
use baton_dataplane::flow::ConnId;
use baton_shmem::record::{ConnRecord, IpBlock, TcpBlock, Transport, APP_PROTOCOL_HTTP};
use baton_shmem::{Region, SlotAllocator, SlotId, SlotWriter};
use tracing::warn;

use crate::http::checkpoint::ResponseCheckpoint;
use crate::run::unix_ms;

/// Throughput above which a connection counts as fast (bytes per second).
const FAST_RATE: f64 = 1_000_000.0;

/// When to checkpoint a connection that is sending.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// Bytes acknowledged between checkpoints of a fast connection.
    pub fast_bytes: u64,
    /// Bytes acknowledged between checkpoints of a slow connection.
    pub slow_bytes: u64,
    /// Longest time between checkpoints while bytes are acknowledged.
    pub interval: Duration,
}

impl Cadence {
    /// From the `[checkpoint]` section.
    pub fn from_config(c: &baton_config::CheckpointConfig) -> Cadence {
        Cadence {
            fast_bytes: c.fast_bytes,
            slow_bytes: c.slow_bytes,
            interval: Duration::from_millis(c.interval_ms),
        }
    }

    /// Bytes between checkpoints at throughput `rate` (bytes/s).
    fn bytes_at(&self, rate: f64) -> u64 {
        if rate >= FAST_RATE {
            self.fast_bytes
        } else {
            self.slow_bytes
        }
    }
}

/// What the checkpointer keeps per connection.
#[derive(Debug)]
struct ConnState {
    slot: SlotId,
    last_una: u32,
    last_at: Instant,
    /// Acknowledged bytes per second, exponentially averaged per checkpoint.
    rate: f64,
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
    local_mac: [u8; 6],
    conns: HashMap<ConnId, ConnState>,
    full_warned: bool,
}

impl Checkpointer {
    /// The checkpointer of worker `worker` of `n_workers` in `region`.
    pub fn new(
        region: &Region,
        worker: usize,
        n_workers: usize,
        cadence: Cadence,
        local_mac: [u8; 6],
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
            local_mac,
            conns: HashMap::new(),
            full_warned: false,
        })
    }

    /// Writes `conn`'s checkpoint now, with the application block `app`.
    pub fn commit(&mut self, ctx: &mut Ctx<'_>, conn: ConnId, app: Option<&ResponseCheckpoint>) {
        self.write(ctx, conn, app, false);
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
        self.write(ctx, conn, app, true);
    }

    fn write(
        &mut self,
        ctx: &mut Ctx<'_>,
        conn: ConnId,
        app: Option<&ResponseCheckpoint>,
        last: bool,
    ) {
        let Some(tcp) = ctx.export(conn) else {
            return;
        };
        let now = ctx.now();
        let state = match self.conns.get_mut(&conn) {
            Some(s) => s,
            None => {
                let Some(slot) = self.slots.alloc() else {
                    if !self.full_warned {
                        warn!(
                            worker = self.worker,
                            "checkpoint slots exhausted: new connections are not recoverable"
                        );
                        self.full_warned = true;
                    }
                    return;
                };
                self.region.add_connections(1);
                self.conns.entry(conn).or_insert(ConnState {
                    slot,
                    last_una: tcp.snd_una,
                    last_at: now,
                    rate: 0.0,
                })
            }
        };
        let acked = tcp.snd_una.wrapping_sub(state.last_una) as u64;
        let elapsed = now.saturating_duration_since(state.last_at).as_secs_f64();
        if elapsed > 0.0 {
            let sample = acked as f64 / elapsed;
            state.rate = if state.rate == 0.0 {
                sample
            } else {
                0.75 * state.rate + 0.25 * sample
            };
        }
        state.last_una = tcp.snd_una;
        state.last_at = now;
        // An upload covers the client's bytes only up to what its spool
        // holds: that is where a survivor's connection must expect the
        // client's next byte, and all we may acknowledge (never beyond
        // what we actually received).
        let covered = app
            .and_then(|cp| cp.upload.as_ref())
            .map(|u| u.covered_seq().0)
            .filter(|&c| (tcp.rcv_nxt.wrapping_sub(c) as i32) >= 0)
            .unwrap_or(tcp.rcv_nxt);
        let app_block = app.and_then(|cp| {
            // Sequence space wraps: the signed distance, never below zero.
            let sent = (tcp.snd_nxt.wrapping_sub(cp.object_start_seq.0) as i32).max(0);
            cp.to_app_block(sent as u64)
        });
        let record = ConnRecord {
            owner: self.owner,
            worker: self.worker,
            epoch: self.epoch,
            checkpoint_ms: unix_ms(),
            local: tcp.tuple.local.into(),
            remote: tcp.tuple.remote.into(),
            transport: Transport::Tcp,
            app_protocol: APP_PROTOCOL_HTTP,
            tcp: Some(TcpBlock {
                iss: tcp.iss,
                irs: tcp.irs,
                snd_una: tcp.snd_una,
                snd_nxt: tcp.snd_nxt,
                rcv_nxt: covered,
                snd_wnd: tcp.snd_wnd,
                rcv_wnd: tcp.rcv_wnd,
                mss: tcp.mss,
                snd_wscale: tcp.snd_wscale,
                rcv_wscale: tcp.rcv_wscale,
                sack_permitted: tcp.sack_permitted,
                timestamps: tcp.timestamps,
                ts_recent: tcp.ts_recent,
                ts_last_sent: tcp.ts_last_sent,
                tcp_state: tcp.state.as_u8(),
                // Final: nothing is acknowledged after it. Otherwise only
                // if acknowledgements wait for commits — and only up to
                // `covered`, which an upload may hold below RCV.NXT.
                acks_covered: (last && covered == tcp.rcv_nxt) || tcp.acks_covered,
            }),
            ip: IpBlock {
                local_mac: self.local_mac,
                peer_mac: [0; 6],
                ttl: 64,
            },
            app: app_block,
        };
        let slot = state.slot;
        match self.writer.write(slot, &[record]) {
            Ok(()) => {
                self.region.add_checkpoints(1);
                // The client's bytes up to here are in the segment: with
                // ack_after_commit they may be acknowledged now. Before a
                // response starts, its request is not covered yet (the
                // record names no URL), so only a response block commits.
                if app.is_some() || tcp.rcv_nxt == tcp.irs.wrapping_add(1) {
                    ctx.commit_ack(conn, baton_dataplane::tcp::SeqNum(covered));
                }
            }
            Err(err) => warn!(worker = self.worker, %err, "checkpoint write failed"),
        }
    }

    /// Bytes were acknowledged on `conn`: checkpoint when its cadence says so.
    pub fn on_progress(
        &mut self,
        ctx: &mut Ctx<'_>,
        conn: ConnId,
        app: Option<&ResponseCheckpoint>,
    ) {
        let Some(state) = self.conns.get(&conn) else {
            return;
        };
        let Some(una) = ctx.export(conn).map(|e| e.snd_una) else {
            return;
        };
        let acked = una.wrapping_sub(state.last_una) as u64;
        let due = acked >= self.cadence.bytes_at(state.rate)
            || (acked > 0
                && ctx.now().saturating_duration_since(state.last_at) >= self.cadence.interval);
        if due {
            self.commit(ctx, conn, app);
        }
    }

    /// `conn` moved to another box, which reads its final checkpoint from
    /// our region: stop writing it, leave the slot as it is (the control
    /// core clears it once the adopter has the connection).
    pub fn forget(&mut self, conn: ConnId) {
        if self.conns.remove(&conn).is_some() {
            self.region.add_connections(-1);
        }
    }

    /// `conn` is gone: its slot is cleared and reused.
    pub fn release(&mut self, conn: ConnId) {
        if let Some(state) = self.conns.remove(&conn) {
            let _ = self.writer.clear(state.slot);
            let _ = self.slots.free(state.slot);
            self.region.add_connections(-1);
        }
    }
}
