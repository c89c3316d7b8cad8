//! The validated configuration of a box, as plain Rust values.
//!
//! Every type here is what [`crate::parse`] hands out after all checks
//! passed; the lab also builds these by hand and writes them out with
//! [`Config::to_toml`]. Defaults live in the `DEFAULT_*` constants so the
//! validator, the example file and the docs quote one number.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// Default `service.port`: plain HTTP.
pub const DEFAULT_SERVICE_PORT: u16 = 80;
/// Default `dataplane.max_connections` and `limits.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 300_000;
/// Default `limits.max_upload_bytes`: 64 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 64 << 20;
/// Default `dataplane.syn_backlog`: half-open connections per box.
pub const DEFAULT_SYN_BACKLOG: usize = 1024;
/// Default `dataplane.tcp_idle_timeout_ms`: as Linux's `tcp_fin_timeout`
/// (60 s), and no shorter than the default HTTP idle timeout, so HTTP
/// closes idle keep-alive connections first.
pub const DEFAULT_TCP_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Default `checkpoint.fast_bytes`.
pub const DEFAULT_FAST_BYTES: u64 = 100_000;
/// Default `checkpoint.slow_bytes`.
pub const DEFAULT_SLOW_BYTES: u64 = 10_000;
/// Default `checkpoint.interval_ms`.
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 200;
/// Default `checkpoint.replication_port` (UDP, back LAN).
pub const DEFAULT_REPLICATION_PORT: u16 = 7400;
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

/// The whole configuration file of one box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[box]`: who this box is (`box` is a Rust keyword, hence `node`).
    pub node: NodeConfig,
    /// `[cluster]`: the boxes that take over from each other.
    pub cluster: ClusterConfig,
    /// `[service]`: the addresses clients connect to.
    pub service: ServiceConfig,
    /// `[dataplane]`: the packet port and its workers.
    pub dataplane: DataplaneConfig,
    /// `[checkpoint]`: the connection checkpoint segment and cadence.
    pub checkpoint: CheckpointConfig,
    /// `[failure]`: heartbeat-based failure detection.
    pub failure: FailureConfig,
    /// `[cache]`: the HTTP cache and its origin.
    pub cache: CacheConfig,
    /// `[limits]`: HTTP and connection limits.
    pub limits: LimitsConfig,
    /// `[admin]`: the admin API.
    pub admin: AdminConfig,
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

/// `[box]`: identity of this box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Box id, 1..=254; must appear in `cluster.members`.
    pub id: u16,
    /// Human name used in logs; defaults to `box{id}`.
    pub name: String,
    /// A tracing `EnvFilter` directive such as `info` or `info,baton=debug`;
    /// `RUST_LOG` overrides it.
    pub log_level: String,
}

/// `[cluster]`: the shared secret and the member list.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Cluster key authenticating heartbeats and replication (>= 32 bytes).
    pub key: Vec<u8>,
    /// Every box of the cluster, this one included.
    pub members: Vec<Member>,
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

/// One box of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Its box id.
    pub id: u16,
    /// Its address on the back LAN (heartbeats, replication).
    pub back_addr: SocketAddr,
}

/// `[service]`: where clients connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Service IPs (v4 or v6) answered by the dataplane; non-empty.
    pub ips: Vec<IpAddr>,
    /// TCP port served on every service IP.
    pub port: u16,
}

/// Which packet I/O backend the dataplane uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Linux AF_PACKET sockets (no special hardware).
    AfPacket,
    /// DPDK poll-mode drivers (built with the `dpdk` feature).
    Dpdk,
}

impl Backend {
    /// The spelling used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::AfPacket => "afpacket",
            Backend::Dpdk => "dpdk",
        }
    }
}

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

/// `[dataplane]`: the packet port and the worker threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// Packet I/O backend.
    pub backend: Backend,
    /// Front interface name (<= 15 bytes).
    pub interface: String,
    /// Number of poll-mode workers, >= 1.
    pub workers: usize,
    /// CPU core of each worker; empty means no pinning.
    pub cores: Vec<usize>,
    /// How workers wait for packets.
    pub poll_mode: PollMode,
    /// Most established connections the box holds.
    pub max_connections: usize,
    /// Most half-open (SYN received) connections.
    pub syn_backlog: usize,
    /// A connection that has received no acceptable segment for this long
    /// and has nothing in flight is closed with a FIN (never a RST);
    /// milliseconds, > 0. In FIN-WAIT-2 it is dropped silently instead.
    pub tcp_idle_timeout_ms: u64,
    /// Source MAC override; `None` uses the interface's own MAC.
    pub mac: Option<MacAddr>,
    /// DPDK settings, `[dataplane.dpdk]`.
    pub dpdk: Option<DpdkConfig>,
}

/// `[dataplane.dpdk]`: settings only the DPDK backend reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkConfig {
    /// Extra EAL arguments, passed as given (after the ones the keys below
    /// imply).
    pub eal_args: Vec<String>,
    /// Use hugepages (false runs EAL with `--no-huge`).
    pub hugepages: bool,
    /// Virtual devices (`--vdev`), e.g. `net_af_packet0,iface=front0`;
    /// empty: `net_af_packet0` on `dataplane.interface` with one queue pair
    /// per worker. The first one carries the workers' queues.
    pub vdevs: Vec<String>,
    /// MiB of memory the EAL reserves (`-m`), 64..=1048576.
    pub memory_mb: u32,
    /// Mbufs in the pool the queues share, 1023..=16777215 (raised to what
    /// the queues' descriptors need if lower).
    pub mbufs: u32,
    /// The EAL's main lcore (`-l`); `None`: the lowest CPU the box may run on.
    pub main_lcore: Option<usize>,
    /// Longest sleep of an idle adaptive worker, in microseconds,
    /// 0..=1000000 (0: never sleeps).
    pub idle_sleep_us: u32,
    /// The EAL's `--log-level`, one of [`DPDK_LOG_LEVELS`].
    pub log_level: String,
}

