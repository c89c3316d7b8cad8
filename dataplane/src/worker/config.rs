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
}

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
        }
    }
}
