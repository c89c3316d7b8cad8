//! What the admin API asks of the box: the [`AdminSource`] trait and the plain
//! data it answers with. Nothing here knows HTTP; the box (the integrator's
//! `run.rs`) implements the trait over its segment, cache and workers, and the
//! tests implement it with fixed answers.

/// The box behind the admin API. Every method is called from an admin
/// connection thread, never from a worker, so it may take locks or ask the
/// workers over channels; it should answer within a second or so, because
/// the operator's client is waiting.
pub trait AdminSource: Send + Sync {
    /// `GET /status`: the box as it sees itself and its peers now.
    fn status(&self) -> StatusReport;
    /// `GET /metrics`: every metric of the box, rendered in the Prometheus
    /// text format by the server (which appends its own admin counters).
    fn metrics(&self) -> Vec<Metric>;
    /// `POST /purge?url=` and `DELETE /cache/<path>`: forget the object at
    /// `url` (a path such as `/1M.bin`); true if it was cached.
    fn purge(&self, url: &str) -> bool;
    /// `POST /drain`: start moving every connection of this box to the
    /// others (issue 6 item 6). `Ok` carries a message for the operator
    /// (answered 202), `Err` why it was refused (answered 409).
    fn drain(&self) -> Result<String, String>;
    /// `POST /migrate?to=ID&count=K`: start moving `count` connections to
    /// box `to`. Same answers as [`AdminSource::drain`].
    fn migrate(&self, to: u16, count: usize) -> Result<String, String>;
    /// `POST /adopt?from=ID&slots=A,B,…`: another box froze these
    /// connections (their final checkpoints are in its region, in these
    /// slots) and forwards their frames here: restore them.
    fn adopt(&self, from: u16, slots: Vec<u32>) -> Result<String, String> {
        let _ = (from, slots);
        Err("this box does not adopt connections".into())
    }
    /// `GET /balance`: what the balancer moved lately and its settings.
    fn balance(&self) -> BalanceReport {
        BalanceReport::default()
    }
    /// The token peers present on `/adopt` instead of this box's admin
    /// token ([`crate::admin::auth::adopt_token`]); `None`: only the admin
    /// token opens it.
    fn adopt_token(&self) -> Option<String> {
        None
    }
}

/// The answer to `GET /balance`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalanceReport {
    /// `balance.enabled`.
    pub enabled: bool,
    /// `balance.threshold`, `balance.rate`, `balance.interval_ms`.
    pub threshold: u64,
    /// Moves per second at most.
    pub rate: u64,
    /// How often the loads are looked at.
    pub interval_ms: u64,
    /// Connections moved since the start, by reason name.
    pub moved: Vec<(String, u64)>,
    /// The last moves, oldest first.
    pub moves: Vec<BalanceMoveRow>,
}

/// One move of `GET /balance`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalanceMoveRow {
    /// Wall-clock time, ms since the epoch.
    pub at_unix_ms: u64,
    /// The receiving box.
    pub to: u16,
    /// Connections asked (plan and rate).
    pub asked: u64,
    /// Connections the receiver adopted.
    pub moved: u64,
    /// `rejoin`, `takeover` or `over_threshold`.
    pub reason: String,
}

/// The answer to `GET /status`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusReport {
    /// This box's member id (`[box] id`).
    pub box_id: u16,
    /// This box's name (`[box] name`).
    pub name: String,
    /// The epoch this incarnation of the box runs in (bumped at each start,
    /// so peers never confuse a restarted box with its previous life).
    pub epoch: u32,
    /// alive, draining, rejoined … as the box table says.
    pub state: String,
    /// Milliseconds since this process started.
    pub uptime_ms: u64,
    /// Client connections owned now (all workers).
    pub connections: u64,
    /// Checkpoints written since start.
    pub checkpoints: u64,
    /// The load this box published with its last heartbeat (issue 20);
    /// `None` before the first one.
    pub load: Option<LoadStatus>,
    /// One entry per dataplane worker.
    pub workers: Vec<WorkerStatus>,
    /// Every other member of the cluster.
    pub peers: Vec<PeerStatus>,
    /// The cache's counters and occupancy.
    pub cache: CacheStatus,
    /// The agreed membership view, for a box that keeps one (shared
    /// segments); `None` renders nothing.
    pub view: Option<ViewReport>,
}

