//! The tables of the file, each declared once with `table!` (key, type,
//! rule, default, doc), one file per TOML table; this file declares the
//! root and the rule between tables.
//!
//! Adding a key means adding one line to its table here, and documenting
//! it in `config/baton.example.toml` and `docs/CONFIG.md`: the tests in
//! `documented.rs` fail until both mention it. Nothing here knows lines or
//! spans (`crate::read`) or how a single value is judged (`crate::convert`).

mod admin;
mod balance;
mod cache;
mod checkpoint;
mod cluster;
mod dataplane;
#[cfg(test)]
mod documented;
mod dpdk;
mod failure;
mod ftp;
mod limits;
mod member;
mod node;
mod ports;
mod raft;
mod rtsp;
mod service;
mod takeover;
mod tls;
mod tls_sni;

pub use admin::AdminConfig;
pub use balance::BalanceConfig;
pub use cache::CacheConfig;
pub use checkpoint::CheckpointConfig;
pub use cluster::ClusterConfig;
pub use dataplane::DataplaneConfig;
pub use dpdk::DpdkConfig;
pub use failure::FailureConfig;
pub use ftp::{FtpConfig, DEFAULT_FTP_PORT};
pub use limits::LimitsConfig;
pub use member::Member;
pub use node::NodeConfig;
pub use raft::RaftConfig;
pub use rtsp::{RtspConfig, DEFAULT_RTSP_PORT};
pub use service::ServiceConfig;
pub use takeover::TakeoverConfig;
pub use tls::{TlsConfig, TlsSuite, TlsVersion, DEFAULT_TLS_PORT};
pub use tls_sni::SniCert;

use toml_edit::DocumentMut;

use crate::error::ConfigError;
use crate::model::MAX_SLOT_BYTES;
use crate::read::{self, Checker, Tbl};
use crate::schema::*;

table! {
    /// The whole configuration file of one box.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Config {
        /// `[box]`: who this box is (`box` is a Rust keyword, hence `node`).
        node as "box": NodeConfig = Required,
        /// `[cluster]`: the boxes that take over from each other.
        cluster: ClusterConfig = Required,
        /// `[service]`: the addresses clients connect to.
        service: ServiceConfig = Required,
        /// `[dataplane]`: the packet port and its workers.
        dataplane: DataplaneConfig = Required,
        /// `[checkpoint]`: the connection checkpoint segment and cadence.
        checkpoint: CheckpointConfig = Required,
        /// `[failure]`: heartbeat-based failure detection.
        failure: FailureConfig = OrDefault,
        /// `[takeover]`: how a dead box's connections are split.
        takeover: TakeoverConfig = OrDefault,
        /// `[balance]`: rebalancing connections between live boxes.
        balance: BalanceConfig = OrDefault,
        /// `[raft]`: the replicated mode's view Raft.
        raft: RaftConfig = OrDefault,
        /// `[cache]`: the HTTP cache and its origin.
        cache: CacheConfig = Required,
        /// `[limits]`: HTTP and connection limits.
        limits: LimitsConfig = OrDefault,
        /// `[admin]`: the admin API.
        admin: AdminConfig = Required,
        /// `[tls]`: HTTPS on the service IPs.
        tls: TlsConfig = OrDefault,
        /// `[rtsp]`: RTSP streaming.
        rtsp: RtspConfig = OrDefault,
        /// `[ftp]`: read-only anonymous FTP on the service IPs.
        ftp: FtpConfig = OrDefault,
    }
    check = cluster_rules;
}

/// The rules between tables: this box is a member, in shared mode every
/// member id fits the view cell, in replicated mode the Raft's port and
/// lease fit the cluster and the failure detection, and every port has
/// one owner.
fn cluster_rules(c: &mut Checker<'_>, root: &Tbl<'_>, p: &mut Parts) -> bool {
    let member = own_id_is_a_member(c, root, p);
    let fit = shared_ids_fit_the_view(c, root, p);
    let raft = replicated_raft_rules(c, root, p) & device_state_path(c, root, p);
    let ports = ports::ports_have_one_owner(c, root, p);
    let slots = small_slots_serve_plain_http(c, root, p);
    member && fit && raft && ports && slots
}

