//! What a running box tells its admin API: status from the segment's box
//! table, the agreed view and the workers, Prometheus metrics from the dataplane and cache
//! counters, purge through the cache, drain through the control core.
//!
//! It only translates: the admin API's HTTP side is `crate::admin`'s, the
//! moves themselves are `crate::control`'s.
use std::sync::Arc;
use std::time::Instant;

use baton_config::Config;
use baton_shmem::BoxState;

use baton_membership::{Member, Phase, Reason};

use crate::admin::{
    AdminSource, BalanceMoveRow, BalanceReport, CacheStatus, LoadStatus, Metric, PeerStatus,
    RaftReport, StatusReport, ViewReport, WorkerStatus,
};
use crate::cache::Cache;
use crate::clock::unix_ms;
use crate::control::balance::MoveReason;
use crate::control::Control;
use crate::http::HttpWorkers;

/// The admin view of one box.
pub struct BoxAdmin {
    control: Arc<Control>,
    cache: Arc<Cache>,
    http: HttpWorkers,
    name: String,
    peers: Vec<u16>,
    detection_ms: u64,
    started: Instant,
    /// The replicator's counters (replicated segments only).
    replication: Option<Arc<baton_shmem::ReplicationStats>>,
    /// What peers present on `/adopt` (derived from the cluster key).
    adopt_token: String,
    /// `[balance]`, shown by `GET /balance`.
    balance: baton_config::BalanceConfig,
}

impl BoxAdmin {
    /// The admin view of the box `control` runs.
    pub fn new(
        control: Arc<Control>,
        cache: Arc<Cache>,
        http: HttpWorkers,
        config: &Config,
    ) -> BoxAdmin {
        BoxAdmin {
            control,
            cache,
            http,
            name: config.node.name.clone(),
            peers: config.peers().map(|m| m.id).collect(),
            detection_ms: config.failure.detection_ms(),
            started: Instant::now(),
            replication: None,
            adopt_token: crate::admin::auth::adopt_token(&config.cluster.key, config.node.id),
            balance: config.balance,
        }
    }

    /// Adds the replicator's counters to the metrics.
    pub fn with_replication(mut self, stats: Option<Arc<baton_shmem::ReplicationStats>>) -> Self {
        self.replication = stats;
        self
    }

    /// `baton_replication_dropped_total{reason}` for each drop reason and
    /// `baton_replication_<counter>_total` for the other counters.
    fn replication_metrics(&self, out: &mut Vec<Metric>) {
        let Some(stats) = &self.replication else {
            return;
        };
        let drops = stats.drops();
        for (name, value) in stats.snapshot() {
            if drops.iter().any(|(d, _)| *d == name) {
                out.push(
                    Metric::counter(
                        "baton_replication_dropped_total",
                        "Replication and heartbeat datagrams dropped, by the check that refused them.",
                        value,
                    )
                    .with_label("reason", name),
                );
            } else {
                out.push(Metric::counter(
                    &format!("baton_replication_{name}_total"),
                    "Replication counter (see baton_shmem::ReplicationStats).",
                    value,
                ));
            }
        }
    }
}

impl BoxAdmin {
    /// Every member's id, this box's included, in order.
    fn all_ids(&self) -> Vec<u16> {
        let mut ids = self.peers.clone();
        ids.push(self.control.me);
        ids.sort_unstable();
        ids
    }

