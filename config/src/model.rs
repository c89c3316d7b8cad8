//! The values of single keys (enums, MAC addresses, origin URLs) and the
//! defaults and limits of the schema, as plain Rust values.
//!
//! The tables that hold them are declared in `crate::tables`; the
//! `DEFAULT_*` constants live here so the declarations, the example file
//! and the docs quote one number. Nothing here reads TOML.

use std::fmt;
use std::str::FromStr;

/// Default `service.port`: plain HTTP.
pub const DEFAULT_SERVICE_PORT: u16 = 80;
/// Default `dataplane.max_connections` and `limits.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 300_000;
/// Default `dataplane.max_connections_per_client`: one address holding
/// more than this is refused new connections. High on purpose: clients
/// behind a CGNAT share one address, and a load test from one client opens
/// thousands (the lab's hostile HTTP test ~3,000).
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 8192;
/// Default `limits.max_upload_bytes`: 64 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 64 << 20;
/// Default `dataplane.syn_backlog`: half-open connections per box.
pub const DEFAULT_SYN_BACKLOG: usize = 1024;
/// Default `dataplane.tcp_idle_timeout_ms`: as Linux's `tcp_fin_timeout`
/// (60 s), and no shorter than the default HTTP idle timeout, so HTTP
/// closes idle keep-alive connections first.
pub const DEFAULT_TCP_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Default `dataplane.tcp_buffer_budget`, per worker: 512 MiB holds 2,000
/// connections at their full 256 KiB send and receive buffers, and a box of
/// 300,000 connections over a few workers ~5 KB a connection on average,
/// far more than a LAN's bandwidth-delay product needs; past it every
/// connection is held to 16 KiB sent and 4 KiB received, not cut off.
pub const DEFAULT_TCP_BUFFER_BUDGET: u64 = 512 << 20;
/// Smallest `dataplane.tcp_buffer_budget`: below it a few connections
/// would spend it and hold everyone to the floors.
pub const MIN_TCP_BUFFER_BUDGET: u64 = 1 << 20;
/// Default `cache.max_fetches`: origin fetches queued or running at once.
pub const DEFAULT_MAX_FETCHES: usize = 1024;
/// Default `checkpoint.fast_bytes`.
pub const DEFAULT_FAST_BYTES: u64 = 100_000;
/// Largest (and default) checkpoint slot, bytes (`baton_shmem::SLOT_SIZE`):
/// room for any record a box writes, an HTTPS one with its TLS state too.
pub const MAX_SLOT_BYTES: u32 = 768;
/// Smallest checkpoint slot, bytes (`baton_shmem::MIN_SLOT_SIZE`): holds a
/// plain HTTP connection's record while it rests.
pub const MIN_SLOT_BYTES: u32 = 320;
/// Checkpoint slot sizes are multiples of this (`baton_shmem::SLOT_SIZE_STEP`).
pub const SLOT_BYTES_STEP: u32 = 64;
/// Default `checkpoint.slow_bytes`.
pub const DEFAULT_SLOW_BYTES: u64 = 10_000;
/// Default `checkpoint.interval_ms`.
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 200;
/// Default `checkpoint.park_idle_after_ms`: an idle keep-alive connection
/// is kept as its checkpoint alone after 5 s at rest (issue 19).
pub const DEFAULT_PARK_IDLE_AFTER_MS: u64 = 5_000;
/// Default `checkpoint.replication_port` (UDP, back LAN).
pub const DEFAULT_REPLICATION_PORT: u16 = 7400;
/// Default `raft.port` (UDP, back LAN).
pub const DEFAULT_RAFT_PORT: u16 = 7402;
/// Default `raft.heartbeat_ms`.
pub const DEFAULT_RAFT_HEARTBEAT_MS: u64 = 50;
/// Default `raft.election_min_ms`. openraft 0.9 lets a follower stand
/// only after `election_max_ms` (its leader's lease) plus a random
/// timeout: 300–400 ms of silence, far above the 80–120 ms machine stalls
/// the soak saw.
pub const DEFAULT_RAFT_ELECTION_MIN_MS: u64 = 100;
/// Default `raft.election_max_ms`.
pub const DEFAULT_RAFT_ELECTION_MAX_MS: u64 = 200;
/// Default `raft.lease_ms`: a new leader proves its quorum at most
/// 2 × 200 ms after the last heartbeat (itself up to 100 ms old), plus
/// room for a split vote or a stall: a leader's crash must not fence
/// the survivors.
pub const DEFAULT_RAFT_LEASE_MS: u64 = 800;
/// Default `raft.startup_grace_ms`.
pub const DEFAULT_RAFT_STARTUP_GRACE_MS: u64 = 10_000;
/// Default `failure.heartbeat_interval_ms`.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 30;
/// Default `failure.missed`: heartbeats missed before a peer is declared dead.
pub const DEFAULT_MISSED: u32 = 3;
/// Default `cache.fetchers`.
pub const DEFAULT_FETCHERS: usize = 4;
/// Default `cache.origin_timeout_ms`.
pub const DEFAULT_ORIGIN_TIMEOUT_MS: u64 = 5000;
/// Default `limits.max_header_bytes` (a bigger header block gets 431, RFC 6585 §5).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16_384;
/// Default `limits.max_request_line` (a longer request line gets 414, RFC 9110 §15.5.15).
pub const DEFAULT_MAX_REQUEST_LINE: usize = 8192;
/// Default `limits.idle_timeout_ms`.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Default `limits.request_timeout_ms`.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Default `box.log_level`.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// `dataplane.dpdk.memory_mb`: MiB the DPDK EAL reserves (`-m`).
pub const DEFAULT_DPDK_MEMORY_MB: u32 = 256;
/// `dataplane.dpdk.mbufs`: mbufs in the pool the queues share (2^k - 1
/// suits the pool's ring).
pub const DEFAULT_DPDK_MBUFS: u32 = 8191;
/// `dataplane.dpdk.idle_sleep_us`: longest sleep of an idle adaptive
/// worker on DPDK, in microseconds (DPDK has no descriptor to block on).
pub const DEFAULT_DPDK_IDLE_SLEEP_US: u32 = 1000;
/// `dataplane.dpdk.log_level`: the EAL's `--log-level`.
pub const DEFAULT_DPDK_LOG_LEVEL: &str = "notice";
/// The EAL log levels `dataplane.dpdk.log_level` accepts, least verbose first.
pub const DPDK_LOG_LEVELS: &[&str] = &[
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];
/// Smallest cluster key, in bytes: 256 bits, the HMAC-SHA256 block of security.
pub const MIN_KEY_BYTES: usize = 32;
/// Longest interface name Linux accepts (IFNAMSIZ - 1 for the NUL).
pub const MAX_INTERFACE_NAME: usize = 15;