/// A slot below `MAX_SLOT_BYTES` holds a plain HTTP connection's record;
/// an HTTPS record (its sealed TLS state: ~650 bytes) or an FTP or RTSP
/// bundle would live in the overflow area, which has one entry per 128
/// slots: past that many such connections, their records would be lost.
fn small_slots_serve_plain_http(c: &mut Checker<'_>, root: &Tbl<'_>, p: &mut Parts) -> bool {
    let Some(checkpoint) = &p.checkpoint else {
        return true;
    };
    if checkpoint.slot_bytes >= MAX_SLOT_BYTES {
        return true;
    }
    let on = [
        ("tls", p.tls.as_ref().is_some_and(|t| t.enabled)),
        ("ftp", p.ftp.as_ref().is_some_and(|t| t.enabled)),
        ("rtsp", p.rtsp.as_ref().is_some_and(|t| t.enabled)),
    ];
    let Some((table, _)) = on.into_iter().find(|(_, enabled)| *enabled) else {
        return true;
    };
    let line = line_of(c, root, "checkpoint", "slot_bytes");
    c.problem(
        line,
        "checkpoint.slot_bytes".to_string(),
        format!(
            "{} is for plain HTTP; with {table}.enabled = true every record must fit its slot: set {MAX_SLOT_BYTES} or leave it out",
            checkpoint.slot_bytes
        ),
    );
    false
}

/// The line of `table.key` in the file, else of the table, if written.
pub(super) fn line_of(c: &Checker<'_>, root: &Tbl<'_>, table: &str, key: &str) -> Option<usize> {
    let t = root.t.get(table)?.as_table_like()?;
    t.key(key)
        .and_then(|k| c.line(k.span()))
        .or_else(|| t.get(key).and_then(|i| c.line(i.span())))
}

/// A segment in a PCI device's BAR (sysfs) has no room beside it for the
/// box's epoch file, whose default lies beside `raft.state_path`'s, itself
/// beside the segment: such a box names its state path.
fn device_state_path(c: &mut Checker<'_>, root: &Tbl<'_>, p: &mut Parts) -> bool {
    let (Some(checkpoint), Some(raft)) = (&p.checkpoint, &p.raft) else {
        return true;
    };
    if !checkpoint.segment_path.starts_with("/sys") || raft.state_path.is_some() {
        return true;
    }
    let line = line_of(c, root, "checkpoint", "segment_path");
    c.problem(
        line,
        "raft.state_path".to_string(),
        "required when checkpoint.segment_path is a PCI device: the box's epoch file lies beside it (e.g. /var/lib/baton/raft)",
    );
    false
}

/// In replicated mode (the view in the Raft, `[raft]`):
///
/// - a box cut off from the quorum must have stopped before its survivors
///   take it over: failure detection at least the lease plus three
///   heartbeat intervals ([`RaftConfig::min_detection_ms`]);
/// - the Raft's address (each member's back-LAN IP, `raft.port`) is no
///   member's replication address, nor its heartbeat address (the next
///   port, `baton_shmem::heartbeat_addr`).
fn replicated_raft_rules(c: &mut Checker<'_>, root: &Tbl<'_>, p: &mut Parts) -> bool {
    let (Some(cluster), Some(checkpoint), Some(failure), Some(raft)) =
        (&p.cluster, &p.checkpoint, &p.failure, &p.raft)
    else {
        return true;
    };
    if checkpoint.mode != crate::SegmentMode::Replicated {
        return true;
    }
    let mut ok = true;
    let need = raft.min_detection_ms(failure.heartbeat_interval_ms);
    if failure.detection_ms() < need {
        ok = false;
        let interval = failure.heartbeat_interval_ms.max(1);
        let missed = need.div_ceil(interval);
        let line = line_of(c, root, "failure", "missed")
            .or_else(|| line_of(c, root, "checkpoint", "mode"));
        c.problem(
            line,
            "failure.missed".to_string(),
            format!(
                "failure detection ({} ms = heartbeat_interval_ms {} * missed {}) must be at least raft.lease_ms ({}) + 3 * heartbeat_interval_ms in replicated mode, so that a box cut off from the quorum has stopped before its survivors take it over: set missed = {missed} or more",
                failure.detection_ms(),
                failure.heartbeat_interval_ms,
                failure.missed,
                raft.lease_ms,
            ),
        );
    }
    for (i, m) in cluster.members.iter().enumerate() {
        let raft_addr = std::net::SocketAddr::new(m.back_addr.ip(), raft.port);
        let taken = |o: &crate::Member| {
            o.back_addr == raft_addr
                || (o.back_addr.ip() == raft_addr.ip()
                    && o.back_addr.port().checked_add(1) == Some(raft.port))
        };
        if let Some(j) = cluster.members.iter().position(taken) {
            ok = false;
            let line = line_of(c, root, "raft", "port");
            c.problem(
                line,
                "raft.port".to_string(),
                format!(
                    "member {}'s Raft address {raft_addr} is cluster.members[{j}].back_addr or the port after it, the replication's and its heartbeats': pick another port (cluster.members[{i}])",
                    m.id
                ),
            );
            break;
        }
    }
    ok
}

