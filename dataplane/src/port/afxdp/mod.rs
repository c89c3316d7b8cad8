//! AF_XDP port: frames move between the interface and a UMEM we share
//! with the kernel through four rings (fill, RX, TX, completion; the
//! kernel's Documentation/networking/af_xdp.rst), steered to our socket
//! by a tiny XDP program ([`program`]) instead of being copied out of the
//! kernel's stack as AF_PACKET's are.
//!
//! - Memory: a UMEM of 4 KiB chunks ([`umem`]); the first `rx_frames`
//!   chunks circulate between the fill ring, the kernel and the RX ring,
//!   the rest are ours for sending and come back through the completion
//!   ring. A received frame is lent to the worker straight from its chunk
//!   and the chunk goes back on the fill ring in the same burst.
//! - TX: the worker builds frames in its [`TxBatch`](crate::port::TxBatch)
//!   as for every port; they are copied into TX chunks (one copy, as
//!   AF_PACKET's `sendmmsg` makes) and a `sendto` wakes the kernel. No
//!   checksum or segmentation offload ([`Port::tx_offload`](crate::port::Port::tx_offload)
//!   is false): frames are complete and MTU-sized.
//! - Modes: the program goes on the driver's XDP hook when it has one
//!   (veth does; the peer's GSO is then switched off by the kernel, so
//!   frames arrive MTU-sized) and on generic XDP otherwise. The socket is
//!   bound without forcing a mode: the kernel uses zero-copy where the
//!   driver supports AF_XDP (ice, i40e, mlx5, ...) and copy mode where it
//!   does not (veth). The port logs which (`xdp = driver|generic`,
//!   `mode = zero-copy|copy`).
//! - Lifetime: the program is held by a BPF link, so it leaves the
//!   interface when the port is dropped or the process dies, SIGKILL
//!   included; a program left by another tool is reported, not replaced
//!   (see [`program`]).
//! - Workers: one port on queue 0, so one worker. Several workers would
//!   each need a queue, and the NIC's RSS (not
//!   [`worker_for`](crate::port::worker_for)) would choose among them, so
//!   a taken-over connection could reach a worker that does not hold it:
//!   that steering is not written yet, and [`AfXdpPort::open_group`]
//!   refuses more than one worker.
//! - Receive checksums are not vouched for ([`RxMeta`](crate::port::RxMeta)
//!   `checksum_trusted` false): copy mode passes no metadata, so the
//!   worker checks every checksum; a veth peer must send complete
//!   checksums (the lab turns TX checksum offload off on its client).
//!
//! Needs Linux 5.9 or later, `CONFIG_XDP_SOCKETS`, and CAP_NET_RAW,
//! CAP_NET_ADMIN, CAP_BPF and CAP_IPC_LOCK (root has them); each missing
//! piece is its own [`AfXdpError`].

mod abi;
mod config;
mod open;
mod port;
pub mod program;
mod ring;
mod umem;

pub use config::{
    check_kernel, kernel_release, kernel_version, AfXdpConfig, AfXdpError, XdpAttach, MIN_KERNEL,
};
pub use port::AfXdpPort;
pub use program::AttachMode;
