//! Ports: the ways a worker moves bursts of Ethernet frames in and out.
//!
//! A [`Port`] hands the worker a burst of received frames (borrowed from
//! the port's memory, e.g. an mmap'ed ring block, valid only for the call)
//! and sends a [`TxBatch`] of frames the worker built in its own buffers.
//! Nothing above this module knows which backend it runs on:
//!
//! - [`afpacket`]: Linux AF_PACKET, TPACKET_V3 mmap RX ring, `sendmmsg` TX,
//!   workers sharing one interface through `PACKET_FANOUT_CBPF`.
//! - [`afxdp`]: Linux AF_XDP, a UMEM and four rings shared with the
//!   kernel, frames steered to the socket by a five-instruction XDP
//!   program loaded with bpf(2).
//! - `dpdk` (cargo feature `dpdk`): a DPDK poll-mode driver through the
//!   system's libdpdk, one queue pair per worker; the EAL start-up lives
//!   there too.
//! - [`memory`]: an in-memory pair of ports, for tests.
//!
//! [`PortConfig`] names a backend with its settings and opens it
//! ([`config`]): the dataplane's runtime starts every backend through it.
//!
//! [`fanout`] holds the flow-to-worker rule ([`worker_for`]) and the
//! classic BPF program that makes the kernel apply the same rule.
//!
//! # Example: a worker's receive/send step
//!
//! ```
//! use baton_dataplane::port::{memory::MemoryPort, Port, TxBatch};
//! use baton_dataplane::wire::ethernet::MacAddr;
//!
//! let (mut wire, mut port) = MemoryPort::pair(MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
//! let mut tx = TxBatch::new();
//! tx.push(&[0xab; 60]);
//! wire.tx_burst(&mut tx).unwrap();
//! let mut seen = 0;
//! port.rx_burst(32, |frame, meta| {
//!     assert_eq!(frame.len(), 60);
//!     assert!(!meta.checksum_trusted);
//!     seen += 1;
//! }).unwrap();
//! assert_eq!(seen, 1);
//! ```

pub mod afpacket;
pub mod afxdp;
pub mod config;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod fanout;
pub mod memory;
mod sleep;

pub use config::{OpenedPorts, PortConfig};
pub use fanout::{worker_for, worker_for_remote, worker_for_steered, PortSteer};

use crate::wire::ethernet::MacAddr;
use std::os::fd::RawFd;
use std::time::Duration;
use thiserror::Error;

/// Largest frame a TX buffer holds: Ethernet header + 1500-byte MTU, with
/// room to spare for a VLAN tag we never add today.
pub const MAX_FRAME: usize = 1536;

/// What the port knows about a received frame besides its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// The kernel verified the L4 checksum, or the frame came from a local
    /// sender that left it to offload (a veth peer: `TP_STATUS_CSUMNOTREADY`),
    /// so the bytes in the checksum field must not be checked.
    pub checksum_trusted: bool,
}