    /// The agreed view as this box last read it, with every box's phase
    /// and, in replicated mode, its Raft; `None` before the watcher ran.
    fn view_report(&self, now: u64) -> Option<ViewReport> {
        let snap = self.control.view.get();
        let my_phase = snap.phase?;
        let view = snap.view.unwrap_or_default();
        let mut ids = self.peers.clone();
        ids.push(self.control.me);
        ids.sort_unstable();
        let phases = ids
            .into_iter()
            .map(|id| {
                let phase = if id == self.control.me {
                    my_phase.as_str()
                } else {
                    match self.control.segment.box_info(id) {
                        Ok(info)
                            if view.contains(Member {
                                id,
                                epoch: info.epoch,
                            }) =>
                        {
                            "member"
                        }
                        Ok(info)
                            if info.state != BoxState::Unused
                                && now.saturating_sub(info.heartbeat_ms) <= self.detection_ms =>
                        {
                            "joining"
                        }
                        _ => "out",
                    }
                };
                (id, phase.to_string())
            })
            .collect();
        Some(ViewReport {
            number: view.number.0,
            members: view.members.iter().map(|m| (m.id, m.epoch)).collect(),
            proposer: view.proposer,
            reason: Reason::from_code(view.reason()).map(|r| r.to_string()),
            phases,
            changes: snap.changes,
            claims_lost: snap.claims_lost,
            last_commit_us: snap.last_commit_us,
            raft: snap.raft.map(|r| RaftReport {
                leader: r.leader,
                term: r.term,
                lease_age_ms: r.lease_age_ms,
                lease_ms: r.lease_ms,
            }),
        })
    }
}

fn state_name(state: BoxState) -> &'static str {
    match state {
        BoxState::Unused => "never started",
        BoxState::Alive => "alive",
        BoxState::Dead => "dead",
        BoxState::Draining => "draining",
        BoxState::Rejoined => "rejoined",
    }
}

impl AdminSource for BoxAdmin {
    fn adopt_token(&self) -> Option<String> {
        Some(self.adopt_token.clone())
    }

