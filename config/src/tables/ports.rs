//! The rule that every port of a box has one owner: the service IPs'
//! TCP services (HTTP, HTTPS, RTSP, FTP and FTP's passive range), the
//! admin API, and the back LAN's (replication, heartbeats, the Raft).
//!
//! One list of who holds which port, in a fixed order, so each service is
//! checked against every port claimed before it, whichever table added it
//! last. Knows the tables' fields, not how a value is read or judged.

use super::Parts;
use crate::read::{Checker, Tbl};

/// A port some key of the file claims.
struct Claim {
    /// The key, as an error names it (`tls.port`).
    what: String,
    port: u16,
}

/// A service on the service IPs that needs a port of its own.
struct Service {
    table: &'static str,
    /// The protocol's name in the error.
    name: &'static str,
    port: u16,
    default: u16,
}

/// Every port is claimed by one key only, and FTP's passive range holds
/// none of them.
pub(super) fn ports_have_one_owner(c: &mut Checker<'_>, root: &Tbl<'_>, p: &mut Parts) -> bool {
    let mut claims = fixed_claims(p);
    let mut ok = true;
    for s in services(p) {
        if let Some(owner) = claims.iter().find(|o| o.port == s.port) {
            ok = false;
            let line = super::line_of(c, root, s.table, "port")
                .or_else(|| super::line_of(c, root, s.table, "enabled"));
            c.problem(
                line,
                format!("{}.port", s.table),
                format!(
                    "port {} is already {}'s: {} needs a port of its own ({} by default)",
                    s.port, owner.what, s.name, s.default
                ),
            );
        }
        claims.push(Claim {
            what: format!("{}.port", s.table),
            port: s.port,
        });
    }
    passive_range_is_free(c, root, p, &claims) && ok
}

/// The ports claimed before any optional service: plain HTTP, the admin
/// API and the back LAN's.
fn fixed_claims(p: &Parts) -> Vec<Claim> {
    let mut claims = Vec::new();
    let mut claim = |what: String, port: u16| claims.push(Claim { what, port });
    if let Some(s) = &p.service {
        claim("service.port".into(), s.port);
    }
    if let Some(a) = &p.admin {
        claim("admin.listen".into(), a.listen.port());
    }
    if let Some(cp) = &p.checkpoint {
        claim("checkpoint.replication_port".into(), cp.replication_port);
        if let (Some(raft), crate::SegmentMode::Replicated) = (&p.raft, cp.mode) {
            claim("raft.port".into(), raft.port);
        }
    }
    if let (Some(node), Some(cluster)) = (&p.node, &p.cluster) {
        if let Some((i, m)) = cluster
            .members
            .iter()
            .enumerate()
            .find(|(_, m)| m.id == node.id)
        {
            let port = m.back_addr.port();
            claim(format!("cluster.members[{i}].back_addr"), port);
            if let Some(hb) = port.checked_add(1) {
                claim(
                    format!("the heartbeat port after cluster.members[{i}].back_addr"),
                    hb,
                );
            }
        }
    }
    claims
}

/// The optional services that are on, in the order they claim ports.
fn services(p: &Parts) -> Vec<Service> {
    let mut on = Vec::new();
    if let Some(t) = p.tls.as_ref().filter(|t| t.enabled) {
        on.push(Service {
            table: "tls",
            name: "HTTPS",
            port: t.port,
            default: super::DEFAULT_TLS_PORT,
        });
    }
    if let Some(r) = p.rtsp.as_ref().filter(|r| r.enabled) {
        on.push(Service {
            table: "rtsp",
            name: "RTSP",
            port: r.port,
            default: super::DEFAULT_RTSP_PORT,
        });
    }
    if let Some(f) = p.ftp.as_ref().filter(|f| f.enabled) {
        on.push(Service {
            table: "ftp",
            name: "FTP",
            port: f.port,
            default: super::DEFAULT_FTP_PORT,
        });
    }
    on
}

/// With FTP on, its passive range holds no claimed port (its own control
/// port included).
fn passive_range_is_free(c: &mut Checker<'_>, root: &Tbl<'_>, p: &Parts, claims: &[Claim]) -> bool {
    let Some(ftp) = p.ftp.as_ref().filter(|f| f.enabled) else {
        return true;
    };
    let mut ok = true;
    for claim in claims.iter().filter(|o| ftp.is_passive_port(o.port)) {
        ok = false;
        let line = super::line_of(c, root, "ftp", "passive_port_min")
            .or_else(|| super::line_of(c, root, "ftp", "enabled"));
        c.problem(
            line,
            "ftp.passive_port_min".to_string(),
            format!(
                "the passive range {}-{} holds {} ({})",
                ftp.passive_port_min, ftp.passive_port_max, claim.what, claim.port
            ),
        );
    }
    ok
}