/// The agreed membership view in a [`StatusReport`] (`docs/MEMBERSHIP.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewReport {
    /// The newest committed view this box has read (0: none yet).
    pub number: u32,
    /// Its members, sorted by id: (id, epoch).
    pub members: Vec<(u16, u32)>,
    /// The box that committed it.
    pub proposer: u16,
    /// Why it was committed (`box 3 (epoch 2) silent for 310 ms`), when
    /// the view says.
    pub reason: Option<String>,
    /// Every configured box's phase, this one's included, by id:
    /// `starting`, `joining`, `member` or `fenced` for this box (its own
    /// machine's); for the others, as their box table entry and the view
    /// show them: `member`, `joining` (beating, not in the view: starting
    /// or joining), or `out` (not in the view, silent).
    pub phases: Vec<(u16, String)>,
    /// Committed view changes this box has acted on since it started.
    pub changes: u64,
    /// Orphans this box left to another box that had claimed their slot.
    pub claims_lost: u64,
    /// The last time from this box's verdict on a peer to the commit of
    /// the peer's removal, in µs.
    pub last_commit_us: Option<u64>,
    /// The Raft the view lives in (replicated mode; `None` in shared mode).
    pub raft: Option<RaftReport>,
}

/// This box's Raft in a [`ViewReport`] (replicated mode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftReport {
    /// The leader this box knows, if any.
    pub leader: Option<u16>,
    /// Its term.
    pub term: u64,
    /// How old its quorum proof is, ms; `None`: it never had one.
    pub lease_age_ms: Option<u64>,
    /// The lease: a proof older than this fences the box, ms.
    pub lease_ms: u64,
}

/// One dataplane worker in a [`StatusReport`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStatus {
    /// Worker index (0-based).
    pub index: usize,
    /// Connections this worker owns now.
    pub connections: u64,
}

/// One peer box in a [`StatusReport`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its member id.
    pub id: u16,
    /// alive, dead, draining, rejoined or never started.
    pub state: String,
    /// Milliseconds since its last heartbeat; `None` if it never beat
    /// (rendered as JSON `null`).
    pub heartbeat_age_ms: Option<u64>,
    /// Connections it owns, as its box table entry says.
    pub connections: u64,
    /// The load it published in the box table; `None` if it publishes
    /// none (never beat, or an older build).
    pub load: Option<LoadStatus>,
}

/// A box's published load, as `GET /status` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStatus {
    /// Bytes per second it sent to clients.
    pub bytes_per_sec: u64,
    /// Fraction of time its workers were busy, parts per million.
    pub busy_ppm: u32,
}

/// The cache part of a [`StatusReport`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStatus {
    /// Lookups served from a fresh stored object.
    pub hits: u64,
    /// Lookups that started an origin fetch.
    pub misses: u64,
    /// Objects in memory now.
    pub objects: u64,
    /// Body bytes in memory now.
    pub bytes: u64,
    /// Body bytes sent to clients since start.
    pub bytes_served: u64,
}

/// Whether a metric only goes up or may go both ways (Prometheus `# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic since start; by convention the name ends in `_total`.
    Counter,
    /// A value now (connections, bytes in memory).
    Gauge,
}

impl MetricKind {
    /// The word the text exposition format uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// One sample for `GET /metrics`. Samples that share a name are one metric
/// family: they get one `# HELP`/`# TYPE` pair (the first sample's) and
/// differ by their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*` (others are left out of the
    /// exposition and logged).
    pub name: String,
    /// One line of help text.
    pub help: String,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// Label pairs; label names `[a-zA-Z_][a-zA-Z0-9_]*`, values any text.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Metric {
    /// A counter without labels.
    pub fn counter(name: &str, help: &str, value: u64) -> Metric {
        Metric {
            name: name.to_string(),
            help: help.to_string(),
            kind: MetricKind::Counter,
            labels: Vec::new(),
            // Counters above 2^53 lose precision; the format carries floats.
            value: value as f64,
        }
    }

    /// A gauge without labels.
    pub fn gauge(name: &str, help: &str, value: f64) -> Metric {
        Metric {
            name: name.to_string(),
            help: help.to_string(),
            kind: MetricKind::Gauge,
            labels: Vec::new(),
            value,
        }
    }

    /// The same sample with one more label.
    pub fn with_label(mut self, name: &str, value: &str) -> Metric {
        self.labels.push((name.to_string(), value.to_string()));
        self
    }

    /// `baton_errors_total{kind="KIND"}`: one kind of error of the box
    /// (bad_request, header_too_large, origin_timeout …).
    pub fn error(kind: &str, value: u64) -> Metric {
        Metric::counter("baton_errors_total", "Errors of the box, by kind.", value)
            .with_label("kind", kind)
    }

    /// `baton_dataplane_<name>_total`: one of the dataplane's counters (as
    /// `baton_dataplane::stats::Counters::named` lists them, summed over the
    /// workers).
    pub fn dataplane(name: &str, value: u64) -> Metric {
        Metric::counter(
            &format!("baton_dataplane_{name}_total"),
            &format!("Dataplane counter {name}, summed over workers."),
            value,
        )
    }
}