    fn status(&self) -> StatusReport {
        let me = self.control.region.box_info().ok();
        let now = unix_ms();
        let workers = self
            .control
            .dataplane
            .stats()
            .into_iter()
            .map(|w| WorkerStatus {
                index: w.worker,
                connections: w.connections as u64,
            })
            .collect();
        let peers = self
            .peers
            .iter()
            .map(|&id| match self.control.segment.box_info(id) {
                Ok(info) => {
                    let age = now.saturating_sub(info.heartbeat_ms);
                    let stale = matches!(info.state, BoxState::Alive | BoxState::Rejoined)
                        && age > self.detection_ms;
                    PeerStatus {
                        id,
                        state: if stale {
                            "dead".into()
                        } else {
                            state_name(info.state).into()
                        },
                        heartbeat_age_ms: (info.state != BoxState::Unused).then_some(age),
                        connections: info.connections.max(0) as u64,
                        load: info.load.map(load_status),
                    }
                }
                Err(err) => PeerStatus {
                    id,
                    state: format!("unreadable: {err}"),
                    heartbeat_age_ms: None,
                    connections: 0,
                    load: None,
                },
            })
            .collect();
        let cache = self.cache.stats();
        let view = self.view_report(now);
        StatusReport {
            box_id: self.control.me,
            name: self.name.clone(),
            epoch: me.as_ref().map_or(0, |i| i.epoch),
            state: me
                .as_ref()
                .map_or("unreadable", |i| state_name(i.state))
                .into(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            connections: me.as_ref().map_or(0, |i| i.connections.max(0) as u64),
            checkpoints: me.as_ref().map_or(0, |i| i.checkpoints),
            load: me.as_ref().and_then(|i| i.load).map(load_status),
            workers,
            peers,
            cache: CacheStatus {
                hits: cache.hits,
                misses: cache.misses,
                objects: cache.stored,
                bytes: 0,
                bytes_served: 0,
            },
            view,
        }
    }

    fn metrics(&self) -> Vec<Metric> {
        let mut out = Vec::new();
        for reason in MoveReason::ALL {
            out.push(
                Metric::counter(
                    "baton_balance_moved_total",
                    "Connections the balancer moved to less loaded boxes, by why.",
                    self.control.balance.moved(reason),
                )
                .with_label("reason", reason.as_str()),
            );
        }
        let strays = &self.control.strays.counts;
        for (action, n) in [("forwarded", &strays.forwarded), ("held", &strays.held)] {
            out.push(
                Metric::counter(
                    "baton_stray_segments_total",
                    "Segments of connections this box does not hold that another box has a record of: forwarded to the live box holding it, or held (dropped, never reset) while its owner's takeover routes it.",
                    n.load(std::sync::atomic::Ordering::Relaxed),
                )
                .with_label("action", action),
            );
        }
        let me = self.control.region.box_info().ok();
        let cache = self.cache.stats();
        out.push(Metric::counter(
            "baton_cache_hits_total",
            "Requests answered from the cache.",
            cache.hits,
        ));
        out.push(Metric::counter(
            "baton_cache_misses_total",
            "Requests that needed the origin.",
            cache.misses,
        ));
        out.push(Metric::counter(
            "baton_cache_evictions_total",
            "Objects evicted to stay under the budget.",
            cache.evictions,
        ));
        // The memory limits at work (SECURITY.md, "Memory limits").
        out.push(Metric::gauge(
            "baton_cache_filling_bytes",
            "Body bytes of objects still being fetched, counted in the cache budget.",
            cache.filling_bytes as f64,
        ));
        out.push(Metric::gauge(
            "baton_cache_fetches_outstanding",
            "Origin fetches and disk loads queued or running.",
            cache.fetches_outstanding as f64,
        ));
        out.push(Metric::counter(
            "baton_cache_fetches_refused_total",
            "Misses answered 503 because cache.max_fetches fetches were queued or running.",
            cache.fetches_refused,
        ));
        out.push(Metric::counter(
            "baton_cache_passthrough_total",
            "Objects served without being stored because the budget was passed while they filled.",
            cache.passthrough,
        ));
        out.push(Metric::counter(
            "baton_cache_fills_paced_total",
            "Pauses of fills held back, over the budget, until a reader caught up.",
            cache.fills_paced,
        ));
        out.push(Metric::counter(
            "baton_cache_fills_abandoned_total",
            "Paced fills given up because no reader read for the origin timeout.",
            cache.fills_abandoned,
        ));
        out.push(Metric::gauge(
            "baton_service_ips_unpublished",
            "Addresses this box answers for (its own and inherited) that its box table entry has no room for: a box taking over from it would not answer for them.",
            self.control.unpublished_service_ips() as f64,
        ));
        for (kind, n) in [
            ("origin_timeout", cache.errors_timeout),
            ("origin_connect", cache.errors_connect),
            ("origin_bad_response", cache.errors_bad_response),
            ("origin_status", cache.errors_origin_status),
        ] {
            out.push(Metric::error(kind, n));
        }
        let view = self.control.view.get();
        if let Some(phase) = view.phase {
            out.push(Metric::gauge(
                "baton_view_number",
                "The newest committed membership view this box has read.",
                view.view.as_ref().map_or(0.0, |v| f64::from(v.number.0)),
            ));
            out.push(Metric::counter(
                "baton_view_changes_total",
                "Committed membership view changes this box has acted on.",
                view.changes,
            ));
            out.push(Metric::counter(
                "baton_view_claims_lost_total",
                "Orphans left to another box that had claimed their slot first.",
                view.claims_lost,
            ));
            if let Some(raft) = &view.raft {
                out.push(Metric::gauge(
                    "baton_raft_term",
                    "The term of the view's Raft on this box (replicated mode).",
                    raft.term as f64,
                ));
                out.push(Metric::gauge(
                    "baton_raft_leader",
                    "The leader of the view's Raft this box knows (0: none).",
                    raft.leader.map_or(0.0, f64::from),
                ));
                out.push(Metric::gauge(
                    "baton_raft_lease_age_seconds",
                    "How old this box's quorum proof is (-1: never had one); past the lease it is fenced.",
                    raft.lease_age_ms.map_or(-1.0, |ms| ms as f64 / 1000.0),
                ));
                for &(reason, n) in &raft.drops {
                    out.push(
                        Metric::counter(
                            "baton_raft_dropped_total",
                            "Datagrams of the view's Raft dropped, by the check that refused them.",
                            n,
                        )
                        .with_label("reason", reason),
                    );
                }
            }
            for p in [
                Phase::Starting,
                Phase::Joining,
                Phase::Member,
                Phase::Fenced,
            ] {
                out.push(
                    Metric::gauge(
                        "baton_view_phase",
                        "This box's membership phase (1 for the current one).",
                        if p == phase { 1.0 } else { 0.0 },
                    )
                    .with_label("phase", p.as_str()),
                );
            }
        }
        out.push(Metric::gauge(
            "baton_connections",
            "Connections this box owns.",
            me.as_ref().map_or(0.0, |i| i.connections.max(0) as f64),
        ));
        // Every box's published load, this one's included: what placement
        // and rebalancing read (issue 20), seen from this box.
        for id in self.all_ids() {
            let Ok(info) = self.control.segment.box_info(id) else {
                continue;
            };
            let box_id = id.to_string();
            out.push(
                Metric::gauge(
                    "baton_box_connections",
                    "Connections each box owns, as its box table entry says.",
                    info.connections.max(0) as f64,
                )
                .with_label("box", &box_id),
            );
            if let Some(load) = info.load {
                out.push(
                    Metric::gauge(
                        "baton_box_bytes_per_second",
                        "Bytes per second each box sent to clients, as it published.",
                        load.bytes_per_sec as f64,
                    )
                    .with_label("box", &box_id),
                );
                out.push(
                    Metric::gauge(
                        "baton_box_busy_ratio",
                        "Fraction of time each box's workers were busy, as it published.",
                        f64::from(load.busy_ppm) / 1e6,
                    )
                    .with_label("box", &box_id),
                );
            }
        }
        out.push(Metric::counter(
            "baton_checkpoints_total",
            "Checkpoints written.",
            me.as_ref().map_or(0, |i| i.checkpoints),
        ));
        let http = self.http.stats();
        for m in http.metrics() {
            let mut metric = Metric::counter(m.name, &m.help, m.value);
            if let Some((k, v)) = m.label {
                metric.labels.push((k.into(), v.into()));
            }
            out.push(metric);
        }
        let mut total = baton_dataplane::stats::Counters::default();
        let mut ring_drops = 0;
        let mut restored = 0;
        for w in self.control.dataplane.stats() {
            total.add(&w.counters);
            ring_drops += w.ring_drops;
            restored += w.restores.restored;
        }
        out.push(Metric::counter(
            "baton_dataplane_ring_drops_total",
            "Frames the kernel dropped because a worker's receive ring was full.",
            ring_drops,
        ));
        out.push(Metric::counter(
            "baton_takeovers_total",
            "Connections restored on this box from dead or draining boxes, eagerly or lazily.",
            restored,
        ));
        for (name, value) in total.named() {
            out.push(Metric::dataplane(name, value));
        }
        self.replication_metrics(&mut out);
        out
    }

    fn purge(&self, url: &str) -> bool {
        self.cache.purge(url)
    }

    fn drain(&self) -> Result<String, String> {
        self.control.drain().map_err(|e| e.to_string())
    }

    fn migrate(&self, to: u16, count: usize) -> Result<String, String> {
        self.control.migrate(to, count).map_err(|e| e.to_string())
    }

    fn balance(&self) -> BalanceReport {
        let log = &self.control.balance;
        BalanceReport {
            enabled: self.balance.enabled,
            threshold: self.balance.threshold,
            rate: self.balance.rate,
            interval_ms: self.balance.interval_ms,
            moved: MoveReason::ALL
                .iter()
                .map(|r| (r.as_str().to_string(), log.moved(*r)))
                .collect(),
            moves: log
                .history()
                .into_iter()
                .map(|m| BalanceMoveRow {
                    at_unix_ms: m.at_unix_ms,
                    to: m.to,
                    asked: m.asked,
                    moved: m.moved,
                    reason: m.reason.as_str().to_string(),
                })
                .collect(),
        }
    }

    fn adopt(&self, from: u16, slots: Vec<u32>) -> Result<String, String> {
        self.control.adopt(from, &slots).map_err(|e| e.to_string())
    }
}

/// A box table load as the admin API shows it.
fn load_status(l: baton_shmem::BoxLoad) -> LoadStatus {
    LoadStatus {
        bytes_per_sec: l.bytes_per_sec,
        busy_ppm: l.busy_ppm,
    }
}
