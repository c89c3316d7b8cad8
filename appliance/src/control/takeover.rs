//! Transparent takeover (seed Fig. 6; ARCHITECTURE.md "Takeover"): what the
//! control core does when a peer is declared dead — the split of its
//! connections, their paced restore, and the report of how it went. The
//! routes it decides go into `crate::orphans`, which the workers consult.
//! It knows how to read a region, not how a record's bytes are laid out
//! (`crate::record` converts) nor what an HTTP response needs to resume.
//!
//! 1. Read the dead box's region: every validated record is an orphan (a
//!    corrupt slot costs that one connection, never the takeover).
//! 2. Assign: slot `s` to its owner in the committed change's split
//!    (`baton_membership::split_of`: `s mod n` or by committed loads), the
//!    same on every survivor whatever other slots its replica lacks; a
//!    bundle is one slot, so it stays together.
//! 3. Address: the lowest surviving id inherits the dead box's service IPs
//!    (gratuitous ARP, repeated) and forwards the frames of orphans assigned
//!    to other survivors to their MAC (from the box table).
//! 4. Restore: each survivor rebuilds its orphans as unready TCBs on the
//!    worker that receives their packets; the TCB probes, syncs and reports
//!    ready, and HTTP resumes at the acknowledged byte.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use baton_dataplane::tcp::FourTuple;
use baton_dataplane::DataplaneHandle;
use baton_shmem::{
    ClaimError, ReadError, Region, Segment, SlotError, SlotId, ValidSlot, ViewNumber,
};
use tracing::{info, warn};

use super::bundle::{bundle_orphans, survivor_for};
use crate::orphans::Orphan;

/// The split of one dead box's connections.
#[derive(Debug, Default)]
pub struct Plan {
    /// Orphans this box restores, each shared from here on by its route
    /// (a lazy restore) and the restore thread: the claims and the routes
    /// move pointers, not the orphans (some hundred bytes each, 300,000
    /// of them in the largest takeover).
    pub mine: Vec<Arc<Orphan>>,
    /// The slot of each of `mine` (a bundle's orphans share one), to claim
    /// before restoring: the dead box's, or an earlier dead box's it had
    /// claimed (`super::inherited`).
    pub mine_slots: Vec<SlotRef>,
    /// Orphans other survivors restore, with the survivor's id.
    pub elsewhere: Vec<(FourTuple, u16)>,
    /// Slots that failed validation: those connections are lost.
    pub corrupt: usize,
    /// Records refused for a restore (`crate::record::check_restorable`:
    /// a control character bound for an origin request, a local address
    /// that was not the dead box's): those connections are lost.
    pub refused: usize,
    /// Orphans from earlier dead boxes' slots the dead box had claimed
    /// and not restored (`super::inherited`).
    pub inherited: usize,
    /// Records whose box could not record the response in flight
    /// (`app_lost`): restored, then reset at once by the session.
    pub unrecorded: usize,
    /// The dead box's service IPs.
    pub service_ips: Vec<IpAddr>,
    /// This box inherits the service IPs.
    pub inherit: bool,
}

/// A slot of one region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotRef {
    /// The region's box id.
    pub region: u16,
    /// The slot.
    pub slot: SlotId,
}

/// Reads the region of `dead` and splits its connections over `survivors`
/// (ids, this box included) as a committed change with these survivors
/// would; the lowest id inherits the addresses. For tests.
#[cfg(test)]
pub fn plan(segment: &Segment, dead: u16, me: u16, survivors: &[u16]) -> Plan {
    let mut survivors = survivors.to_vec();
    survivors.sort_unstable();
    survivors.dedup();
    let owner = |i: usize| (!survivors.is_empty()).then(|| survivors[i % survivors.len()]);
    plan_with(segment, dead, me, &owner, survivors.first().copied())
}

