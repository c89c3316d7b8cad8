//! The control core's handle on its box: the segment, its own region, the
//! dataplane, the orphan table and the addresses it answers for. The
//! watcher (`super::watcher`) calls it with its verdicts; the planned moves
//! (`super::moves`) and the admin API act through it.
//!
//! It decides nothing on its own: committed view changes come from
//! `super::agreed`, splits from `super::takeover`, fences from the view
//! and the quorum lease (`super::quorum`).
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use baton_config::{Config, Member};
use baton_dataplane::wire::ethernet::MacAddr;
use baton_dataplane::DataplaneHandle;
use baton_shmem::{Region, Segment, ViewNumber};
use tracing::{info, warn};

use super::ownership;
use super::pace::{restore_takeover, IdleParking};
use super::takeover::{self, spawn_takeover_report, Plan, TakeoverSnapshot};
use super::view::ViewStatus;
use crate::orphans::{NewRoutes, Orphan, OrphanRoute, OrphanTable};
use crate::strays::{Live, Strays};

/// Addresses inherited from dead boxes, by the dead box's id.
type Inherited = Arc<Mutex<HashMap<u16, Vec<IpAddr>>>>;

/// What the control core acts with.
pub(crate) struct Control {
    /// The checkpoint segment: every box's region and box table entry.
    pub(crate) segment: Segment,
    /// This box's region.
    pub(crate) region: Region,
    /// This box's workers.
    pub(crate) dataplane: Arc<DataplaneHandle>,
    /// Connections held elsewhere or waiting to be restored here.
    pub(super) orphans: Arc<OrphanTable>,
    /// Where frames of connections other boxes hold go: told the view's
    /// members as they change.
    pub(crate) strays: Arc<Strays>,
    /// This box's member id.
    pub(crate) me: u16,
    /// The service IPs of this box's own configuration.
    own_ips: Vec<IpAddr>,
    /// Addresses inherited from dead boxes, by their id (shared with the
    /// threads that announce them, which stop once an address is handed
    /// back).
    inherited: Inherited,
    /// Every member's back-LAN address: a peer's admin API listens on its
    /// back-LAN address at the same port as ours (a cluster convention).
    pub(super) members: Vec<Member>,
    /// The admin API port every member listens on.
    pub(super) admin_port: u16,
    /// The cluster key: `migrate` derives the target's adopt token from it.
    pub(super) cluster_key: Vec<u8>,
    /// What this box shows of the agreed view.
    pub(crate) view: Arc<ViewStatus>,
    /// The epoch of the incarnation each inherited address came from
    /// (agreed view only): a newer epoch beating takes them back.
    pub(super) inherited_epochs: Mutex<HashMap<u16, u32>>,
    /// Addresses this box answers for that its box table entry has no room
    /// for (beyond `MAX_SERVICE_IPS`): a box taking over from it would not
    /// know them.
    unpublished_ips: AtomicUsize,
    /// What the balancer moved (`super::balance`).
    pub(crate) balance: super::balance::BalanceLog,
    /// FTP's passive ports and session idle limit (when FTP is on): a
    /// migrated session's later data connections are routed to its
    /// adopter on these, for that long (`moves.rs`).
    pub(super) ftp_passive: Option<(std::ops::RangeInclusive<u16>, std::time::Duration)>,
    /// When a takeover parks idle connections (`super::pace`).
    idle_parking: IdleParking,
}

