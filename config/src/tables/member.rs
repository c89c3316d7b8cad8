//! `[[cluster.members]]`: one table per box, and the rules between them
//! (ids and addresses unique).

use std::collections::HashMap;
use std::net::SocketAddr;

use toml_edit::{ArrayOfTables, Item};

use crate::convert::*;
use crate::read::{also_at, Checker, Tbl};
use crate::schema::*;

table! {
    /// One box of the cluster.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Member {
        /// Its box id.
        id: u16 = req(int_in(1, 254)),
        /// Its address on the back LAN (heartbeats, replication).
        back_addr: SocketAddr = req(parsed("a socket address like 198.19.0.11:7400")),
    }
}

/// `cluster.members`: `[[cluster.members]]` tables, or an inline array of
/// inline tables; at least one, ids and addresses unique.
pub(crate) struct Members;

impl Field<Vec<Member>> for Members {
    fn read(&self, c: &mut Checker<'_>, t: &Tbl<'_>, key: &str) -> Option<Vec<Member>> {
        let path = t.key_path(key);
        let Some(item) = t.t.get(key) else {
            c.problem(
                t.line,
                path,
                "missing key (add one [[cluster.members]] table per box)",
            );
            return None;
        };
        let (tables, mut ok) = c.tables(t, key, item, "cluster.members")?;
        if tables.is_empty() && ok {
            let line = c.key_line(t, key);
            c.problem(line, path, "expected at least one member");
            return None;
        }
        let mut members = Vec::new();
        let mut seen_ids: HashMap<u16, Option<usize>> = HashMap::new();
        let mut seen_addrs: HashMap<SocketAddr, Option<usize>> = HashMap::new();
        for m in &tables {
            let parts = Member::read_parts(c, m);
            if let Some(id) = parts.id {
                let line = c.key_line(m, "id");
                if let Some(first) = seen_ids.insert(id, line) {
                    ok = false;
                    c.problem(
                        line,
                        m.key_path("id"),
                        format!("duplicate member id {id}{}", also_at(first)),
                    );
                }
            }
            if let Some(addr) = parts.back_addr {
                let line = c.key_line(m, "back_addr");
                if let Some(first) = seen_addrs.insert(addr, line) {
                    ok = false;
                    c.problem(
                        line,
                        m.key_path("back_addr"),
                        format!("duplicate back_addr {addr}{}", also_at(first)),
                    );
                }
            }
            match Member::build(parts) {
                Some(member) => members.push(member),
                None => ok = false,
            }
        }
        ok.then_some(members)
    }

    fn write(&self, v: &Vec<Member>) -> Option<Item> {
        let mut members = ArrayOfTables::new();
        for m in v {
            members.push(m.write());
        }
        Some(Item::ArrayOfTables(members))
    }

    fn nested(&self) -> Option<Vec<KeyDoc>> {
        Some(Member::keys())
    }
}