/// How long the plan waits, in all, for slots whose writer was mid-write
/// when they were read (`ReadError::Busy`). A box judged dead may still
/// run (starved, or cut off): a worker preempted in the middle of a
/// slot's write finishes it when the scheduler runs it again, a few ticks
/// later, and that connection is not lost; the slot's own 10,000 re-reads
/// (yielding) were over in 20-70 ms here (the unit test below). A writer that died
/// mid-write never finishes, and the takeover waits this long for
/// nothing, plus the read under way at the deadline (`Region::read_by`):
/// short, and only a torn slot costs it. (A writer starved for
/// longer, like a TCG guest's for 1.5 s in CI, is beyond it: there the
/// detection time must outlast the starvation, see `lab/src/vm.rs`.)
const BUSY_PATIENCE: Duration = Duration::from_millis(100);

/// Reads the region of `dead` and splits its connections: slot `s` to
/// `owner(s)` (`orphan_owner`, by slot number, so that survivors whose
/// replicas differ by a slot still agree on every other one), an FTP
/// slot to `heir`, who takes the addresses (`bundle::survivor_for`).
pub fn plan_with(
    segment: &Segment,
    dead: u16,
    me: u16,
    owner: &dyn Fn(usize) -> Option<u16>,
    heir: Option<u16>,
) -> Plan {
    let mut plan = Plan {
        inherit: heir == Some(me),
        ..Plan::default()
    };
    if let Ok(info) = segment.box_info(dead) {
        plan.service_ips = info.service_ips;
    }
    let Ok(region) = segment.region(dead) else {
        return plan;
    };
    let allowed = cluster_ips(segment);
    let place = |plan: &mut Plan, slot: &ValidSlot| -> bool {
        let Some(owner) =
            owner(slot.slot().0 as usize).map(|o| survivor_for(slot.bundle(), o, heir))
        else {
            return false;
        };
        add_slot(plan, dead, slot, owner, me, &allowed);
        true
    };
    let mut busy = Vec::new();
    for slot in region.records() {
        match slot {
            Ok(slot) => {
                if !place(&mut plan, &slot) {
                    return plan;
                }
            }
            Err(err) if err.error == ReadError::Busy => busy.push(err.slot),
            Err(err) => {
                warn!(dead, %err, "corrupt checkpoint slot: that connection is lost");
                plan.corrupt += 1;
            }
        }
    }
    // Read again once the rest is placed, so that one slot's wait does
    // not hold up the others' reads.
    let since = Instant::now();
    let deadline = since + BUSY_PATIENCE;
    for slot in busy {
        match region.read_by(slot, deadline) {
            Ok(Some(valid)) => {
                info!(
                    dead,
                    slot = slot.0,
                    waited_ms = since.elapsed().as_millis() as u64,
                    "checkpoint slot read once its writer finished writing it"
                );
                if !place(&mut plan, &valid) {
                    return plan;
                }
            }
            Ok(None) => {}
            Err(error) => {
                let err = SlotError {
                    region: dead,
                    slot,
                    error,
                };
                warn!(dead, %err, "corrupt checkpoint slot: that connection is lost");
                plan.corrupt += 1;
            }
        }
    }
    if plan.unrecorded > 0 {
        warn!(
            dead,
            unrecorded = plan.unrecorded,
            "responses the dead box could not checkpoint (URL or validators over the limits, overflow area full): those connections are reset"
        );
    }
    plan
}

/// Adds the orphans of `slot`, a slot of region `region`, to `plan`: this
/// box's (`me`) when `owner` is, else another survivor's. A bundle is
/// restored all or none (`super::bundle`). The orphans it adds.
pub(super) fn add_slot(
    plan: &mut Plan,
    region: u16,
    slot: &ValidSlot,
    owner: u16,
    me: u16,
    allowed: &[IpAddr],
) -> usize {
    let orphans = match bundle_orphans(slot.bundle(), allowed) {
        Ok(o) => o,
        Err((why, records)) => {
            warn!(region, slot = slot.slot().0, records, %why, "checkpoint bundle refused: its connections are lost");
            plan.refused += records;
            return 0;
        }
    };
    let added = orphans.len();
    for orphan in orphans {
        if orphan.response.as_ref().is_some_and(|r| r.is_unrecorded()) {
            plan.unrecorded += 1;
        }
        if owner == me {
            plan.mine.push(Arc::new(orphan));
            plan.mine_slots.push(SlotRef {
                region,
                slot: slot.slot(),
            });
        } else {
            plan.elsewhere.push((orphan.export.tuple, owner));
        }
    }
    added
}

