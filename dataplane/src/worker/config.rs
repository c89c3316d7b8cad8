//! What a worker is told when it starts: its index, the addresses and
//! ports it serves, its limits and how it waits for packets.

use crate::tcp::TcpConfig;
use std::net::IpAddr;

/// How a worker waits for packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollMode {
    /// Spin on the ring forever: lowest latency, one full core per worker.
    Busy,
    /// Spin while there is work; after `spins` empty polls, block in
    /// poll(2) until a packet or the next timer (so several boxes share
    /// a small machine).
    Adaptive {
        /// Empty polls before blocking.
        spins: u32,
    },
}

/// An empty UDP port range: the worker takes no UDP.
#[allow(clippy::reversed_empty_ranges)]
pub const NO_UDP_PORTS: std::ops::RangeInclusive<u16> = 1..=0;

/// What a worker needs besides its port and app.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This worker's index.
    pub id: usize,
    /// Workers sharing the interface.
    pub n_workers: usize,
    /// Addresses we own.
    pub service_ips: Vec<IpAddr>,
    /// TCP ports we accept on.
    pub listen_ports: Vec<u16>,
    /// Largest IP packet we send.
    pub mtu: usize,
    /// Connection limit.
    pub max_connections: usize,
    /// Connections one client address may hold on this worker; its SYNs
    /// beyond are dropped (restored connections are never refused).
    pub max_connections_per_client: usize,
    /// Half-open limit before SYN cookies.
    pub syn_backlog: usize,
    /// TCP tunables.
    pub tcp: TcpConfig,
    /// ISN and cookie key.
    pub cookie_secret: [u8; 16],
    /// How to wait.
    pub poll_mode: PollMode,
    /// Frames per RX burst.
    pub rx_burst: usize,
    /// UDP ports we take datagrams on (empty: no UDP service).
    pub udp_ports: std::ops::RangeInclusive<u16>,
    /// UDP flows this worker holds at most.
    pub max_udp_flows: usize,
    /// A UDP flow idle this long is forgotten.
    pub udp_idle_timeout: std::time::Duration,
    /// Restored connections that may wait at once for their client's
    /// answer to the takeover probe while they are young (restored less
    /// than 300 ms ago: probed every ~50 ms; `worker/unready.rs`); the
    /// control core's further restores queue in the worker until answers
    /// or age make room (connections a client frame names are restored at
    /// once regardless). See [`DEFAULT_RESTORE_WINDOW`].
    pub restore_window: usize,
}

/// The default [`WorkerConfig::restore_window`]. Every waiting connection
/// is probed again every 50 ms or so until it answers: with 50,000 restored
/// within ~1 s per survivor, up to ~1,000,000 probes a second (estimated),
/// the heir's ring dropped 1.2 million frames, readiness took 3-5 s and
/// ~2 % gave up (100,000-connection kill, BENCHMARKS.md "Issue 19: 100,000
/// and 300,000 taken over"). 2,048 young ones bound the retries to ~40,000
/// probes a second per worker (2,048 per 50 ms) and did not slow a
/// 10,000-connection takeover (kill -> resume p99 302 ms).
pub const DEFAULT_RESTORE_WINDOW: usize = 2048;

impl WorkerConfig {
    /// A single-worker configuration for tests: `ips` on port 80.
    pub fn for_test(ips: Vec<IpAddr>) -> Self {
        WorkerConfig {
            id: 0,
            n_workers: 1,
            service_ips: ips,
            listen_ports: vec![80],
            mtu: 1500,
            max_connections: 1000,
            max_connections_per_client: 1000,
            syn_backlog: 128,
            tcp: TcpConfig::default(),
            cookie_secret: [7; 16],
            poll_mode: PollMode::Busy,
            rx_burst: 64,
            udp_ports: NO_UDP_PORTS,
            max_udp_flows: 1000,
            udp_idle_timeout: std::time::Duration::from_secs(60),
            restore_window: DEFAULT_RESTORE_WINDOW,
        }
    }
}
