//! DPDK port: the same [`Port`](crate::port::Port) over the system's libdpdk (22.11, cargo
//! feature `dpdk`), so the workers run unchanged on a DPDK poll-mode
//! driver.
//!
//! Three pieces, in the order a box uses them:
//!
//! 1. [`DpdkOptions`] turns the configuration (hugepages or not, memory,
//!    the main lcore, vdevs such as `net_af_packet0,iface=front0,qpairs=2`,
//!    a file prefix unique per box) into EAL arguments
//!    ([`DpdkOptions::eal_args`]).
//! 2. [`DpdkEal::init`] runs `rte_eal_init` once per process. The EAL
//!    cannot be initialised twice (and not again after `rte_eal_cleanup`),
//!    so the result is kept for the life of the process: a second call
//!    with the same arguments returns the same EAL, with other arguments
//!    an error ([`DpdkError::EalArgsDiffer`]). A failed init keeps its
//!    error, with the EAL's own log lines and a hint
//!    ([`DpdkError::EalInit`]); nothing here panics or aborts.
//! 3. [`DpdkPort::open_group`] configures one ethdev with one RX/TX queue
//!    pair per worker (queue id = worker index), an mbuf pool, promiscuous
//!    mode off, starts it, and returns one [`DpdkPort`] per queue. A
//!    `net_af_packet` vdev must have exactly `qpairs` = workers: it opens
//!    one socket per qpair when created, and the kernel spreads frames over
//!    all of them ([`DpdkError::QueuesUnpolled`] otherwise).
//!
//! # Frames
//!
//! RX: `rte_eth_rx_burst` fills an array of mbufs; each frame is lent to
//! the worker straight from the mbuf's data (no copy on our side) and the
//! mbuf goes back to the pool right after the callback. (`net_af_packet`
//! itself copies each frame from its TPACKET_V2 ring into the mbuf; a
//! real NIC's PMD writes into the mbuf by DMA.) A chained (multi-segment)
//! mbuf never comes from the PMDs we configure (the pool's data room holds
//! a full frame); one that does is dropped and counted.
//!
//! TX is one copy today: each frame of the [`TxBatch`](crate::port::TxBatch) is copied into a
//! fresh mbuf, the mbufs go out with `rte_eth_tx_burst`, and those the
//! device did not take are freed (TCP retransmits). Zero-copy TX would
//! need the worker to build frames directly in mbufs: a `TxBatch` whose
//! buffers are mbufs borrowed from this port's pool (or external buffers
//! attached with `rte_pktmbuf_attach_extbuf` pointing at the send queue's
//! bytes, freed by a callback once the NIC is done), i.e. a port-provided
//! buffer type in the [`Port`](crate::port::Port) trait instead of the worker's own arrays.
//!
//! # Waiting
//!
//! DPDK has no file descriptor to sleep on (net_af_packet's sockets are
//! private to the PMD), so [`Port::raw_fd`](crate::port::Port::raw_fd) is `None` and [`Port::wait`](crate::port::Port::wait)
//! sleeps in ppoll(2) on the wake eventfd alone for at most
//! [`DpdkOptions::idle_sleep`] ([`MAX_IDLE_SLEEP`], 1 ms, by default): an
//! adaptive worker backs off the CPU, and a frame that arrives meanwhile
//! waits at most that long, like AF_PACKET's TPACKET_V3 block timeout. A
//! port that steers frames to a sleeping worker (below) wakes it through
//! that worker's eventfd, so steering adds no sleep. Measured in the lab
//! (two idle workers, adaptive mode): 1 ms costs 5.5 % of a core, 250 µs
//! 14 %, 100 µs 30 %; `ab -k -c 8` of 1 KiB objects on two queues gets
//! 18 k, 66 k and (20 µs) 111 k requests/s. Busy polling has no sleep.
//!
//! For scale (same lab, one worker, adaptive): `net_af_packet` moves a
//! 100 MB download at ~2.9 Gbit/s and `ab -k -c 8` gets ~120 k requests/s;
//! the AF_PACKET backend with GSO does ~14 Gbit/s and ~68 k requests/s.
//! `net_af_packet` copies every frame twice more than AF_PACKET (ring to
//! mbuf on RX; batch to mbuf to ring on TX) and cannot take 64 KiB GSO
//! frames; it is the way to run DPDK without a NIC, not a faster path.
//!
//! # Which worker sees a flow
//!
//! The dataplane's rule ([`super::worker_for`]) must hold: the worker that
//! owns a connection, including one restored from a checkpoint after a
//! takeover, must receive its packets. A NIC spreads flows over queues
//! with RSS, and `net_af_packet` with `qpairs > 1` joins its queue sockets
//! to a `PACKET_FANOUT_HASH` group: both hash with a key we do not
//! control, so the queue a flow lands on is not the worker that owns it.
//! When a device has more than one queue, each [`DpdkPort`] therefore
//! steers in software: it runs the same classic BPF program the AF_PACKET
//! backend gives the kernel ([`super::fanout::FANOUT_PROGRAM`], through
//! [`super::fanout::run_cbpf`]) on every received frame, and a frame that
//! belongs to another worker is handed over, as the mbuf pointer itself
//! (no copy), through that worker's bounded inbox, which it drains first
//! on its next [`Port::rx_burst`](crate::port::Port::rx_burst). A taken-over connection thus reaches
//! its owner whatever queue the hash picked, at the cost of one cross-core
//! hop for the frames that land on the wrong queue ((n-1)/n of them with
//! n queues and an evenly spreading hash). On a NIC whose RSS can be
//! programmed (`rte_flow` rules per remote address and port, or a
//! redirection table matching our hash) the hop goes away; that is not
//! done here. With one queue nothing is steered.
//!
//! # Linking and the PMD
//!
//! build.rs links the shared libraries `pkg-config --libs libdpdk` names,
//! plus `librte_bus_vdev` (for `rte_vdev_init`, which hot-plugs a vdev
//! again after its device was closed). Debian's DPDK is a shared build: `rte_eal_init` loads every driver in
//! its plugin directory (`/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`,
//! `net_af_packet` among them) by itself, so neither `-d` nor linking
//! `librte_net_af_packet` is needed on such a system; a `-d PATH` in
//! [`DpdkOptions::eal_extra`] loads a driver from elsewhere.
//!
//! # Checksums
//!
//! [`RxMeta::checksum_trusted`](crate::port::RxMeta::checksum_trusted) is set when the PMD marks the L4 checksum
//! good, or "none" (a local sender left it to offload, data intact).
//! `net_af_packet` reports neither, so a Linux sender on a veth must not
//! leave checksums to offload (the lab turns `tx` offload off on the
//! client's interface).

mod eal;
mod error;
mod ffi;
mod options;
mod port;

pub use eal::DpdkEal;
pub use error::DpdkError;
pub use options::{DpdkOptions, MAX_IDLE_SLEEP};
pub use port::{DpdkPort, DpdkPortStats, DpdkStatsHandle};