/// The addresses a restored connection may have as its local address:
/// those any box of the segment lists in its box table entry (a dead box's
/// own and inherited ones included). Not only the dead box's: a survivor
/// that restored part of an earlier dead box's connections without
/// inheriting its address (the heir forwards their frames) holds
/// connections to an address it does not list, and they must survive its
/// death too. A record naming any other address would make a survivor
/// answer for an address no box of the cluster announces.
pub(super) fn cluster_ips(segment: &Segment) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = (0..segment.layout().regions)
        .filter_map(|id| segment.box_info(id).ok())
        .flat_map(|info| info.service_ips)
        .collect();
    ips.sort_unstable();
    ips.dedup();
    ips
}

/// Claims, in committed view `view`, the slot of each orphan `plan`
/// gives this box (`me`) — in the dead box's region, or an earlier dead
/// box's it had claimed — before anything is restored: an orphan whose
/// slot another box claimed first leaves `plan.mine` for `plan.elsewhere`
/// (its frames go to the claimer), and one whose claim cannot be made (a
/// corrupt claim word, an unreadable region) is restored by nobody here.
/// So each connection is restored once per view, whatever plans the
/// survivors computed. Returns how many orphans left `mine`.
pub(crate) fn claim_mine(segment: &Segment, me: u16, view: ViewNumber, plan: &mut Plan) -> usize {
    let mut regions: HashMap<u16, Option<Region>> = HashMap::new();
    let mut claims: HashMap<SlotRef, Result<(), Option<u16>>> = HashMap::new();
    let mut kept = Vec::with_capacity(plan.mine.len());
    let mut kept_slots = Vec::with_capacity(plan.mine.len());
    let mut lost = 0;
    let mine = std::mem::take(&mut plan.mine);
    let slots = std::mem::take(&mut plan.mine_slots);
    for (orphan, at) in mine.into_iter().zip(slots) {
        let claim = *claims.entry(at).or_insert_with(|| {
            let region = regions
                .entry(at.region)
                .or_insert_with(|| segment.region(at.region).ok());
            let Some(region) = region.as_ref() else {
                warn!(region = at.region, "orphan's region unreadable: not restored here");
                return Err(None);
            };
            match region.claim(at.slot, me, view) {
                Ok(()) => Ok(()),
                Err(ClaimError::Taken(c)) => {
                    warn!(
                        region = at.region,
                        slot = at.slot.0,
                        by = c.by,
                        view = c.view.0,
                        "orphan's slot claimed by another box: it restores that connection, not this one"
                    );
                    Err(Some(c.by))
                }
                Err(err) => {
                    warn!(region = at.region, slot = at.slot.0, %err, "orphan's slot cannot be claimed: not restored here");
                    Err(None)
                }
            }
        });
        match claim {
            Ok(()) => {
                kept.push(orphan);
                kept_slots.push(at);
            }
            Err(by) => {
                lost += 1;
                if let Some(by) = by {
                    plan.elsewhere.push((orphan.export.tuple, by));
                }
            }
        }
    }
    plan.mine = kept;
    plan.mine_slots = kept_slots;
    lost
}