/// The most members a shared segment's view cell holds, ids
/// `0..SHARED_MAX_MEMBERS` (`baton_membership::MAX_MEMBERS`; the cell
/// fills the segment's 4 KiB header page).
pub const SHARED_MAX_MEMBERS: u16 = 16;

/// In shared mode the boxes agree on their view in the segment's cell,
/// which holds ids below [`SHARED_MAX_MEMBERS`]: a larger id would be
/// refused its join at run time, so it is refused here.
fn shared_ids_fit_the_view(c: &mut Checker<'_>, root: &Tbl<'_>, p: &mut Parts) -> bool {
    let (Some(cluster), Some(checkpoint)) = (&p.cluster, &p.checkpoint) else {
        return true;
    };
    if checkpoint.mode != crate::SegmentMode::Shared {
        return true;
    }
    let mut ok = true;
    for (i, m) in cluster.members.iter().enumerate() {
        if m.id < SHARED_MAX_MEMBERS {
            continue;
        }
        ok = false;
        let line = member_id_span(root, i).and_then(|s| c.line(Some(s)));
        c.problem(
            line,
            format!("cluster.members[{i}].id"),
            format!(
                "member id {} does not fit the shared segment's membership view (ids 0..{SHARED_MAX_MEMBERS}; use checkpoint.mode = \"replicated\" or smaller ids)",
                m.id
            ),
        );
    }
    ok
}

/// Where member `i`'s `id` is written, in either spelling of the list.
fn member_id_span(root: &Tbl<'_>, i: usize) -> Option<std::ops::Range<usize>> {
    let members = root.t.get("cluster")?.as_table_like()?.get("members")?;
    let member: &dyn toml_edit::TableLike = match members {
        toml_edit::Item::ArrayOfTables(a) => a.get(i)?,
        toml_edit::Item::Value(toml_edit::Value::Array(a)) => a.get(i)?.as_inline_table()?,
        _ => return None,
    };
    member.get("id")?.span()
}

/// A box must be one of the members it heartbeats with, or no peer could
/// ever take its connections over.
fn own_id_is_a_member(c: &mut Checker<'_>, root: &Tbl<'_>, p: &mut Parts) -> bool {
    let (Some(node), Some(cluster)) = (&p.node, &p.cluster) else {
        return true;
    };
    if cluster.members.iter().any(|m| m.id == node.id) {
        return true;
    }
    let line = root
        .t
        .get("box")
        .and_then(|b| b.as_table_like())
        .and_then(|b| b.get("id"))
        .and_then(|i| c.line(i.span()));
    let ids: Vec<String> = cluster.members.iter().map(|m| m.id.to_string()).collect();
    c.problem(
        line,
        "box.id".to_string(),
        format!(
            "box {} is not one of cluster.members (ids: {})",
            node.id,
            ids.join(", ")
        ),
    );
    false
}

impl Config {
    /// The cluster member with this id, if any.
    pub fn member(&self, id: u16) -> Option<&Member> {
        self.cluster.members.iter().find(|m| m.id == id)
    }

    /// This box's own entry in `cluster.members` (validation guarantees it
    /// exists in a parsed config).
    pub fn me(&self) -> Option<&Member> {
        self.member(self.node.id)
    }

    /// Every member except this box: the peers it heartbeats and may take
    /// over from.
    pub fn peers(&self) -> impl Iterator<Item = &Member> + '_ {
        let me = self.node.id;
        self.cluster.members.iter().filter(move |m| m.id != me)
    }
}

/// Parses and validates `text`; `file` names it in messages.
pub(crate) fn check(text: &str, file: &str) -> Result<Config, ConfigError> {
    read::run(text, file, Config::read)
}

/// The configuration as TOML, every key written.
pub(crate) fn to_toml(c: &Config) -> String {
    DocumentMut::from(c.write()).to_string()
}
