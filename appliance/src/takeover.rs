//! Transparent takeover (seed Fig. 6; ARCHITECTURE.md "Takeover"): what the
//! control core does when a peer is declared dead, and the orphan table the
//! workers consult for segments of connections they do not know.
//!
//! 1. Read the dead box's region: every validated record is an orphan (a
//!    corrupt slot costs that one connection, never the takeover).
//! 2. Assign: orphan `i` in slot order goes to survivor `i mod n`, survivors
//!    sorted by id. Every survivor computes the same split without talking;
//!    a bundle is one slot, so it stays together.
//! 3. Address: the lowest surviving id inherits the dead box's service IPs
//!    (gratuitous ARP, repeated) and forwards the frames of orphans assigned
//!    to other survivors to their MAC (from the box table).
//! 4. Restore: each survivor rebuilds its orphans as unready TCBs on the
//!    worker that receives their packets; the TCB probes, syncs and reports
//!    ready, and HTTP resumes at the acknowledged byte.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;

use baton_dataplane::tcp::{FourTuple, State, TcbExport};
use baton_dataplane::wire::ethernet::MacAddr;
use baton_shmem::record::{ArchivedConnRecord, Transport as RecordTransport};
use baton_shmem::Segment;
use tracing::warn;

use crate::http::ResponseCheckpoint;

/// The 4-tuple as the orphan table keys it: (local, remote).
pub type TupleKey = (SocketAddr, SocketAddr);

/// What a survivor needs to resume one orphan.
#[derive(Debug, Clone)]
pub struct Orphan {
    /// The TCP block, as the dataplane restores it.
    pub export: TcbExport,
    /// The HTTP response in flight, if any.
    pub response: Option<ResponseCheckpoint>,
}

/// Where an orphan's packets go.
#[derive(Debug, Clone)]
pub enum OrphanRoute {
    /// Ours: restore it here.
    Mine(Box<Orphan>),
    /// Another survivor's: forward its frames to this MAC.
    Elsewhere(MacAddr),
}

/// Orphans of dead boxes, written by the control core, read by workers on
/// segments for unknown connections only (never on the steady-state path).
#[derive(Debug, Default)]
pub struct OrphanTable {
    routes: RwLock<HashMap<TupleKey, OrphanRoute>>,
}

impl OrphanTable {
    /// Where the segments of `tuple` go, if it is an orphan.
    pub fn route(&self, tuple: &FourTuple) -> Option<OrphanRoute> {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        routes.get(&(tuple.local, tuple.remote)).cloned()
    }

    /// Adds routes (after a takeover decision).
    pub fn extend(&self, new: impl IntoIterator<Item = (TupleKey, OrphanRoute)>) {
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        routes.extend(new);
    }

    /// The orphan has been restored (or has ended): forget it, so a late
    /// segment of a closed connection is never restored a second time.
    pub fn remove(&self, tuple: &FourTuple) {
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        routes.remove(&(tuple.local, tuple.remote));
    }
}

/// The split of one dead box's connections.
#[derive(Debug, Default)]
pub struct Plan {
    /// Orphans this box restores.
    pub mine: Vec<Orphan>,
    /// Orphans other survivors restore, with the survivor's id.
    pub elsewhere: Vec<(TupleKey, u16)>,
    /// Slots that failed validation: those connections are lost.
    pub corrupt: usize,
    /// The dead box's service IPs.
    pub service_ips: Vec<IpAddr>,
    /// This box inherits the service IPs.
    pub inherit: bool,
}