impl Default for DpdkConfig {
    fn default() -> Self {
        DpdkConfig {
            eal_args: Vec::new(),
            hugepages: false,
            vdevs: Vec::new(),
            memory_mb: DEFAULT_DPDK_MEMORY_MB,
            mbufs: DEFAULT_DPDK_MBUFS,
            main_lcore: None,
            idle_sleep_us: DEFAULT_DPDK_IDLE_SLEEP_US,
            log_level: DEFAULT_DPDK_LOG_LEVEL.to_string(),
        }
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

/// `[checkpoint]`: the connection checkpoint segment and its cadence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// Checkpointing on at all (off: no takeover possible).
    pub enabled: bool,
    /// Absolute path of the segment file (e.g. under /dev/shm).
    pub segment_path: PathBuf,
    /// Slots per box region, >= 1.
    pub slots: u32,
    /// Shared or replicated segment.
    pub mode: SegmentMode,
    /// Checkpoint every this many bytes on fast connections.
    pub fast_bytes: u64,
    /// Checkpoint every this many bytes on slow connections (<= fast_bytes).
    pub slow_bytes: u64,
    /// Checkpoint an idle connection at least this often, milliseconds.
    pub interval_ms: u64,
    /// Hold back ACKs of request bytes until their checkpoint is committed.
    pub ack_after_commit: bool,
    /// UDP port of checkpoint replication on the back LAN.
    pub replication_port: u16,
    /// Where request bodies in flight (uploads) are kept so a survivor can
    /// continue them; `None`: beside the segment, `segment_path` +
    /// `.uploads` (see [`CheckpointConfig::upload_dir`]).
    pub upload_dir: Option<PathBuf>,
}

impl CheckpointConfig {
    /// The upload spool directory: `upload_dir`, else the segment path
    /// with `.uploads` appended (shared by every box that shares the
    /// segment's file system).
    pub fn upload_dir(&self) -> PathBuf {
        self.upload_dir.clone().unwrap_or_else(|| {
            let mut p = self.segment_path.clone().into_os_string();
            p.push(".uploads");
            PathBuf::from(p)
        })
    }
}

/// `[failure]`: heartbeat-based failure detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureConfig {
    /// Heartbeat period, milliseconds (> 0).
    pub heartbeat_interval_ms: u64,
    /// Heartbeats missed in a row before a peer is declared dead (>= 1).
    pub missed: u32,
}

impl Default for FailureConfig {
    fn default() -> Self {
        FailureConfig {
            heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
            missed: DEFAULT_MISSED,
        }
    }
}

impl FailureConfig {
    /// How long a silent peer lives before it is declared dead.
    pub fn detection_ms(&self) -> u64 {
        self.heartbeat_interval_ms
            .saturating_mul(u64::from(self.missed))
    }
}

/// `[cache]`: the HTTP cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Origin URL, `http://host[:port][/path]`.
    pub origin: String,
    /// Memory budget of the cache, bytes.
    pub memory_bytes: u64,
    /// Optional on-disk cache directory.
    pub disk_dir: Option<PathBuf>,
    /// Concurrent origin fetchers.
    pub fetchers: usize,
    /// Origin connect/response timeout, milliseconds.
    pub origin_timeout_ms: u64,
}

impl CacheConfig {
    /// The origin split into host, port and path; `None` when `origin` is
    /// not a valid `http://` URL (never after [`crate::parse`]).
    pub fn origin_url(&self) -> Option<OriginUrl<'_>> {
        OriginUrl::parse(&self.origin).ok()
    }

    /// Origin host (IPv6 without brackets); empty if `origin` is invalid.
    pub fn origin_host(&self) -> &str {
        self.origin_url().map_or("", |u| u.host)
    }

    /// Origin TCP port (80 when the URL names none).
    pub fn origin_port(&self) -> u16 {
        self.origin_url().map_or(80, |u| u.port)
    }

    /// Path prefix of the origin (`/` when the URL names none).
    pub fn origin_path(&self) -> &str {
        self.origin_url().map_or("/", |u| u.path)
    }

    /// The origin as a socket address when its host is an IP literal.
    pub fn origin_socket_addr(&self) -> Option<SocketAddr> {
        let url = self.origin_url()?;
        let ip: IpAddr = url.host.parse().ok()?;
        Some(SocketAddr::new(ip, url.port))
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

/// `[limits]`: HTTP and connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Largest request header block, bytes; beyond it the answer is 431.
    pub max_header_bytes: usize,
    /// Longest request line, bytes; beyond it the answer is 414.
    pub max_request_line: usize,
    /// Close a connection idle this long, milliseconds.
    pub idle_timeout_ms: u64,
    /// Close a connection whose request does not complete in this time, milliseconds.
    pub request_timeout_ms: u64,
    /// Most concurrent HTTP connections served.
    pub max_connections: usize,
    /// Largest request body (upload) accepted, bytes; beyond it the answer
    /// is 413.
    pub max_upload_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_request_line: DEFAULT_MAX_REQUEST_LINE,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
        }
    }
}

/// `[admin]`: the admin API.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where the admin HTTP API listens (kernel stack, back LAN).
    pub listen: SocketAddr,
    /// Bearer token required on every admin request; non-empty.
    pub token: String,
}

impl fmt::Debug for AdminConfig {
    // The token is a secret, like the cluster key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &"<redacted>")
            .finish()
    }
}
