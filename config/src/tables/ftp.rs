//! `[ftp]`: the read-only anonymous FTP service on the service IPs (issue
//! 17, docs/FTP.md): the control port, the passive data port range and the
//! control connection's limits.
//!
//! This module judges the keys as written and the range's order; that the
//! ports are no other service's is the root's rule (`ports::ports_have_one_owner`,
//! called from `super::cluster_rules`). It knows nothing of the FTP crate.

use crate::convert::*;
use crate::read::{Checker, Tbl};
use crate::schema::*;

/// Default `ftp.port`.
pub const DEFAULT_FTP_PORT: u16 = 21;

table! {
    /// `[ftp]`: read-only anonymous FTP on the service IPs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct FtpConfig: Default {
        /// Serve FTP at all (issue 17; not taken over yet).
        enabled: bool = or(false, boolean),
        /// TCP port of the FTP control connection on every service IP.
        port: u16 = or(DEFAULT_FTP_PORT, int_in(1, 65535)),
        /// First passive (PASV/EPSV) data port (1024..=65535).
        passive_port_min: u16 = or(40000, int_in(1024, 65535)),
        /// Last passive data port (>= passive_port_min).
        passive_port_max: u16 = or(40999, int_in(1024, 65535)),
        /// Longest command line accepted, bytes without CRLF (16..=4096).
        max_command_bytes: u32 = or(512, int_in(16, 4096)),
        /// Idle time before a control connection is closed with 421, milliseconds (> 0).
        idle_timeout_ms: u64 = or(300_000, positive),
    }
    check = ftp_rules;
}

fn ftp_rules(c: &mut Checker<'_>, t: &Tbl<'_>, p: &mut Parts) -> bool {
    if let (Some(lo), Some(hi)) = (p.passive_port_min, p.passive_port_max) {
        if lo > hi {
            let line = c.key_line(t, "passive_port_max");
            c.problem(
                line,
                t.key_path("passive_port_max"),
                format!(
                    "{hi} is below ftp.passive_port_min ({lo}): the passive range would be empty"
                ),
            );
            return false;
        }
    }
    true
}

impl FtpConfig {
    /// Whether `port` is one of the passive data ports.
    pub fn is_passive_port(&self, port: u16) -> bool {
        (self.passive_port_min..=self.passive_port_max).contains(&port)
    }
}