/// The orphans in `slots` of box `from`'s region: connections that box
/// handed over on purpose (migrate). Unreadable slots are skipped.
pub fn orphans_in_slots(segment: &Segment, from: u16, slots: &[u32]) -> Vec<Orphan> {
    let Ok(region) = segment.region(from) else {
        return Vec::new();
    };
    let ips = cluster_ips(segment);
    let mut out = Vec::new();
    for &slot in slots {
        match region.read(baton_shmem::SlotId(slot)) {
            Ok(Some(valid)) => match bundle_orphans(valid.bundle(), &ips) {
                Ok(orphans) => out.extend(orphans),
                Err((why, records)) => {
                    warn!(from, slot, records, %why, "handed-over bundle refused: its connections are lost")
                }
            },
            Ok(None) => {}
            Err(err) => {
                warn!(from, slot, %err, "handed-over slot unreadable: that connection is lost")
            }
        }
    }
    out
}

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
/// took from restore to ready (p50/p99/max), how many could not or were
/// closed already, and what the workers dropped meanwhile (full receive
/// rings, no neighbour, TX). A line a second after the takeover began (the
/// goal: all resumed within a second of the kill), and one when none is
/// pending or after 15 s. The evidence for "where did the time go".
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
                let done = (r.pending == 0 && r.parked == 0) || elapsed >= Duration::from_secs(15);
                let second = !reported_second && elapsed >= Duration::from_secs(1);
                if !(done || second) {
                    continue;
                }
                reported_second |= second;
                let ms = |q: f64| r.ready_quantile(q).map_or(-1, |d| d.as_millis() as i64);
                let (c, b) = (&now.counters, &before.counters);
                info!(
                    dead,
                    after_ms = elapsed.as_millis() as u64,
                    restored = r.restored,
                    ready = r.ready,
                    not_ready = r.not_ready,
                    closed = r.closed,
                    pending = r.pending,
                    parked = r.parked,
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

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::FileExt;
    use std::path::PathBuf;

    use baton_dataplane::tcp::{State, TcbExport};
    use baton_shmem::record::{ConnRecord, Transport, APP_PROTOCOL_HTTP};
    use baton_shmem::{Layout, SlotId};

    use super::*;
    use crate::record::tcp_block;
    use baton_dataplane::tcp::SeqNum;

    /// A segment file removed when the test ends, pass or fail.
    pub(crate) struct TempSegment(PathBuf);

    impl TempSegment {
        pub(crate) fn new(tag: &str) -> (TempSegment, Segment) {
            let path = std::env::temp_dir()
                .join(format!("baton-takeover-{tag}-{}.seg", std::process::id()));
            let _ = std::fs::remove_file(&path);
            let layout = Layout {
                regions: 4,
                slots_per_region: 16,
                slot_size: baton_shmem::SLOT_SIZE as u32,
            };
            let segment = Segment::open_or_create(&path, layout).expect("segment");
            (TempSegment(path), segment)
        }
    }

    impl Drop for TempSegment {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    pub(crate) const DEAD_IP: [u8; 4] = [198, 18, 0, 11];

    /// Connection `n` of box 1 as it checkpointed it: client port 40000 + n.
    pub(crate) fn export(n: u16) -> TcbExport {
        TcbExport {
            tuple: FourTuple {
                local: (DEAD_IP, 80).into(),
                remote: ([198, 18, 0, 100], 40_000 + n).into(),
            },
            state: State::Established,
            iss: 1_000 * u32::from(n),
            irs: u32::MAX - 5,
            snd_una: 1_000 * u32::from(n) + 1,
            snd_nxt: 1_000 * u32::from(n) + 1,
            rcv_nxt: 3,
            snd_wnd: 65_535,
            rcv_wnd: 65_535,
            mss: 1_460,
            snd_wscale: 7,
            rcv_wscale: 7,
            sack_permitted: true,
            timestamps: true,
            ts_recent: 77,
            ts_last_sent: 88,
            acks_covered: false,
        }
    }

    /// Box 1 holding `n` connections, one per slot, then dead.
    pub(crate) fn dead_box_with(segment: &Segment, n: u16) {
        let region = segment.region(1).expect("region 1");
        region
            .set_identity([2, 0, 0, 0, 0, 1], &[DEAD_IP.into()])
            .expect("identity");
        for i in 0..n {
            checkpoint_connection(segment, 1, u32::from(i), i);
        }
    }

    /// Box `owner` checkpoints connection `n` (see [`export`]) in `slot`
    /// of its region.
    pub(crate) fn checkpoint_connection(segment: &Segment, owner: u16, slot: u32, n: u16) {
        let region = segment.region(owner).expect("region");
        let e = export(n);
        let record = ConnRecord {
            owner,
            worker: 0,
            epoch: 1,
            checkpoint_ms: 0,
            local: e.tuple.local.into(),
            remote: e.tuple.remote.into(),
            transport: Transport::Tcp,
            app_protocol: APP_PROTOCOL_HTTP,
            tcp: Some(tcp_block(&e, SeqNum(e.rcv_nxt), e.acks_covered)),
            app: None,
            app_lost: false,
            tls: None,
            app_state: None,
        };
        region
            .writer()
            .write(SlotId(slot), &[record])
            .expect("record fits");
    }

    #[test]
    fn a_slot_mid_write_is_read_once_its_writer_finishes_and_a_torn_one_costs_only_itself() {
        let (file, segment) = TempSegment::new("busy");
        dead_box_with(&segment, 4);
        let layout = segment.layout();
        let seq_at = |slot: u32| layout.unit_offset(1, slot) as u64;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file.0)
            .expect("segment file");
        let mut word = [0u8; 8];
        f.read_exact_at(&mut word, seq_at(1)).expect("read seq");
        let settled = u64::from_le_bytes(word);
        // Slot 1's writer is descheduled mid-write, slot 3's died mid-write.
        f.write_at(&(settled + 1).to_le_bytes(), seq_at(1))
            .expect("tear");
        f.write_at(&(settled + 1).to_le_bytes(), seq_at(3))
            .expect("tear");
        // How long one read of a torn slot takes to give up (its own
        // yielding re-reads, 20-70 ms here): the plan reads slots 1 and 3
        // once, then slot 1 again before any patience could matter.
        let region = segment.region(1).expect("region 1");
        let started = Instant::now();
        assert_eq!(
            region.read(SlotId(3)).err(),
            Some(ReadError::Busy),
            "a torn slot reads busy"
        );
        let one_read = started.elapsed();
        let plan = std::thread::scope(|sc| {
            sc.spawn(|| {
                // Settled after those three reads (with no patience this
                // test fails), well before BUSY_PATIENCE has passed since
                // the first two.
                std::thread::sleep(one_read * 3 + Duration::from_millis(5));
                f.write_at(&settled.to_le_bytes(), seq_at(1))
                    .expect("settle");
            });
            plan(&segment, 1, 2, &[2])
        });
        let mut ports: Vec<u16> = plan
            .mine
            .iter()
            .map(|o| o.export.tuple.remote.port())
            .collect();
        ports.sort_unstable();
        assert_eq!(ports, vec![40_000, 40_001, 40_002]);
        assert_eq!(
            plan.corrupt, 1,
            "slot 3 never settles: that one connection is lost"
        );
    }

    #[test]
    fn orphans_go_round_robin_in_slot_order_to_survivors_sorted_by_id() {
        let (_file, segment) = TempSegment::new("split");
        dead_box_with(&segment, 5);
        // Survivors listed in any order: box 2 is first by id.
        let mine = plan(&segment, 1, 2, &[3, 2]);
        let ports = |p: &Plan| -> Vec<u16> {
            p.mine
                .iter()
                .map(|o| o.export.tuple.remote.port())
                .collect()
        };
        assert_eq!(ports(&mine), vec![40_000, 40_002, 40_004]);
        assert_eq!(
            mine.elsewhere
                .iter()
                .map(|(t, owner)| (t.remote.port(), *owner))
                .collect::<Vec<_>>(),
            vec![(40_001, 3), (40_003, 3)]
        );
        // Box 3 computes the complement without talking to box 2.
        let theirs = plan(&segment, 1, 3, &[2, 3]);
        assert_eq!(ports(&theirs), vec![40_001, 40_003]);
        assert_eq!(theirs.elsewhere.len(), 3);
    }

    #[test]
    fn records_that_would_misuse_a_restore_are_refused_and_counted() {
        let (_file, segment) = TempSegment::new("refused");
        dead_box_with(&segment, 3);
        let mut writer = segment.region(1).expect("region 1").writer();
        // Slot 0: an address another box of the cluster announces (box 1
        // restored it from an earlier dead box without inheriting it): kept.
        // Slot 1: an address no box has (a survivor would answer for
        // someone else's); slot 2: its app state was lost.
        segment
            .region(3)
            .unwrap()
            .set_identity([2, 0, 0, 0, 0, 3], &["198.18.0.13".parse().unwrap()])
            .unwrap();
        let record = |i: u16| segment.region(1).unwrap().read(SlotId(u32::from(i)));
        let view = record(0).unwrap().unwrap();
        let mut elsewhere = view.bundle().records[0].view();
        elsewhere.local = "198.18.0.13:80"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into();
        writer.write(SlotId(0), &[elsewhere]).unwrap();
        let view = record(1).unwrap().unwrap();
        let mut foreign = view.bundle().records[0].view();
        foreign.local = "198.18.0.99:80"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into();
        writer.write(SlotId(1), &[foreign]).unwrap();
        let view = record(2).unwrap().unwrap();
        let lost = ConnRecord {
            app_lost: true,
            ..view.bundle().records[0].view()
        };
        writer.write(SlotId(2), &[lost]).unwrap();
        let p = plan(&segment, 1, 2, &[2]);
        assert_eq!((p.refused, p.unrecorded), (1, 1));
        assert_eq!(p.mine.len(), 2);
        let unrecorded = p
            .mine
            .iter()
            .find(|o| o.export.tuple.remote.port() == 40_002);
        assert!(unrecorded
            .and_then(|o| o.response.as_ref())
            .is_some_and(|r| r.is_unrecorded()));
        assert_eq!(orphans_in_slots(&segment, 1, &[0, 1, 2]).len(), 2);
    }

    #[test]
    fn the_lowest_surviving_id_inherits_the_dead_boxs_addresses() {
        let (_file, segment) = TempSegment::new("inherit");
        dead_box_with(&segment, 1);
        let low = plan(&segment, 1, 2, &[2, 3]);
        let high = plan(&segment, 1, 3, &[2, 3]);
        assert!(low.inherit && !high.inherit);
        assert_eq!(low.service_ips, vec![IpAddr::from(DEAD_IP)]);
    }

    #[test]
    fn an_orphan_restores_the_tcb_its_box_checkpointed() {
        let (_file, segment) = TempSegment::new("roundtrip");
        dead_box_with(&segment, 3);
        let orphans = orphans_in_slots(&segment, 1, &[2, 0]);
        let exports: Vec<TcbExport> = orphans.iter().map(|o| o.export).collect();
        assert_eq!(exports, vec![export(2), export(0)]);
        assert!(orphans.iter().all(|o| o.response.is_none()));
    }

    /// Boxes 1, 2 and 3 joined through `segment`'s view cell; then boxes 2
    /// and 3 both judge box 1 silent and race to remove it. Returns the
    /// change each of them reports.
    fn two_survivors_commit_box_1s_removal(
        a: &Segment,
        b: &Segment,
    ) -> (baton_membership::ViewChange, baton_membership::ViewChange) {
        use baton_membership::{
            propose, refresh, sync, Event, Member, Membership, SegmentStore, Verdict,
        };
        use baton_shmem::ViewCell;
        let store_a = SegmentStore::new(ViewCell::new(a));
        let store_b = SegmentStore::new(ViewCell::new(b));
        let mut boxes: Vec<Membership> = (1..=3)
            .map(|id| Membership::new(Member { id, epoch: 1 }))
            .collect();
        for m in &mut boxes {
            m.handle_dataplane_up();
            m.handle_beat();
            sync(m, &store_a).unwrap();
        }
        let dead = Member { id: 1, epoch: 1 };
        let verdict = Verdict {
            peer: dead,
            silent_for: Duration::from_millis(120),
        };
        let (two, three) = boxes.split_at_mut(2);
        let (two, three) = (&mut two[1], &mut three[0]);
        refresh(two, &store_a).unwrap();
        refresh(three, &store_b).unwrap();
        two.handle_verdict(verdict);
        three.handle_verdict(verdict);
        // Both propose over the same view: one commits, the other learns it.
        propose(two, &store_a);
        propose(three, &store_b);
        let removal = |m: &mut Membership| {
            std::iter::from_fn(|| m.poll_event())
                .filter_map(|e| match e {
                    Event::Committed(c) if c.left == [dead] => Some(c),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let (mut c2, mut c3) = (removal(two), removal(three));
        assert_eq!(c2.len(), 1, "one change per death on box 2: {c2:?}");
        assert_eq!(c2, c3, "both survivors report the same change");
        (c2.remove(0), c3.remove(0))
    }

    #[test]
    fn two_survivors_racing_to_remove_a_box_commit_one_change_and_split_its_connections() {
        let (file, a) = TempSegment::new("race-split");
        let b = Segment::open_existing(&file.0).expect("second mapping");
        dead_box_with(&a, 6);
        let (change, _) = two_survivors_commit_box_1s_removal(&a, &b);
        let survivor = |seg: &Segment, me: u16| {
            let split = baton_membership::split_of(&change);
            let heir = baton_membership::address_heir(&change, 1);
            let mut p = plan_with(seg, 1, me, &|slot| split.owner(slot), heir);
            assert_eq!(claim_mine(seg, me, change.number, &mut p), 0);
            p
        };
        let (p2, p3) = (survivor(&a, 2), survivor(&b, 3));
        let ports = |p: &Plan| -> Vec<u16> {
            p.mine
                .iter()
                .map(|o| o.export.tuple.remote.port())
                .collect()
        };
        assert_eq!(ports(&p2), vec![40_000, 40_002, 40_004]);
        assert_eq!(ports(&p3), vec![40_001, 40_003, 40_005]);
        assert!(
            p2.inherit && !p3.inherit,
            "box 2, the lowest survivor, takes the address"
        );
    }

    #[test]
    fn two_survivors_racing_to_restore_one_connection_restore_it_once() {
        // The plans diverge on purpose (each believes it is the only
        // survivor, as with views read at different times): the claims,
        // made on two mappings of one segment at the same instant, still
        // give each connection to exactly one of them, every round.
        let (file, a) = TempSegment::new("race-claim");
        let b = Segment::open_existing(&file.0).expect("second mapping");
        dead_box_with(&a, 1);
        let (change, _) = two_survivors_commit_box_1s_removal(&a, &b);
        for round in 0..200u32 {
            let view = ViewNumber(change.number.0 + round);
            let barrier = std::sync::Barrier::new(2);
            let race = |seg: &Segment, me: u16| {
                let mut p = plan_with(seg, 1, me, &|_| Some(me), None);
                assert_eq!(p.mine.len(), 1);
                barrier.wait();
                claim_mine(seg, me, view, &mut p);
                p
            };
            let (p2, p3) = thread::scope(|s| {
                let two = s.spawn(|| race(&a, 2));
                let three = s.spawn(|| race(&b, 3));
                (two.join().unwrap(), three.join().unwrap())
            });
            assert_eq!(
                p2.mine.len() + p3.mine.len(),
                1,
                "round {round}: restored by exactly one survivor"
            );
            let (winner, loser, loser_plan) = if p2.mine.is_empty() {
                (3, 2, &p2)
            } else {
                (2, 3, &p3)
            };
            assert_eq!(
                loser_plan.elsewhere,
                vec![(export(0).tuple, winner)],
                "round {round}: box {loser} forwards the connection's frames to box {winner}"
            );
        }
    }
}
