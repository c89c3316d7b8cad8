//! The settings of an AF_PACKET port and its ring layout.

use super::abi::{V2_DEFAULT_SLOT, V2_DEFAULT_SLOTS};
use crate::wire::ethernet::MacAddr;

/// Which TPACKET ring layout receives frames (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RxRing {
    /// Block-based (TPACKET_V3): fewer wake-ups, up to `block_timeout_ms`
    /// of added latency at low rates.
    V3,
    /// Frame-based (TPACKET_V2): each frame visible at once.
    #[default]
    V2,
}

/// Settings of an AF_PACKET port.
#[derive(Clone, Debug)]
pub struct AfPacketConfig {
    /// Interface to bind to, e.g. `front0`.
    pub interface: String,
    /// V3: RX ring block size in bytes (a multiple of the page size, power
    /// of two).
    pub block_size: u32,
    /// V3: RX ring blocks.
    pub block_count: u32,
    /// V2: bytes per slot (header included); a frame longer than a slot
    /// minus ~80 bytes of header is read whole from the socket's queue
    /// instead (`rx_oversized`), or dropped and counted
    /// (`drop_rx_truncated`) when that queue is full.
    pub slot_size: u32,
    /// V2: slots in the ring (rounded up to whole blocks).
    pub slots: u32,
    /// Milliseconds after which the kernel retires a partly filled block.
    pub block_timeout_ms: u32,
    /// Source MAC to use instead of the interface's.
    pub mac_override: Option<MacAddr>,
    /// Ring layout.
    pub ring: RxRing,
    /// Send through a second socket with `PACKET_VNET_HDR`, so TCP
    /// checksums are left to the device and large segments to GSO (see
    /// the module doc). Falls back to plain sends if the kernel refuses.
    pub tx_offload: bool,
    /// Ports steered to a worker by port in the fanout program (set by
    /// [`crate::port::PortConfig::with_steer`]).
    pub steer: Option<crate::port::PortSteer>,
}

impl AfPacketConfig {
    /// Defaults for `interface`: a TPACKET_V2 ring of 8,192 slots of 2 KiB
    /// (16 MiB: a burst of thousands of small frames fits; GRO/TSO frames
    /// come through the socket's queue), or as V3 32 blocks of 256 KiB with
    /// a 1 ms block timeout; TX offload on.
    pub fn new(interface: &str) -> Self {
        AfPacketConfig {
            interface: interface.to_string(),
            block_size: 1 << 18,
            block_count: 32,
            slot_size: V2_DEFAULT_SLOT,
            slots: V2_DEFAULT_SLOTS,
            block_timeout_ms: 1,
            mac_override: None,
            ring: RxRing::V2,
            tx_offload: true,
            steer: None,
        }
    }
}
