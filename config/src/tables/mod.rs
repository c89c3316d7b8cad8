//! The tables of the file, each declared once with `table!` (key, type,
//! rule, default, doc), one file per TOML table; this file declares the
//! root and the rule between tables.
//!
//! Adding a key means adding one line to its table here, and documenting
//! it in `config/baton.example.toml` and `docs/CONFIG.md`: the tests in
//! `documented.rs` fail until both mention it. Nothing here knows lines or
//! spans (`crate::read`) or how a single value is judged (`crate::convert`).

mod admin;
mod cache;
mod checkpoint;
mod cluster;
mod dataplane;
#[cfg(test)]
mod documented;
mod dpdk;
mod failure;
mod limits;
mod member;
mod node;
mod service;

pub use admin::AdminConfig;
pub use cache::CacheConfig;
pub use checkpoint::CheckpointConfig;
pub use cluster::ClusterConfig;
pub use dataplane::DataplaneConfig;
pub use dpdk::DpdkConfig;
pub use failure::FailureConfig;
pub use limits::LimitsConfig;
pub use member::Member;
pub use node::NodeConfig;
pub use service::ServiceConfig;

use toml_edit::DocumentMut;

use crate::error::ConfigError;
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
        /// `[cache]`: the HTTP cache and its origin.
        cache: CacheConfig = Required,
        /// `[limits]`: HTTP and connection limits.
        limits: LimitsConfig = OrDefault,
        /// `[admin]`: the admin API.
        admin: AdminConfig = Required,
    }
    check = own_id_is_a_member;
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
