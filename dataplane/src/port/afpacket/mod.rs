//! AF_PACKET port: an mmap RX ring (TPACKET_V2 by default, TPACKET_V3 on
//! request) and batched `sendmmsg` TX, with checksum and segmentation
//! offload, on packet sockets bound to the interface (packet(7), and the
//! kernel's Documentation/networking/packet_mmap.rst).
//!
//! RX, [`RxRing::V3`]: the kernel hands user space whole blocks of frames.
//! A block is retired to us when it is full or when `block_timeout_ms`
//! passes, so at low rates a frame waits up to that timeout (1 ms at
//! least): fewer wake-ups and cache misses per frame under load, but every
//! ACK of a lone bulk download waits too, and TCP's throughput is capped
//! at send buffer / RTT.
//!
//! RX, [`RxRing::V2`] (the default): one fixed-size slot per frame,
//! visible to us the moment the kernel has written it.
//!
//! Why V2 is the default, measured on this machine's veth lab (release
//! build, one adaptive worker, `baton-load` from the client namespace):
//!
//! | load | V3 | V2 | nginx (kernel TCP, 1 worker) |
//! |---|---|---|---|
//! | one 100 MB download | 258 MB/s | 2,100–2,700 MB/s | 2,060 MB/s |
//! | 1 KiB, 1 keep-alive connection | 970 req/s | 25,000 req/s | 26,000 req/s |
//! | 1 KiB, 50 connections | 44,000 req/s | 170,000 req/s | 29,000 req/s |
//!
//! V3 stays available for loads of many slow clients, where its batching
//! saves wake-ups. GRO on a NIC, or TSO on a veth peer, hands packet
//! sockets merged frames of up to 64 KiB. A V3 block (256 KiB) holds them.
//! V2 slots are 2 KiB, an MTU-sized frame each, 8,192 of them (16 MiB):
//! a burst of thousands of small frames — the probe answers of a mass
//! takeover, a crowd of keep-alive requests — fits, where the former 512
//! slots of 64 KiB (32 MiB) overflowed, and the ring is made of 32 KiB
//! blocks, not the 2 MiB ones whose allocation stalled the machine while a
//! box started (BENCHMARKS.md, Open findings). A merged frame goes whole to
//! the socket's own queue (`PACKET_COPY_THRESH`; its slot is marked
//! `TP_STATUS_COPY`) and is read from there with one `recv` (`rx_oversized`);
//! only when that queue is full is it dropped whole and counted
//! (`drop_rx_truncated`). Frames are lent to the worker straight from the ring,
//! and a block or slot is given back to the kernel as soon as it has been
//! handled.
//!
//! TX: frames are built by the worker in its own [`TxBatch`](crate::port::TxBatch) buffers (the
//! one copy of the payload, from the send queue into the frame) and sent
//! with one `sendmmsg(2)` per burst. We chose this over a TPACKET_V2 TX
//! ring because the worker builds frames while RX frames are still
//! borrowed from the ring; writing into a TX ring at that moment would
//! need two mutable borrows of the port, and the ring's only gain, one
//! `send()` per burst instead of one `sendmmsg()`, is the same syscall
//! count. And `sendmmsg` lets us offload: with `tx_offload` the frames go
//! out through a second, send-only socket with `PACKET_VNET_HDR`, each
//! behind a `virtio_net_hdr` as a VM's would. TCP checksums are then
//! `CHECKSUM_PARTIAL` (finished by the NIC, or never needed on a veth),
//! and the worker merges back-to-back full segments of a connection into
//! one GSO frame of up to 64 KiB that the kernel (or the NIC's TSO) cuts
//! into MSS-sized segments — on veth the peer's TCP takes it whole, as
//! from GRO. That is what lets one download match nginx's `sendfile`.
//!
//! Several workers share an interface through `PACKET_FANOUT` with the
//! classic BPF program of [`super::fanout`], so the kernel delivers every
//! packet of a connection to the worker [`super::worker_for`] names.
//! `PACKET_IGNORE_OUTGOING` (and the fanout flag of the same name) keeps
//! our own transmitted frames out of our RX rings. Promiscuous mode stays
//! off: frames for our MAC, broadcast ARP, and the multicast we do not use
//! are all the NIC needs to pass up.

mod abi;
mod config;
mod open;
mod port;

pub use config::{AfPacketConfig, RxRing};
pub use port::AfPacketPort;
