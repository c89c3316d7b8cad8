//! Which backend carries the dataplane, with that backend's own settings
//! ([`PortConfig`]), and opening it: the one place that names every
//! backend. Above `port/`, the runtime hands a `PortConfig` to
//! [`PortConfig::open`] with an [`OpenedPorts`] that receives the ports as
//! some `P: Port`, so nothing above this module knows which backend it
//! runs on.

use super::afpacket::{AfPacketConfig, AfPacketPort};
use super::afxdp::{AfXdpConfig, AfXdpPort};
#[cfg(feature = "dpdk")]
use super::dpdk::{DpdkOptions, DpdkPort};
use super::memory::MemoryPort;
use super::{Port, PortError};
use std::fmt;

/// A backend and its settings.
#[derive(Debug)]
pub enum PortConfig {
    /// AF_PACKET rings on a kernel interface (interface, MAC override, ring
    /// layout, slots, offload), one fanout member per worker.
    AfPacket(AfPacketConfig),
    /// An AF_XDP socket on queue 0 of a kernel interface, with the XDP
    /// program that steers its frames (one worker).
    AfXdp(AfXdpConfig),
    /// A DPDK device: the EAL's arguments, the vdev and its queue pairs
    /// (one per worker).
    #[cfg(feature = "dpdk")]
    Dpdk(DpdkOptions),
    /// Ports already made in memory, one per worker (tests, simulations).
    Memory(Vec<MemoryPort>),
}

/// What to do with the ports once a backend opened them: one method,
/// generic over the port type, so the caller never names a backend.
pub trait OpenedPorts {
    /// What [`OpenedPorts::run`] gives back.
    type Output;
    /// Called once with the opened ports, port `i` for worker `i`.
    fn run<P: Port + 'static>(self, ports: Vec<P>) -> Self::Output;
}

impl PortConfig {
    /// The same backend with connections to `steer`'s ports steered to a
    /// worker by port ([`super::fanout::steer`]) when `workers` > 1; a
    /// backend that cannot steer refuses rather than deliver a connection
    /// to a worker that a restore would not pick.
    pub fn with_steer(
        mut self,
        steer: Option<super::PortSteer>,
        workers: usize,
    ) -> Result<Self, PortError> {
        if steer.is_none() || workers <= 1 {
            return Ok(self);
        }
        match &mut self {
            PortConfig::AfPacket(cfg) => cfg.steer = steer,
            // One worker (AF_XDP), or the caller routes frames itself.
            PortConfig::AfXdp(_) | PortConfig::Memory(_) => {}
            #[cfg(feature = "dpdk")]
            PortConfig::Dpdk(_) => return Err(PortError::SteerUnsupported("DPDK")),
        }
        Ok(self)
    }

    /// Opens the backend with one port per worker (`workers`) and hands the
    /// ports to `then`.
    pub fn open<O: OpenedPorts>(self, workers: usize, then: O) -> Result<O::Output, PortError> {
        match self {
            PortConfig::AfPacket(cfg) => Ok(then.run(AfPacketPort::open_group(&cfg, workers)?)),
            PortConfig::AfXdp(cfg) => Ok(then.run(AfXdpPort::open_group(&cfg, workers)?)),
            #[cfg(feature = "dpdk")]
            PortConfig::Dpdk(opts) => Ok(then.run(DpdkPort::open_with(&opts)?)),
            PortConfig::Memory(ports) => Ok(then.run(ports)),
        }
    }
}

impl fmt::Display for PortConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortConfig::AfPacket(c) => write!(f, "AF_PACKET on {}", c.interface),
            PortConfig::AfXdp(c) => write!(f, "AF_XDP on {}", c.interface),
            #[cfg(feature = "dpdk")]
            PortConfig::Dpdk(o) => write!(
                f,
                "DPDK on vdev {} ({})",
                o.vdevs.first().map(String::as_str).unwrap_or("none"),
                if o.hugepages {
                    "hugepages"
                } else {
                    "no hugepages"
                }
            ),
            PortConfig::Memory(p) => write!(f, "{} memory ports", p.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::MacAddr;

    /// Counts the ports it is given, whatever their type.
    struct Count;
    impl OpenedPorts for Count {
        type Output = (usize, MacAddr);
        fn run<P: Port + 'static>(self, ports: Vec<P>) -> Self::Output {
            (ports.len(), ports[0].mac())
        }
    }

    #[test]
    fn memory_ports_reach_the_caller_as_any_port() {
        let mac = MacAddr([2, 0, 0, 0, 0, 2]);
        let (_wire, port) = MemoryPort::pair(MacAddr([2, 0, 0, 0, 0, 1]), mac);
        let cfg = PortConfig::Memory(vec![port]);
        assert_eq!(cfg.to_string(), "1 memory ports");
        assert_eq!(cfg.open(1, Count).expect("memory opens"), (1, mac));
    }

    #[test]
    fn an_af_packet_port_on_a_missing_interface_says_so() {
        let cfg = PortConfig::AfPacket(AfPacketConfig::new("bt-no-such-if"));
        assert_eq!(cfg.to_string(), "AF_PACKET on bt-no-such-if");
        assert!(matches!(cfg.open(1, Count), Err(PortError::NoInterface(_))));
    }

    #[test]
    fn an_af_xdp_port_on_a_missing_interface_says_so() {
        let cfg = PortConfig::AfXdp(AfXdpConfig::new("bt-no-such-if"));
        assert_eq!(cfg.to_string(), "AF_XDP on bt-no-such-if");
        assert!(matches!(cfg.open(1, Count), Err(PortError::NoInterface(_))));
    }

    #[test]
    fn an_af_xdp_port_refuses_more_than_one_worker() {
        let cfg = PortConfig::AfXdp(AfXdpConfig::new("lo"));
        let e = cfg.open(2, Count).unwrap_err();
        assert!(
            matches!(
                e,
                PortError::AfXdp(crate::port::afxdp::AfXdpError::OneWorker(2))
            ),
            "{e}"
        );
    }
}
