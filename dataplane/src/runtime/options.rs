//! What the runtime is told ([`DataplaneOptions`]) and what can go wrong
//! starting or running the dataplane ([`DataplaneError`]).

use crate::port::PortError;
use crate::tcp::TcpConfig;
use crate::worker::PollMode;
use std::net::IpAddr;
use thiserror::Error;

/// Everything the workers need to run, whatever the port; the appliance
/// builds it from its configuration file. The port's own settings
/// (interface, MAC, rings, EAL) are the backend's, in
/// [`crate::port::PortConfig`].
#[derive(Clone, Debug)]
pub struct DataplaneOptions {
    /// Number of workers (threads).
    pub workers: usize,
    /// Cores to pin worker `i` to (`cores[i]`); empty: no pinning.
    pub cores: Vec<usize>,
    /// How workers wait.
    pub poll_mode: PollMode,
    /// Addresses we answer ARP, ICMP and TCP for.
    pub service_ips: Vec<IpAddr>,
    /// TCP ports we accept connections on; others get a RST.
    pub listen_ports: Vec<u16>,
    /// Link MTU: IP packets we send are at most this long.
    pub mtu: usize,
    /// Connections per worker at most; SYNs beyond are dropped and counted.
    pub max_connections: usize,
    /// Connections per worker one client address may hold; its SYNs beyond
    /// are dropped and counted (restored connections are never refused).
    pub max_connections_per_client: usize,
    /// Half-open connections per worker before SYN cookies take over.
    pub syn_backlog: usize,
    /// TCP tunables.
    pub tcp: TcpConfig,
    /// Key of ISNs and SYN cookies; random when `None`.
    pub cookie_secret: Option<[u8; 16]>,
    /// Frames taken from the port per burst.
    pub rx_burst: usize,
    /// UDP ports datagrams are taken on (the app's [`crate::app::App::on_datagram`]);
    /// empty ([`crate::worker::NO_UDP_PORTS`]): no UDP service.
    pub udp_ports: std::ops::RangeInclusive<u16>,
    /// Local ports whose connections go to a worker by port rather than
    /// by the client's hash (FTP's passive range, issue 17;
    /// [`crate::port::fanout::steer`]). Applied by the port's fanout
    /// (AF_PACKET; one-worker backends need none) and by restores.
    pub steer: Option<crate::port::PortSteer>,
}

impl DataplaneOptions {
    /// Defaults for serving `service_ips` on port 80: one worker, adaptive
    /// polling, no pinning.
    pub fn new(service_ips: Vec<IpAddr>) -> Self {
        DataplaneOptions {
            workers: 1,
            cores: Vec::new(),
            poll_mode: PollMode::Adaptive { spins: 200 },
            service_ips,
            listen_ports: vec![80],
            mtu: 1500,
            max_connections: 300_000,
            max_connections_per_client: 8192,
            syn_backlog: 1024,
            tcp: TcpConfig::default(),
            cookie_secret: None,
            rx_burst: 64,
            udp_ports: crate::worker::NO_UDP_PORTS,
            steer: None,
        }
    }
}

/// Errors of starting or running the dataplane.
#[derive(Debug, Error)]
pub enum DataplaneError {
    /// Opening or using a port failed.
    #[error("port: {0}")]
    Port(#[from] PortError),
    /// The options are inconsistent.
    #[error("bad dataplane options: {0}")]
    Options(String),
    /// Pinning a worker to its core failed.
    #[error("worker {worker}: cannot pin to core {core}: {source}")]
    Pin {
        /// The worker.
        worker: usize,
        /// The core.
        core: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread panicked.
    #[error("worker {0} panicked")]
    WorkerPanicked(usize),
    /// A worker is no longer running.
    #[error("worker {0} is not running")]
    WorkerGone(usize),
}

/// Refuses options no backend can run, before any port is opened.
pub(super) fn check_options(opts: &DataplaneOptions) -> Result<(), DataplaneError> {
    if opts.workers == 0 {
        return Err(DataplaneError::Options("workers must be at least 1".into()));
    }
    if !opts.cores.is_empty() && opts.cores.len() < opts.workers {
        return Err(DataplaneError::Options(format!(
            "{} workers but only {} cores listed",
            opts.workers,
            opts.cores.len()
        )));
    }
    if opts.mtu < 576 || opts.mtu > crate::port::MAX_FRAME - 14 {
        return Err(DataplaneError::Options(format!(
            "MTU {} out of range",
            opts.mtu
        )));
    }
    Ok(())
}
