//! `[cluster]`: the shared secret and the member list.

use std::fmt;

use toml_edit::{Item, Value};

use super::member::{Member, Members};
use crate::convert::*;
use crate::read::{Checker, Tbl};
use crate::schema::*;

table! {
    /// `[cluster]`: the shared secret and the member list.
    #[derive(Clone, PartialEq, Eq)]
    pub struct ClusterConfig {
        /// Cluster key authenticating heartbeats and replication (>= 32 bytes).
        key: Vec<u8> = HexKey,
        /// Every box of the cluster, this one included.
        members: Vec<Member> = Members,
    }
}

impl fmt::Debug for ClusterConfig {
    // The key is a secret: logs and panics must never carry it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("key", &format_args!("<{} bytes redacted>", self.key.len()))
            .field("members", &self.members)
            .finish()
    }
}

/// The cluster key: required, hex in the file, bytes in the model.
struct HexKey;

impl Field<Vec<u8>> for HexKey {
    fn read(&self, c: &mut Checker<'_>, t: &Tbl<'_>, key: &str) -> Option<Vec<u8>> {
        c.get(t, key, None, &hex_key)
    }
    fn write(&self, v: &Vec<u8>) -> Option<Item> {
        let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
        Some(Item::Value(Value::from(hex)))
    }
}
