//! Writing a [`Config`] back out as TOML that [`crate::parse`] accepts.
//!
//! Every key is written, defaults included, so a generated box config says
//! exactly what the box runs with.

use std::path::Path;

use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

use crate::model::Config;

/// TOML integers are i64; values beyond it (never sensible here) saturate.
fn int<T: TryInto<i64>>(n: T) -> Item {
    value(n.try_into().unwrap_or(i64::MAX))
}

fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Item {
    let mut a = Array::new();
    for s in items {
        a.push(s);
    }
    value(a)
}

fn path(p: &Path) -> Item {
    value(p.to_string_lossy().into_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn to_toml(c: &Config) -> String {
    let mut doc = DocumentMut::new();

    let mut t = Table::new();
    t["id"] = int(c.node.id);
    t["name"] = value(c.node.name.as_str());
    t["log_level"] = value(c.node.log_level.as_str());
    doc["box"] = Item::Table(t);

    let mut t = Table::new();
    t["key"] = value(hex(&c.cluster.key));
    let mut members = ArrayOfTables::new();
    for m in &c.cluster.members {
        let mut mt = Table::new();
        mt["id"] = int(m.id);
        mt["back_addr"] = value(m.back_addr.to_string());
        members.push(mt);
    }
    t["members"] = Item::ArrayOfTables(members);
    doc["cluster"] = Item::Table(t);

    let mut t = Table::new();
    let ips: Vec<String> = c.service.ips.iter().map(|ip| ip.to_string()).collect();
    t["ips"] = strings(ips.iter().map(String::as_str));
    t["port"] = int(c.service.port);
    doc["service"] = Item::Table(t);

    let d = &c.dataplane;
    let mut t = Table::new();
    t["backend"] = value(d.backend.as_str());
    t["interface"] = value(d.interface.as_str());
    t["workers"] = int(d.workers);
    let mut cores = Array::new();
    for &core in &d.cores {
        cores.push(i64::try_from(core).unwrap_or(i64::MAX));
    }
    t["cores"] = value(cores);
    t["poll_mode"] = value(d.poll_mode.as_str());
    t["max_connections"] = int(d.max_connections);
    t["syn_backlog"] = int(d.syn_backlog);
    t["tcp_idle_timeout_ms"] = int(d.tcp_idle_timeout_ms);
    if let Some(mac) = d.mac {
        t["mac"] = value(mac.to_string());
    }
    if let Some(dpdk) = &d.dpdk {
        let mut dt = Table::new();
        dt["eal_args"] = strings(dpdk.eal_args.iter().map(String::as_str));
        dt["hugepages"] = value(dpdk.hugepages);
        dt["vdevs"] = strings(dpdk.vdevs.iter().map(String::as_str));
        dt["memory_mb"] = int(dpdk.memory_mb);
        dt["mbufs"] = int(dpdk.mbufs);
        if let Some(lcore) = dpdk.main_lcore {
            dt["main_lcore"] = int(lcore);
        }
        dt["idle_sleep_us"] = int(dpdk.idle_sleep_us);
        dt["log_level"] = value(dpdk.log_level.as_str());
        t["dpdk"] = Item::Table(dt);
    }
    doc["dataplane"] = Item::Table(t);

    let k = &c.checkpoint;
    let mut t = Table::new();
    t["enabled"] = value(k.enabled);
    t["segment_path"] = path(&k.segment_path);
    t["slots"] = int(k.slots);
    t["mode"] = value(k.mode.as_str());
    t["fast_bytes"] = int(k.fast_bytes);
    t["slow_bytes"] = int(k.slow_bytes);
    t["interval_ms"] = int(k.interval_ms);
    t["ack_after_commit"] = value(k.ack_after_commit);
    t["replication_port"] = int(k.replication_port);
    if let Some(dir) = &k.upload_dir {
        t["upload_dir"] = path(dir);
    }
    doc["checkpoint"] = Item::Table(t);

    let mut t = Table::new();
    t["heartbeat_interval_ms"] = int(c.failure.heartbeat_interval_ms);
    t["missed"] = int(c.failure.missed);
    doc["failure"] = Item::Table(t);

    let ca = &c.cache;
    let mut t = Table::new();
    t["origin"] = value(ca.origin.as_str());
    t["memory_bytes"] = int(ca.memory_bytes);
    if let Some(dir) = &ca.disk_dir {
        t["disk_dir"] = path(dir);
    }
    t["fetchers"] = int(ca.fetchers);
    t["origin_timeout_ms"] = int(ca.origin_timeout_ms);
    doc["cache"] = Item::Table(t);

    let l = &c.limits;
    let mut t = Table::new();
    t["max_header_bytes"] = int(l.max_header_bytes);
    t["max_request_line"] = int(l.max_request_line);
    t["idle_timeout_ms"] = int(l.idle_timeout_ms);
    t["request_timeout_ms"] = int(l.request_timeout_ms);
    t["max_connections"] = int(l.max_connections);
    t["max_upload_bytes"] = int(l.max_upload_bytes);
    doc["limits"] = Item::Table(t);

    let mut t = Table::new();
    t["listen"] = value(c.admin.listen.to_string());
    t["token"] = value(c.admin.token.as_str());
    doc["admin"] = Item::Table(t);

    doc.to_string()
}