/// Errors of a port.
#[derive(Debug, Error)]
pub enum PortError {
    /// A system call failed.
    #[error("{call}: {source}")]
    Os {
        /// The call that failed.
        call: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The interface does not exist.
    #[error("no such interface: {0}")]
    NoInterface(String),
    /// An AF_XDP port could not be opened (privilege, kernel, attach).
    #[error(transparent)]
    AfXdp(#[from] afxdp::AfXdpError),
    /// The other end of an in-memory port is gone.
    #[error("port disconnected")]
    Disconnected,
    /// The backend cannot steer connections by port (see
    /// [`PortConfig::with_steer`]).
    #[error("{0} cannot steer connections by port (FTP's passive range over several workers)")]
    SteerUnsupported(&'static str),
}

impl PortError {
    pub(crate) fn last_os(call: &'static str) -> PortError {
        PortError::Os {
            call,
            source: std::io::Error::last_os_error(),
        }
    }
}

/// Offload requests of one TX frame, for ports that can honour them
/// ([`Port::tx_offload`]); all zero for a plain frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOffload {
    /// The frame is one large TCP/IPv4 segment to be cut into segments of
    /// this many payload bytes (GSO, the kernel's `SKB_GSO_TCPV4`); 0: none.
    pub gso_size: u16,
    /// Offset of the L4 header whose checksum the port must complete
    /// (the field holds the pseudo-header sum); 0: the frame is complete.
    pub csum_start: u16,
    /// Offset of the checksum field from `csum_start`.
    pub csum_offset: u16,
    /// Length of all headers (Ethernet, IP, TCP with options), for GSO.
    pub hdr_len: u16,
    /// The segment is TCP over IPv6 (GSO type `SKB_GSO_TCPV6`).
    pub ipv6: bool,
}

/// A batch of frames to send, built in reusable buffers owned by the
/// worker: after the first bursts no TX allocates.
#[derive(Debug, Default)]
pub struct TxBatch {
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    offload: Vec<TxOffload>,
}

impl TxBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of frames queued.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// True when no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// A zeroed-or-stale buffer of [`MAX_FRAME`] bytes for the next frame;
    /// the frame is queued only by [`TxBatch::commit`].
    pub fn next_buf(&mut self) -> &mut [u8] {
        self.next_buf_sized(MAX_FRAME)
    }

    /// A buffer of at least `len` bytes for the next frame (a GSO frame is
    /// up to 64 KiB).
    pub fn next_buf_sized(&mut self, len: usize) -> &mut [u8] {
        let i = self.lens.len();
        if i == self.bufs.len() {
            self.bufs.push(Vec::new());
        }
        let b = &mut self.bufs[i];
        if b.len() < len.max(MAX_FRAME) {
            b.resize(len.max(MAX_FRAME), 0);
        }
        &mut b[..]
    }

    /// Queues the frame written into the last [`TxBatch::next_buf`]
    /// (its first `len` bytes).
    pub fn commit(&mut self, len: usize) {
        self.commit_offload(len, TxOffload::default());
    }

    /// Queues the frame written into the last buffer, with offload requests.
    pub fn commit_offload(&mut self, len: usize, offload: TxOffload) {
        let cap = self.bufs.get(self.lens.len()).map_or(0, |b| b.len());
        self.lens.push(len.min(cap));
        self.offload.push(offload);
    }

    /// Copies `frame` into the batch (tests and rare control frames).
    pub fn push(&mut self, frame: &[u8]) {
        let n = frame.len();
        self.next_buf_sized(n)[..n].copy_from_slice(frame);
        self.commit(n);
    }

    /// The queued frames in order.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs.iter().zip(&self.lens).map(|(b, &l)| &b[..l])
    }

    /// The queued frames with their offload requests.
    pub fn frames_offload(&self) -> impl Iterator<Item = (&[u8], TxOffload)> {
        self.frames().zip(self.offload.iter().copied())
    }

    /// Forgets the queued frames, keeping the buffers.
    pub fn clear(&mut self) {
        self.lens.clear();
        self.offload.clear();
    }
}

/// A way to receive and send bursts of Ethernet frames.
pub trait Port: Send {
    /// The MAC address frames are sent from.
    fn mac(&self) -> MacAddr;

    /// Calls `f` for up to `max` received frames (borrowed until `f`
    /// returns); returns how many. Never blocks.
    fn rx_burst<F: FnMut(&[u8], RxMeta)>(&mut self, max: usize, f: F) -> Result<usize, PortError>;

    /// Sends every frame of `batch` and clears it; returns how many frames
    /// the port accepted (the rest were dropped: TCP will retransmit).
    fn tx_burst(&mut self, batch: &mut TxBatch) -> Result<usize, PortError>;

    /// Blocks until a frame may be ready, `wake` (an eventfd, see
    /// [`crate::worker::Waker`]) becomes readable, or `timeout` passes
    /// (`None`: no timeout). Spurious wake-ups are allowed.
    fn wait(&mut self, timeout: Option<Duration>, wake: Option<RawFd>) -> Result<(), PortError>;

    /// The file descriptor a poll(2) loop can wait on, if the backend has one.
    fn raw_fd(&self) -> Option<RawFd>;

    /// True if [`Port::tx_burst`] honours [`TxOffload`] (partial TCP
    /// checksums, GSO frames). Without it every frame must be complete and
    /// at most MTU-sized.
    fn tx_offload(&self) -> bool {
        false
    }

    /// Frames the port dropped because it could hold only part of them
    /// (a running total, reported as `drop_rx_truncated`).
    fn rx_truncated(&self) -> u64 {
        0
    }

    /// Frames too large for the receive ring's slot that the port still
    /// received whole (a running total, reported as `rx_oversized`).
    fn rx_oversized(&self) -> u64 {
        0
    }

    /// Frames the kernel or the device dropped because the receive ring
    /// was full (a running total): the sign that the worker fell behind,
    /// e.g. when thousands of restored connections answer their probes at
    /// once. Ports that cannot tell return 0.
    fn rx_ring_drops(&self) -> u64 {
        0
    }
}
