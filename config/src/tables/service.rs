//! `[service]`: the addresses clients connect to.

use std::net::IpAddr;

use crate::convert::*;
use crate::model::*;
use crate::read::{first_duplicate, Checker, Tbl};
use crate::schema::*;

table! {
    /// `[service]`: where clients connect.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ServiceConfig {
        /// Service IPs (v4 or v6) answered by the dataplane; non-empty.
        ips: Vec<IpAddr> = list(parsed("an IP address like 198.18.0.11")),
        /// TCP port served on every service IP.
        port: u16 = or(DEFAULT_SERVICE_PORT, int_in(1, 65535)),
    }
    check = ips_are_given_once;
}

/// At least one service IP, none twice.
fn ips_are_given_once(c: &mut Checker<'_>, t: &Tbl<'_>, p: &mut Parts) -> bool {
    let Some(ips) = &p.ips else {
        return true;
    };
    if ips.is_empty() {
        let line = c.key_line(t, "ips");
        c.problem(line, t.key_path("ips"), "expected at least one IP address");
        return false;
    }
    if let Some(dup) = first_duplicate(ips) {
        let line = c.key_line(t, "ips");
        c.problem(line, t.key_path("ips"), format!("{dup} is listed twice"));
        return false;
    }
    true
}