/// Which packet I/O backend the dataplane uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Linux AF_PACKET sockets (no special hardware).
    AfPacket,
    /// DPDK poll-mode drivers (built with the `dpdk` feature).
    Dpdk,
    /// Linux AF_XDP sockets fed by an XDP program (one worker today).
    AfXdp,
}

impl Backend {
    /// The spelling used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::AfPacket => "afpacket",
            Backend::Dpdk => "dpdk",
            Backend::AfXdp => "afxdp",
        }
    }
}

/// How a dead box's connections are split over the survivors
/// (`takeover.assignment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Assignment {
    /// Slot `s` to survivor `s mod n` (the default, load-blind).
    RoundRobin,
    /// Slots weighted by each survivor's spare capacity (issue 20).
    LeastLoaded,
}

impl Assignment {
    /// The spelling used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Assignment::RoundRobin => "round_robin",
            Assignment::LeastLoaded => "least_loaded",
        }
    }
}

/// Default `takeover.capacity`: connections a box is sized for.
pub const DEFAULT_TAKEOVER_CAPACITY: u64 = 100_000;

/// Default `takeover.park_idle_above`: idle connections in a survivor's
/// share of a takeover beyond which they wait for their clients (twice
/// what a worker's restore window admits at once).
pub const DEFAULT_PARK_IDLE_ABOVE: u64 = 4_096;