impl Control {
    /// The control core of the box `config` describes, acting on its
    /// `region` of `segment` and its `dataplane`.
    pub(crate) fn new(
        config: &Config,
        segment: Segment,
        region: Region,
        dataplane: Arc<DataplaneHandle>,
        orphans: Arc<OrphanTable>,
        strays: Arc<Strays>,
    ) -> Control {
        Control {
            segment,
            region,
            dataplane,
            orphans,
            strays,
            me: config.node.id,
            own_ips: config.service.ips.clone(),
            inherited: Inherited::default(),
            members: config.cluster.members.clone(),
            admin_port: config.admin.listen.port(),
            cluster_key: config.cluster.key.clone(),
            view: Arc::default(),
            inherited_epochs: Mutex::default(),
            unpublished_ips: AtomicUsize::new(0),
            balance: Default::default(),
            ftp_passive: config.ftp.enabled.then(|| {
                (
                    config.ftp.passive_port_min..=config.ftp.passive_port_max,
                    std::time::Duration::from_millis(config.ftp.idle_timeout_ms),
                )
            }),
            idle_parking: IdleParking::from_config(&config.takeover),
        }
    }

    /// How many addresses this box answers for are missing from its box
    /// table entry (no room): shown as `baton_service_ips_unpublished`.
    pub(crate) fn unpublished_service_ips(&self) -> usize {
        self.unpublished_ips.load(Ordering::Relaxed)
    }

    /// The workers' running totals the published load is derived from.
    pub(super) fn load_totals(&self) -> super::load::LoadTotals {
        let stats = self.dataplane.stats();
        let mut t = super::load::LoadTotals {
            workers: stats.len() as u64,
            ..Default::default()
        };
        for w in &stats {
            t.tx_bytes += w.counters.tx_bytes;
            t.idle_us += w.counters.idle_wait_us;
        }
        t
    }

    /// The workers' non-zero counters, for debugging a box from its log.
    pub(super) fn log_stats(&self) {
        let mut total = baton_dataplane::stats::Counters::default();
        let mut connections = 0;
        for w in self.dataplane.stats() {
            total.add(&w.counters);
            connections += w.connections;
        }
        let nonzero: Vec<String> = total
            .named()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        tracing::debug!(connections, counters = %nonzero.join(" "), "dataplane");
    }

    /// Tells the strays (and the workers) the committed view's members:
    /// a frame of a connection a member holds goes to it, and any member
    /// may forward a client's frame here (an anycast address's flow moved
    /// by the switch), so its MAC is never taken for a client's. Done when
    /// the members (or their epochs) change.
    pub(super) fn note_members(&self, members: &[baton_shmem::view::Member]) {
        let known = self.strays.members();
        let same = known.len() == members.len()
            && members
                .iter()
                .all(|m| known.get(&m.id).is_some_and(|l| l.epoch == m.epoch));
        if same {
            return;
        }
        let live: std::collections::HashMap<u16, Live> = members
            .iter()
            .filter_map(|m| {
                let info = self.segment.box_info(m.id).ok()?;
                Some((
                    m.id,
                    Live {
                        epoch: m.epoch,
                        mac: MacAddr(info.mac),
                    },
                ))
            })
            .collect();
        self.note_forwarders(live.keys().copied());
        self.strays.set_members(live);
    }

    /// Tells the workers that boxes `ids` (this one skipped) forward
    /// clients' frames here.
    pub(super) fn note_forwarders(&self, ids: impl Iterator<Item = u16>) {
        let macs: Vec<MacAddr> = ids
            .filter(|id| *id != self.me)
            .filter_map(|id| self.segment.box_info(id).ok())
            .map(|info| MacAddr(info.mac))
            .collect();
        if let Err(err) = self.dataplane.add_forwarders(macs) {
            warn!(%err, "cannot tell the workers which boxes forward frames");
        }
    }

