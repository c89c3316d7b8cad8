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
use std::net::IpAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use baton_dataplane::tcp::FourTuple;
use baton_dataplane::wire::ethernet::MacAddr;
use baton_dataplane::DataplaneHandle;
use baton_shmem::Segment;
use tracing::{info, warn};

use crate::orphans::{Orphan, OrphanRoute};
use crate::record::{orphan_of, tuple_of};

/// The split of one dead box's connections.
#[derive(Debug, Default)]
pub struct Plan {
    /// Orphans this box restores.
    pub mine: Vec<Orphan>,
    /// Orphans other survivors restore, with the survivor's id.
    pub elsewhere: Vec<(FourTuple, u16)>,
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
            if owner == me {
                plan.mine.push(orphan);
            } else {
                plan.elsewhere.push((orphan.export.tuple, owner));
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

/// Routes for connections to our own addresses that other boxes hold: a
/// box that rejoins after a takeover answers for its addresses again, so
/// the frames of the connections a survivor restored reach it first; it
/// forwards them to their holder instead of resetting them.
pub fn routes_to_holders(
    segment: &Segment,
    me: u16,
    my_ips: &[IpAddr],
) -> Vec<(FourTuple, OrphanRoute)> {
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
                let tuple = tuple_of(&record.view());
                if my_ips.contains(&tuple.local.ip()) {
                    routes.push((tuple, OrphanRoute::Elsewhere(mac)));
                }
            }
        }
    }
    routes
}

/// Hands restored connections to the workers in small batches: each
/// restore sends a probe at once, and every answer comes back through
/// one box, the one that inherited the dead box's address (it forwards
/// the others' share). Its receive ring holds 512 frames; at 256
/// probes per 2 ms from each of two survivors (the earlier pace) the
/// answers alone filled it every 2 ms, and a few ms of CPU starvation
/// lost thousands of them (measured: 22,850 ring drops in the first
/// second of a 10,000-connection takeover, restore-to-ready p50
/// 500 ms as probes were retried). So all survivors together send
/// [`RESTORE_BATCH`] probes per [`RESTORE_TICK`]: 10,000 connections in
/// ~320 ms, whatever the number of survivors, and the inheritor's ring
/// keeps slack for answers.
pub(crate) fn restore_paced(dataplane: &DataplaneHandle, orphans: Vec<Orphan>, survivors: usize) {
    let batch = (RESTORE_BATCH / survivors.max(1)).max(1);
    for (i, orphan) in orphans.into_iter().enumerate() {
        if i > 0 && i % batch == 0 {
            thread::sleep(RESTORE_TICK);
        }
        if let Err(err) = dataplane.restore(orphan.export, Box::new(orphan.response)) {
            warn!(%err, "restore failed");
        }
    }
}

/// Restores handed to the workers per [`RESTORE_TICK`], by all survivors of
/// a takeover together (see [`restore_paced`]).
const RESTORE_BATCH: usize = 64;
/// The pace of restores.
const RESTORE_TICK: Duration = Duration::from_millis(2);

/// The workers' takeover tallies at one moment, summed.
pub(crate) struct TakeoverSnapshot {
    restores: baton_dataplane::worker::RestoreStats,
    ring_drops: u64,
    counters: baton_dataplane::stats::Counters,
}

impl TakeoverSnapshot {
    /// The tallies now.
    pub(crate) fn of(dataplane: &DataplaneHandle) -> Self {
        let mut snap = TakeoverSnapshot {
            restores: Default::default(),
            ring_drops: 0,
            counters: Default::default(),
        };
        for w in dataplane.stats() {
            snap.restores.add(&w.restores);
            snap.ring_drops += w.ring_drops;
            snap.counters.add(&w.counters);
        }
        snap
    }
}

/// Logs how a takeover went from this box's side: how many of the
/// connections restored here synchronised with their client, how long each
/// took from restore to ready (p50/p99/max), how many could not, and what
/// the workers dropped meanwhile (full receive rings, no neighbour, TX).
/// A line one second after the takeover began (the goal: every connection
/// resumed within a second of the kill), and one when none is pending any
/// more or after 15 s. The evidence for "where did the time go".
pub(crate) fn spawn_takeover_report(
    dataplane: Arc<DataplaneHandle>,
    dead: u16,
    started: Instant,
    before: TakeoverSnapshot,
) {
    let _ = thread::Builder::new()
        .name("takeover-report".into())
        .spawn(move || {
            let mut reported_second = false;
            loop {
                thread::sleep(Duration::from_millis(50));
                let now = TakeoverSnapshot::of(&dataplane);
                let r = now.restores.since(&before.restores);
                let elapsed = started.elapsed();
                let done = r.pending == 0 || elapsed >= Duration::from_secs(15);
                let second = !reported_second && elapsed >= Duration::from_secs(1);
                if !(done || second) {
                    continue;
                }
                reported_second |= second;
                let ms = |q: f64| r.ready_quantile(q).map_or(-1, |d| d.as_millis() as i64);
                let c = &now.counters;
                let b = &before.counters;
                info!(
                    dead,
                    after_ms = elapsed.as_millis() as u64,
                    restored = r.restored,
                    ready = r.ready,
                    not_ready = r.not_ready,
                    pending = r.pending,
                    ready_p50_ms = ms(0.5),
                    ready_p99_ms = ms(0.99),
                    ready_max_ms = ms(1.0),
                    ring_drops = now.ring_drops.saturating_sub(before.ring_drops),
                    tx_dropped = c.tx_dropped.saturating_sub(b.tx_dropped),
                    no_neighbour = c.drop_no_neighbour.saturating_sub(b.drop_no_neighbour),
                    arp_requests = c.arp_requests_sent.saturating_sub(b.arp_requests_sent),
                    forwarded = c.tcp_forwarded.saturating_sub(b.tcp_forwarded),
                    lazy = c.tcp_lazy_restored.saturating_sub(b.tcp_lazy_restored),
                    "takeover {}: restore to ready (10 ms buckets)",
                    if done { "done" } else { "after one second" }
                );
                if done {
                    break;
                }
            }
        });
}
