//! A few lines of JSON writing (RFC 8259), enough for the admin answers: the
//! documents are small, flat and ours, so a serializer dependency would buy
//! nothing but build time.

use std::fmt::Write;

use super::source::{BalanceReport, LoadStatus, StatusReport, ViewReport};

/// `s` as a JSON string literal, quotes included. RFC 8259 §7: the quotation
/// mark, the reverse solidus and the control characters U+0000..U+001F must
/// be escaped; everything else may pass as is.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An object from already-rendered members, in the given order.
pub fn object(members: &[(&str, String)]) -> String {
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{}", string(k), v))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// `GET /balance` as one JSON object.
pub fn balance(r: &BalanceReport) -> String {
    let moved: Vec<(&str, String)> = r
        .moved
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_string()))
        .collect();
    let moves: Vec<String> = r
        .moves
        .iter()
        .map(|m| {
            object(&[
                ("at_unix_ms", m.at_unix_ms.to_string()),
                ("to", m.to.to_string()),
                ("asked", m.asked.to_string()),
                ("moved", m.moved.to_string()),
                ("reason", string(&m.reason)),
            ])
        })
        .collect();
    object(&[
        ("enabled", r.enabled.to_string()),
        ("threshold", r.threshold.to_string()),
        ("rate", r.rate.to_string()),
        ("interval_ms", r.interval_ms.to_string()),
        ("moved", object(&moved)),
        ("moves", format!("[{}]", moves.join(","))),
    ])
}

/// `GET /status` as one JSON object.
pub fn status(r: &StatusReport) -> String {
    let workers: Vec<String> = r
        .workers
        .iter()
        .map(|w| {
            object(&[
                ("index", w.index.to_string()),
                ("connections", w.connections.to_string()),
            ])
        })
        .collect();
    let peers: Vec<String> = r
        .peers
        .iter()
        .map(|p| {
            object(&[
                ("id", p.id.to_string()),
                ("state", string(&p.state)),
                (
                    "heartbeat_age_ms",
                    p.heartbeat_age_ms
                        .map_or_else(|| "null".to_string(), |ms| ms.to_string()),
                ),
                ("connections", p.connections.to_string()),
                ("load", load(p.load)),
            ])
        })
        .collect();
    let c = &r.cache;
    let cache = object(&[
        ("hits", c.hits.to_string()),
        ("misses", c.misses.to_string()),
        ("objects", c.objects.to_string()),
        ("bytes", c.bytes.to_string()),
        ("bytes_served", c.bytes_served.to_string()),
    ]);
    let mut members = vec![
        ("box_id", r.box_id.to_string()),
        ("name", string(&r.name)),
        ("epoch", r.epoch.to_string()),
        ("state", string(&r.state)),
        ("uptime_ms", r.uptime_ms.to_string()),
        ("connections", r.connections.to_string()),
        ("checkpoints", r.checkpoints.to_string()),
        ("workers", format!("[{}]", workers.join(","))),
        ("peers", format!("[{}]", peers.join(","))),
        ("cache", cache),
        ("load", load(r.load)),
    ];
    if let Some(v) = &r.view {
        members.push(("view", view(v)));
    }
    object(&members)
}

/// A box's published load: `null` when it publishes none.
fn load(l: Option<LoadStatus>) -> String {
    match l {
        None => "null".into(),
        Some(l) => object(&[
            ("bytes_per_sec", l.bytes_per_sec.to_string()),
            ("busy_ppm", l.busy_ppm.to_string()),
        ]),
    }
}

/// The `view` member of `GET /status`.
fn view(v: &ViewReport) -> String {
    let members: Vec<String> = v
        .members
        .iter()
        .map(|(id, epoch)| object(&[("id", id.to_string()), ("epoch", epoch.to_string())]))
        .collect();
    let phases: Vec<String> = v
        .phases
        .iter()
        .map(|(id, phase)| object(&[("id", id.to_string()), ("phase", string(phase))]))
        .collect();
    let opt = |n: Option<u64>| n.map_or_else(|| "null".to_string(), |n| n.to_string());
    object(&[
        ("number", v.number.to_string()),
        ("members", format!("[{}]", members.join(","))),
        ("proposer", v.proposer.to_string()),
        (
            "reason",
            v.reason
                .as_deref()
                .map_or_else(|| "null".to_string(), string),
        ),
        ("phases", format!("[{}]", phases.join(","))),
        ("changes", v.changes.to_string()),
        ("claims_lost", v.claims_lost.to_string()),
        ("last_commit_us", opt(v.last_commit_us)),
        (
            "raft",
            v.raft.as_ref().map_or_else(
                || "null".to_string(),
                |r| {
                    object(&[
                        ("leader", opt(r.leader.map(u64::from))),
                        ("term", r.term.to_string()),
                        ("lease_age_ms", opt(r.lease_age_ms)),
                        ("lease_ms", r.lease_ms.to_string()),
                    ])
                },
            ),
        ),
    ])
}