    /// Carries out `plan`, the split of dead box `dead`'s connections over
    /// `survivors`: routes, addresses, paced restores. With `claim_in` (a
    /// committed view change's number) each of our orphans' slots is
    /// claimed first, and an orphan whose slot another box holds is left
    /// to it: whatever plans the survivors computed, each connection is
    /// restored once.
    pub(super) fn take_over(
        &self,
        dead: u16,
        mut plan: Plan,
        survivors: &[u16],
        claim_in: Option<ViewNumber>,
        started: Instant,
        before: TakeoverSnapshot,
    ) {
        let mut lost_claims = 0usize;
        if let Some(view) = claim_in {
            lost_claims = self.claim_or_route(view, &mut plan);
        }
        let restored = ownership::of(&plan);
        // Each orphan of ours is shared by its route (a lazy restore) and
        // the restore thread, never copied; the routes are hashed before
        // the table's lock is taken, which the workers' lookups of these
        // very clients wait on (at 300,000 ~150 ms held before, ~1 us now:
        // BENCHMARKS.md, "Issue 19: the takeover's first second", session 21).
        let mine: Vec<Arc<Orphan>> = std::mem::take(&mut plan.mine);
        let mut routes = NewRoutes::with_capacity(mine.len() + plan.elsewhere.len());
        for (key, owner) in &plan.elsewhere {
            match self.segment.box_info(*owner) {
                Ok(info) => routes.insert(*key, OrphanRoute::Elsewhere(MacAddr(info.mac))),
                Err(err) => {
                    warn!(owner, %err, "survivor's box table unreadable: its orphans are not forwarded")
                }
            }
        }
        for orphan in &mine {
            let (key, route) = Arc::clone(orphan).route_here();
            routes.insert(key, route);
        }
        self.orphans.install(routes);
        // The other survivors forward us our orphans' frames (and, with an
        // anycast address every box serves, those frames look like the
        // client's own): their MACs must not be learned as the client's.
        self.note_forwarders(survivors.iter().copied());
        if plan.inherit {
            for ip in &plan.service_ips {
                if let Err(err) = self.dataplane.add_service_ip(*ip) {
                    warn!(%ip, %err, "cannot take the dead box's address");
                }
            }
            self.inherited
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(dead, plan.service_ips.clone());
            let inherited = self.inherited.clone();
            announce_repeatedly(
                self.dataplane.clone(),
                plan.service_ips.clone(),
                move |ip| {
                    inherited
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .values()
                        .flatten()
                        .any(|i| i == ip)
                },
            );
            self.publish_service_ips();
        }
        let n_mine = mine.len();
        // Pacing 10,000 restores takes ~105 ms: on a thread of its own, so
        // that this watcher goes on judging the other peers meanwhile.
        let dataplane = self.dataplane.clone();
        let n_survivors = survivors.len();
        let me = self.me;
        let parking = self.idle_parking;
        let paced = thread::Builder::new()
            .name("restore".into())
            .spawn(move || {
                restore_takeover(&dataplane, mine, n_survivors, parking);
                ownership::log(me, dead, claim_in, &restored);
                if n_mine > 0 {
                    spawn_takeover_report(dataplane, dead, started, before);
                }
            });
        if let Err(err) = paced {
            warn!(%err, "cannot start the restore thread: the orphans restore lazily");
        }
        info!(
            dead,
            ?survivors,
            view = claim_in.map(|v| v.0),
            restoring_here = n_mine,
            elsewhere = plan.elsewhere.len(),
            claimed_elsewhere = lost_claims,
            inherited = plan.inherited,
            corrupt = plan.corrupt,
            inherit_ips = plan.inherit,
            took_us = started.elapsed().as_micros() as u64,
            "taking over a dead box's connections"
        );
    }

    /// Claims the slot of each of `plan`'s orphans in `view` (see
    /// [`takeover::claim_mine`]); counts the orphans left to others.
    fn claim_or_route(&self, view: ViewNumber, plan: &mut Plan) -> usize {
        let lost = takeover::claim_mine(&self.segment, self.me, view, plan);
        if lost > 0 {
            self.view.update(|s| s.claims_lost += lost as u64);
        }
        lost
    }