/// Default `takeover.idle_restore_after_ms`: how long parked idle
/// connections wait for their clients (longer than the 15 s over which
/// the 300,000-connection benchmark's clients ask again).
pub const DEFAULT_IDLE_RESTORE_AFTER_MS: u64 = 20_000;

/// Default `balance.threshold`: connections apart before boxes rebalance.
pub const DEFAULT_BALANCE_THRESHOLD: u64 = 1_000;
/// Default `balance.rate`: connections one box moves per second.
pub const DEFAULT_BALANCE_RATE: u64 = 100;
/// Default `balance.interval_ms`: how often the loads are looked at.
pub const DEFAULT_BALANCE_INTERVAL_MS: u64 = 1_000;

/// How the workers wait for packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PollMode {
    /// Spin forever: lowest latency, a full core per worker.
    Busy,
    /// Spin while busy, back off (sleep) when idle.
    Adaptive,
}

impl PollMode {
    /// The spelling used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            PollMode::Busy => "busy",
            PollMode::Adaptive => "adaptive",
        }
    }
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Why a MAC address string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a MAC address like 02:ba:70:00:00:01, found {0:?}")]
pub struct BadMac(pub String);

impl FromStr for MacAddr {
    type Err = BadMac;

    /// Six two-digit hex octets separated by `:` or `-`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMac(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            // from_str_radix alone would take "+1".
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

/// How boxes see each other's checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentMode {
    /// One segment every box maps (same host or shared memory fabric).
    Shared,
    /// Each box keeps a local segment and replicates writes to peers over UDP.
    Replicated,
}

impl SegmentMode {
    /// The spelling used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentMode::Shared => "shared",
            SegmentMode::Replicated => "replicated",
        }
    }
}

/// Why an origin URL was refused: the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadOrigin(pub String);

/// An `http://host[:port][/path]` URL, borrowed from the string it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginUrl<'a> {
    /// Host name or IP literal (IPv6 without the brackets).
    pub host: &'a str,
    /// Port, 80 when absent (RFC 9110 §4.2.1).
    pub port: u16,
    /// Path, `/` when absent.
    pub path: &'a str,
}

impl<'a> OriginUrl<'a> {
    /// Splits an origin URL. Only `http` is accepted: the cache talks plain
    /// HTTP/1.1 to its origin on the back LAN. Userinfo, query and fragment
    /// are refused because they cannot be meant for a fetch prefix.
    pub fn parse(s: &'a str) -> Result<OriginUrl<'a>, BadOrigin> {
        Self::split(s).map_err(BadOrigin)
    }

    fn split(s: &'a str) -> Result<OriginUrl<'a>, String> {
        let rest = match s.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("http://") => &s[7..],
            _ => {
                return Err(format!(
                    "expected an http://host[:port][/path] URL, found {s:?}"
                ))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!("user info is not allowed in the origin URL {s:?}"));
        }
        if path.contains(['?', '#']) || authority.contains(['?', '#']) {
            return Err(format!(
                "query or fragment is not allowed in the origin URL {s:?}"
            ));
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("the origin URL path contains whitespace: {s:?}"));
        }
        // RFC 3986 §3.2.2: an IPv6 literal is bracketed so its colons are
        // not taken for the port separator.
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| format!("unclosed '[' in the origin URL {s:?}"))?;
            let host = &v6[..end];
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("bad IPv6 address {host:?} in the origin URL"));
            }
            let after = &v6[end + 1..];
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("unexpected {p:?} after ']' in the origin URL"))?,
                ),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("the origin URL {s:?} has no host"));
        }
        // Bracketed hosts were checked as IPv6 above; anything else is an
        // IPv4 literal or a DNS name (RFC 1123 §2.1 characters).
        if !authority.starts_with('[')
            && !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(format!("bad host {host:?} in the origin URL"));
        }
        let port = match port {
            None => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(format!(
                        "bad port {p:?} in the origin URL (expected 1..=65535)"
                    ))
                }
            },
        };
        Ok(OriginUrl { host, port, path })
    }
}