/// Reads the region of `dead` and splits its connections over `survivors`
/// (ids, this box included) by the deterministic rule of the module doc.
pub fn plan(segment: &Segment, dead: u16, me: u16, survivors: &[u16]) -> Plan {
    let mut survivors = survivors.to_vec();
    survivors.sort_unstable();
    survivors.dedup();
    let mut plan = Plan {
        inherit: survivors.first() == Some(&me),
        ..Plan::default()
    };
    if let Ok(info) = segment.box_info(dead) {
        plan.service_ips = info.service_ips;
    }
    let Ok(region) = segment.region(dead) else {
        return plan;
    };
    if survivors.is_empty() {
        return plan;
    }
    let mut index = 0usize;
    for slot in region.records() {
        let slot = match slot {
            Ok(s) => s,
            Err(err) => {
                warn!(dead, %err, "corrupt checkpoint slot: that connection is lost");
                plan.corrupt += 1;
                continue;
            }
        };
        let owner = survivors[index % survivors.len()];
        index += 1;
        for record in slot.bundle().records.iter() {
            let Some(orphan) = orphan_of(record) else {
                continue;
            };
            let key = (orphan.export.tuple.local, orphan.export.tuple.remote);
            if owner == me {
                plan.mine.push(orphan);
            } else {
                plan.elsewhere.push((key, owner));
            }
        }
    }
    plan
}

/// The orphans in `slots` of box `from`'s region: connections that box
/// handed over on purpose (migrate). Unreadable slots are skipped.
pub fn orphans_in_slots(segment: &Segment, from: u16, slots: &[u32]) -> Vec<Orphan> {
    let Ok(region) = segment.region(from) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for &slot in slots {
        match region.read(baton_shmem::SlotId(slot)) {
            Ok(Some(valid)) => out.extend(valid.bundle().records.iter().filter_map(orphan_of)),
            Ok(None) => {}
            Err(err) => {
                warn!(from, slot, %err, "handed-over slot unreadable: that connection is lost")
            }
        }
    }
    out
}

/// A record as the dataplane and HTTP restore it; `None` for records that
/// cannot be resumed (UDP members, unknown TCP states).
fn orphan_of(record: &ArchivedConnRecord<'_>) -> Option<Orphan> {
    let r = record.view();
    if r.transport != RecordTransport::Tcp {
        return None;
    }
    let tcp = r.tcp?;
    let state = State::from_u8(tcp.tcp_state)?;
    let export = TcbExport {
        tuple: FourTuple {
            local: r.local.socket_addr(),
            remote: r.remote.socket_addr(),
        },
        state,
        iss: tcp.iss,
        irs: tcp.irs,
        snd_una: tcp.snd_una,
        snd_nxt: tcp.snd_nxt,
        rcv_nxt: tcp.rcv_nxt,
        snd_wnd: tcp.snd_wnd,
        rcv_wnd: tcp.rcv_wnd,
        mss: tcp.mss,
        snd_wscale: tcp.snd_wscale,
        rcv_wscale: tcp.rcv_wscale,
        sack_permitted: tcp.sack_permitted,
        timestamps: tcp.timestamps,
        ts_recent: tcp.ts_recent,
        ts_last_sent: tcp.ts_last_sent,
        acks_covered: tcp.acks_covered,
    };
    let response = r.app.as_ref().map(ResponseCheckpoint::from_app_block);
    Some(Orphan { export, response })
}

/// Routes for connections to our own addresses that other boxes hold: a
/// box that rejoins after a takeover answers for its addresses again, so
/// the frames of the connections a survivor restored reach it first; it
/// forwards them to their holder instead of resetting them.
pub fn routes_to_holders(
    segment: &Segment,
    me: u16,
    my_ips: &[IpAddr],
) -> Vec<(TupleKey, OrphanRoute)> {
    let mut routes = Vec::new();
    for holder in 0..segment.layout().regions {
        if holder == me {
            continue;
        }
        let (Ok(info), Ok(region)) = (segment.box_info(holder), segment.region(holder)) else {
            continue;
        };
        if info.state == baton_shmem::BoxState::Unused {
            continue;
        }
        let mac = MacAddr(info.mac);
        for slot in region.records().flatten() {
            for record in slot.bundle().records.iter() {
                let r = record.view();
                let (local, remote) = (r.local.socket_addr(), r.remote.socket_addr());
                if my_ips.contains(&local.ip()) {
                    routes.push(((local, remote), OrphanRoute::Elsewhere(mac)));
                }
            }
        }
    }
    routes
}