    /// Whether this box answers for addresses it inherited from box `id`.
    pub(super) fn holds_addresses_of(&self, id: u16) -> bool {
        self.inherited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id)
    }

    /// A dead box came back as a new member: it answers for its addresses
    /// again, so stop answering ARP for them. The connections restored here
    /// stay here; the rejoined box forwards their frames (see
    /// [`super::routes::routes_to_holders_among`]).
    pub(super) fn hand_back(&self, id: u16) {
        let ips = self
            .inherited
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        for ip in ips.unwrap_or_default() {
            info!(peer = id, %ip, "peer rejoined: handing its address back");
            if let Err(err) = self.dataplane.remove_service_ip(ip) {
                warn!(%ip, %err, "cannot drop an inherited address");
            }
        }
        self.publish_service_ips();
    }

    /// Our box table entry lists every address we answer for, inherited
    /// ones included, so that whoever takes over from us takes them too.
    fn publish_service_ips(&self) {
        let Ok(info) = self.region.box_info() else {
            return;
        };
        let inherited = self.inherited.lock().unwrap_or_else(|p| p.into_inner());
        let (ips, left_out) = entry_addresses(&self.own_ips, inherited.values().flatten());
        self.unpublished_ips
            .store(left_out.len(), Ordering::Relaxed);
        // Beyond the entry's capacity the last inherited addresses are left
        // out (ours come first): this box still answers for them, but a box
        // taking over from it will not know them. Said loudly, never hidden.
        if !left_out.is_empty() {
            let left_out: Vec<String> = left_out.iter().map(IpAddr::to_string).collect();
            warn!(
                max = baton_shmem::MAX_SERVICE_IPS,
                left_out = %left_out.join(" "),
                "box table full: inherited addresses not published for our successor"
            );
        }
        if let Err(err) = self.region.set_identity(info.mac, &ips) {
            warn!(%err, "cannot publish inherited addresses");
        }
    }
}

/// The addresses a box table entry lists (ours first, then inherited ones
/// not already there, up to `MAX_SERVICE_IPS`) and those left out.
fn entry_addresses<'a>(
    own: &[IpAddr],
    inherited: impl Iterator<Item = &'a IpAddr>,
) -> (Vec<IpAddr>, Vec<IpAddr>) {
    let mut ips = own.to_vec();
    for ip in inherited {
        if !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    let left_out = ips.split_off(ips.len().min(baton_shmem::MAX_SERVICE_IPS));
    (ips, left_out)
}

/// Gratuitous ARP, repeated at 0, 20, 100, 300 and 1000 ms: a client that
/// misses one (loss, a busy LAN) learns from the next. Each announcement
/// first asks `still_ours`: an inherited address handed back to its
/// rejoined owner must never be announced again, or the LAN's caches
/// point at a box that no longer answers for it (new connections to the
/// rejoined box then lose their SYNs until the client re-resolves).
pub(crate) fn announce_repeatedly(
    dataplane: Arc<DataplaneHandle>,
    ips: Vec<IpAddr>,
    still_ours: impl Fn(&IpAddr) -> bool + Send + 'static,
) {
    let _ = thread::Builder::new().name("garp".into()).spawn(move || {
        for delay_ms in [0u64, 20, 100, 300, 1000] {
            thread::sleep(Duration::from_millis(delay_ms));
            for ip in ips.iter().filter(|ip| still_ours(ip)) {
                let _ = dataplane.announce(*ip);
            }
        }
    });
}

#[cfg(test)]
mod entry_tests {
    use super::*;

    #[test]
    fn inherited_addresses_beyond_the_entry_are_left_out_and_counted() {
        let ip = |n: u8| IpAddr::from([198, 18, 0, n]);
        let own = [ip(11)];
        let inherited: Vec<IpAddr> = (12..=20).map(ip).chain([ip(11), ip(12)]).collect();
        let (listed, left_out) = entry_addresses(&own, inherited.iter());
        assert_eq!(listed.len(), baton_shmem::MAX_SERVICE_IPS);
        assert_eq!(listed[0], ip(11), "our own address comes first");
        // 1 own + 9 distinct inherited = 10 addresses, 8 fit.
        assert_eq!(left_out, vec![ip(19), ip(20)]);
        let (listed, left_out) = entry_addresses(&own, [ip(12)].iter());
        assert_eq!((listed, left_out.len()), (vec![ip(11), ip(12)], 0));
    }
}
