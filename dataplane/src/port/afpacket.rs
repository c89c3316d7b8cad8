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
//! sockets merged frames of up to 64 KiB: V2 slots are 64 KiB by default
//! so they fit (only the pages a frame touches are used), and a V3 block
//! (256 KiB) holds them too. A frame that still does not fit (a smaller
//! `slot_size`) is dropped whole and counted (`drop_rx_truncated`). Frames are lent to the worker straight from the ring,
//! and a block or slot is given back to the kernel as soon as it has been
//! handled.
//!
//! TX: frames are built by the worker in its own [`TxBatch`] buffers (the
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

use super::fanout::{SockFilter, FANOUT_PROGRAM};
use super::{Port, PortError, RxMeta, TxBatch, TxOffload};
use crate::wire::ethernet::MacAddr;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

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
    /// minus ~80 bytes of header is dropped (`drop_rx_truncated`).
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
}

impl AfPacketConfig {
    /// Defaults for `interface`: a TPACKET_V2 ring of 512 slots of 64 KiB
    /// (~34 MiB, so GRO/TSO frames fit; only the pages a frame touches are
    /// hot), or as V3 32 blocks of 256 KiB with a 1 ms block timeout; TX
    /// offload on.
    pub fn new(interface: &str) -> Self {
        AfPacketConfig {
            interface: interface.to_string(),
            block_size: 1 << 18,
            block_count: 32,
            slot_size: V2_DEFAULT_SLOT,
            slots: 512,
            block_timeout_ms: 1,
            mac_override: None,
            ring: RxRing::V2,
            tx_offload: true,
        }
    }
}

// Offsets in `struct tpacket_block_desc` / `tpacket_hdr_v1`.
const BD_BLOCK_STATUS: usize = 8;
const BD_NUM_PKTS: usize = 12;
const BD_OFFSET_TO_FIRST: usize = 16;
// Offsets in `struct tpacket3_hdr`.
const H3_NEXT_OFFSET: usize = 0;
const H3_SNAPLEN: usize = 12;
const H3_LEN: usize = 16;
const H3_STATUS: usize = 20;
const H3_MAC: usize = 24;

/// `struct virtio_net_hdr` (without `num_buffers`), little-endian fields.
const VNET_HDR_LEN: usize = 10;
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const TPACKET_V2: libc::c_int = 1;
const TPACKET_V3: libc::c_int = 2;
/// Default bytes of one TPACKET_V2 slot: its header (`tpacket2_hdr` and
/// `sockaddr_ll`, aligned) plus the largest merged frame GRO or TSO
/// produces (64 KiB), a multiple of 16 (`TPACKET_ALIGNMENT`).
const V2_DEFAULT_SLOT: u32 = 65_536 + 256;
// Offsets in `struct tpacket2_hdr`.
const H2_STATUS: usize = 0;
const H2_LEN: usize = 4;
const H2_SNAPLEN: usize = 8;
const H2_MAC: usize = 12;
const FANOUT_FLAG_IGNORE_OUTGOING: u32 = 0x4000;
/// `PACKET_STATISTICS` of linux/if_packet.h (not in the libc crate).
const PACKET_STATISTICS: libc::c_int = 6;

/// One AF_PACKET socket with its RX ring.
#[derive(Debug)]
pub struct AfPacketPort {
    fd: OwnedFd,
    ring: *mut u8,
    ring_len: usize,
    block_size: usize,
    block_count: usize,
    /// Block we read from next.
    current: usize,
    /// Inside the current block: frames left and offset of the next one.
    cursor: Option<(u32, usize)>,
    ring_kind: RxRing,
    /// V2: slot we read from next, the number of slots, their size, and
    /// how many fit a block.
    slot: usize,
    slots: usize,
    slot_size: usize,
    slots_per_block: usize,
    mac: MacAddr,
    ifindex: i32,
    iovs: Vec<libc::iovec>,
    /// Frames dropped because the ring held only part of them.
    rx_truncated: u64,
    /// Frames the kernel dropped because the ring was full, summed over
    /// reads of `PACKET_STATISTICS` (each read resets the kernel's count).
    ring_drops: std::cell::Cell<u64>,
    /// TX socket with `PACKET_VNET_HDR`, when offload is on.
    tx_fd: Option<OwnedFd>,
    vnet: Vec<[u8; VNET_HDR_LEN]>,
    msgs: Vec<libc::mmsghdr>,
}

// SAFETY: the ring mapping is owned by this value alone (no aliases are
// handed out beyond a borrow of `&mut self`), so moving it to the worker
// thread that will own it is sound.
unsafe impl Send for AfPacketPort {}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

#[repr(C)]
struct IfreqHwaddr {
    name: [u8; libc::IFNAMSIZ],
    family: u16,
    data: [u8; 14],
    _pad: [u8; 8],
}

fn setsockopt<T>(
    fd: RawFd,
    level: i32,
    name: i32,
    v: &T,
    call: &'static str,
) -> Result<(), PortError> {
    // SAFETY: `v` is a live reference to a `T` of the size we pass.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(PortError::last_os(call));
    }
    Ok(())
}

impl AfPacketPort {
    /// Opens one socket on `cfg.interface`, not in any fanout group.
    pub fn open(cfg: &AfPacketConfig) -> Result<AfPacketPort, PortError> {
        Self::open_inner(cfg, None)
    }

    /// Opens `n` sockets on `cfg.interface` joined, in order, to one
    /// `PACKET_FANOUT_CBPF` group running [`FANOUT_PROGRAM`]: socket `i`
    /// receives the flows [`super::worker_for`] maps to `i`. Joining in
    /// order matters: the kernel indexes members by join order.
    pub fn open_group(cfg: &AfPacketConfig, n: usize) -> Result<Vec<AfPacketPort>, PortError> {
        // Unique per process; the group is per network namespace anyway.
        let group = (std::process::id() & 0xffff) as u16;
        (0..n.max(1))
            .map(|_| Self::open_inner(cfg, Some(group)))
            .collect()
    }

    fn open_inner(cfg: &AfPacketConfig, fanout: Option<u16>) -> Result<AfPacketPort, PortError> {
        let name = CString::new(cfg.interface.as_str())
            .map_err(|_| PortError::NoInterface(cfg.interface.clone()))?;
        // SAFETY: plain syscalls on values we own; every result is checked.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(PortError::NoInterface(cfg.interface.clone()));
        }
        // Protocol 0: the socket receives nothing until bind() names one,
        // so no frame reaches us before the filter and fanout are in place.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(PortError::last_os("socket(AF_PACKET)"));
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();

        let mac = match cfg.mac_override {
            Some(m) => m,
            None => hw_addr(s, &cfg.interface)?,
        };

        setsockopt(
            s,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            match cfg.ring {
                RxRing::V3 => &TPACKET_V3,
                RxRing::V2 => &TPACKET_V2,
            },
            "PACKET_VERSION",
        )?;
        setsockopt(
            s,
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &1i32,
            "PACKET_IGNORE_OUTGOING",
        )?;

        // V3: blocks as configured (frame_size only sizes the kernel's
        // bookkeeping). V2: slots of `slot_size`, packed into power-of-two
        // blocks of about 16 slots; slots never straddle a block.
        let (block_size, block_nr, frame_size) = match cfg.ring {
            RxRing::V3 => (cfg.block_size.max(4096), cfg.block_count.max(2), 2048u32),
            RxRing::V2 => {
                let frame = cfg.slot_size.clamp(2048, 1 << 20).next_multiple_of(16);
                let block = (frame.saturating_mul(16)).next_power_of_two().max(4096);
                let per_block = block / frame;
                (block, cfg.slots.max(2).div_ceil(per_block).max(2), frame)
            }
        };
        let req = libc::tpacket_req3 {
            tp_block_size: block_size,
            tp_block_nr: block_nr,
            tp_frame_size: frame_size,
            tp_frame_nr: (block_size / frame_size) * block_nr,
            tp_retire_blk_tov: cfg.block_timeout_ms.max(1),
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(
            s,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &req,
            "PACKET_RX_RING",
        )?;
        let ring_len = req.tp_block_size as usize * req.tp_block_nr as usize;
        // SAFETY: mapping the ring the kernel just allocated for this socket.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                s,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(PortError::last_os("mmap(rx ring)"));
        }
        let mut port = AfPacketPort {
            fd,
            ring: ring.cast(),
            ring_len,
            block_size: req.tp_block_size as usize,
            block_count: req.tp_block_nr as usize,
            current: 0,
            cursor: None,
            ring_kind: cfg.ring,
            slot: 0,
            slots: req.tp_frame_nr as usize,
            slot_size: frame_size as usize,
            slots_per_block: (block_size / frame_size) as usize,
            mac,
            ifindex,
            iovs: Vec::new(),
            tx_fd: None,
            vnet: Vec::new(),
            rx_truncated: 0,
            ring_drops: std::cell::Cell::new(0),
            msgs: Vec::new(),
        };

        // Drop everything until we are in the fanout group: otherwise this
        // socket would briefly see other workers' flows and answer them
        // with RSTs.
        let drop_all = [SockFilter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0,
        }];
        let prog = SockFprog {
            len: 1,
            filter: drop_all.as_ptr(),
        };
        setsockopt(
            s,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &prog,
            "SO_ATTACH_FILTER",
        )?;

        // SAFETY: zeroed sockaddr_ll is a valid value; we fill the fields bind needs.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
        let r = unsafe {
            libc::bind(
                s,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(PortError::last_os("bind(AF_PACKET)"));
        }

        if let Some(group) = fanout {
            let kind = libc::PACKET_FANOUT_CBPF;
            let with_flag = u32::from(group) | ((kind | FANOUT_FLAG_IGNORE_OUTGOING) << 16);
            if setsockopt(
                s,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                &with_flag,
                "PACKET_FANOUT",
            )
            .is_err()
            {
                // Kernels before the flag existed: the socket option above
                // already ignores outgoing frames for a lone socket.
                let plain = u32::from(group) | (kind << 16);
                setsockopt(
                    s,
                    libc::SOL_PACKET,
                    libc::PACKET_FANOUT,
                    &plain,
                    "PACKET_FANOUT",
                )?;
            }
            let fprog = SockFprog {
                len: FANOUT_PROGRAM.len() as u16,
                filter: FANOUT_PROGRAM.as_ptr(),
            };
            setsockopt(
                s,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT_DATA,
                &fprog,
                "PACKET_FANOUT_DATA",
            )?;
        }
        // SAFETY: detaching takes no argument beyond an int.
        let r = unsafe {
            libc::setsockopt(
                s,
                libc::SOL_SOCKET,
                libc::SO_DETACH_FILTER,
                std::ptr::null(),
                0,
            )
        };
        if r < 0 {
            // Some kernels insist on an int argument.
            setsockopt(
                s,
                libc::SOL_SOCKET,
                libc::SO_DETACH_FILTER,
                &0i32,
                "SO_DETACH_FILTER",
            )?;
        }
        // Frames that arrived before the filter was attached may sit in
        // the ring; they could belong to another worker: discard them.
        port.discard_pending();
        if cfg.tx_offload {
            // Best effort: without it we send complete frames.
            port.tx_fd = open_vnet_tx(ifindex).ok();
        }
        if cfg.ring == RxRing::V2
            && cfg.slot_size < V2_DEFAULT_SLOT
            && gro_enabled(s, &cfg.interface) == Some(true)
        {
            tracing::warn!(
                interface = %cfg.interface,
                "GRO is on: merged frames above the TPACKET_V2 slot size are dropped \
                 (drop_rx_truncated); run `ethtool -K {} gro off lro off`, or use the default \
                 slot size or the V3 ring",
                cfg.interface
            );
        }
        Ok(port)
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    fn discard_pending(&mut self) {
        let _ = self.rx_burst(usize::MAX, |_, _| {});
    }

    fn block(&self, i: usize) -> *mut u8 {
        // SAFETY: i < block_count, so the offset stays inside the mapping.
        unsafe { self.ring.add(i * self.block_size) }
    }

    fn read_u32(&self, base: *const u8, off: usize) -> u32 {
        // SAFETY: callers keep `off + 4` inside the current block; the ring
        // is shared with the kernel, hence the volatile read.
        unsafe { std::ptr::read_volatile(base.add(off).cast::<u32>()) }
    }

    fn slot_ptr(&self, i: usize) -> *mut u8 {
        let per = self.slots_per_block.max(1);
        let off = (i / per) * self.block_size + (i % per) * self.slot_size;
        // SAFETY: i < slots = per * block_count, so block i / per exists and
        // slot i % per lies inside it: the offset stays inside the mapping.
        unsafe { self.ring.add(off) }
    }

    /// TPACKET_V2: each slot carries its own status word.
    fn rx_burst_v2<F: FnMut(&[u8], RxMeta)>(&mut self, max: usize, mut f: F) -> usize {
        let mut n = 0;
        while n < max {
            let slot = self.slot_ptr(self.slot);
            let status = self.read_u32(slot, H2_STATUS);
            if status & libc::TP_STATUS_USER == 0 {
                break;
            }
            // Read the frame only after seeing the slot is ours.
            fence(Ordering::Acquire);
            let snaplen = self.read_u32(slot, H2_SNAPLEN) as usize;
            let len = self.read_u32(slot, H2_LEN) as usize;
            // SAFETY: the header lies at the start of the slot.
            let mac_off =
                usize::from(unsafe { std::ptr::read_volatile(slot.add(H2_MAC).cast::<u16>()) });
            if len > snaplen {
                // A GRO/TSO frame larger than a slot: its cut-off bytes are
                // gone, so drop it whole (see the module doc).
                self.rx_truncated += 1;
            } else if mac_off.saturating_add(snaplen) <= self.slot_size {
                // SAFETY: inside a slot the kernel handed to us and will not
                // touch until we write its status back.
                let frame = unsafe { std::slice::from_raw_parts(slot.add(mac_off), snaplen) };
                let meta = RxMeta {
                    checksum_trusted: status
                        & (libc::TP_STATUS_CSUMNOTREADY | libc::TP_STATUS_CSUM_VALID)
                        != 0,
                };
                f(frame, meta);
                n += 1;
            }
            fence(Ordering::Release);
            // SAFETY: the status word is inside the slot.
            unsafe {
                std::ptr::write_volatile(slot.add(H2_STATUS).cast::<u32>(), libc::TP_STATUS_KERNEL)
            };
            self.slot = (self.slot + 1) % self.slots.max(1);
        }
        n
    }

    fn release_block(&mut self) {
        let b = self.block(self.current);
        // Everything we read from the block happens before the kernel may
        // reuse it.
        fence(Ordering::Release);
        // SAFETY: the block status word is inside the mapping.
        unsafe {
            std::ptr::write_volatile(b.add(BD_BLOCK_STATUS).cast::<u32>(), libc::TP_STATUS_KERNEL)
        };
        self.current = (self.current + 1) % self.block_count;
        self.cursor = None;
    }
}

/// A send-only packet socket on `ifindex` whose messages start with a
/// `virtio_net_hdr` (packet(7) `PACKET_VNET_HDR`): the kernel then takes
/// `CHECKSUM_PARTIAL` frames and GSO frames from us, like from a VM.
/// Bound with protocol 0, it receives nothing.
fn open_vnet_tx(ifindex: i32) -> Result<OwnedFd, PortError> {
    // SAFETY: plain syscalls on values we own; every result is checked.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(PortError::last_os("socket(AF_PACKET tx)"));
    }
    // SAFETY: `raw` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let s = fd.as_raw_fd();
    setsockopt(
        s,
        libc::SOL_PACKET,
        libc::PACKET_VNET_HDR,
        &1i32,
        "PACKET_VNET_HDR",
    )?;
    // GSO frames are up to 64 KiB: leave room for a burst of them in
    // flight (root may exceed net.core.wmem_max; failure is harmless).
    let _ = setsockopt(
        s,
        libc::SOL_SOCKET,
        libc::SO_SNDBUFFORCE,
        &(8i32 << 20),
        "SO_SNDBUFFORCE",
    );
    // SAFETY: zeroed sockaddr_ll is a valid value; protocol 0 registers no
    // receive hook.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
    let r = unsafe {
        libc::bind(
            s,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(PortError::last_os("bind(AF_PACKET tx)"));
    }
    Ok(fd)
}

/// The `virtio_net_hdr` for a frame's offload requests.
fn vnet_header(o: TxOffload) -> [u8; VNET_HDR_LEN] {
    let mut h = [0u8; VNET_HDR_LEN];
    if o.csum_start != 0 {
        h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        h[6..8].copy_from_slice(&o.csum_start.to_le_bytes());
        h[8..10].copy_from_slice(&o.csum_offset.to_le_bytes());
    }
    if o.gso_size != 0 {
        h[1] = VIRTIO_NET_HDR_GSO_TCPV4;
        h[2..4].copy_from_slice(&o.hdr_len.to_le_bytes());
        h[4..6].copy_from_slice(&o.gso_size.to_le_bytes());
    }
    h
}

/// Whether generic receive offload is on for `interface` (`ETHTOOL_GGRO`);
/// `None` if the driver does not say.
fn gro_enabled(fd: RawFd, interface: &str) -> Option<bool> {
    const ETHTOOL_GGRO: u32 = 0x2b;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct IfreqData {
        name: [u8; libc::IFNAMSIZ],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    let mut v = EthtoolValue {
        cmd: ETHTOOL_GGRO,
        data: 0,
    };
    let mut req = IfreqData {
        name: [0; libc::IFNAMSIZ],
        data: &mut v,
        _pad: [0; 16],
    };
    let n = interface.len().min(libc::IFNAMSIZ - 1);
    req.name[..n].copy_from_slice(&interface.as_bytes()[..n]);
    // SAFETY: `req` has the layout of `struct ifreq` with `ifr_data`
    // pointing at a live `ethtool_value`.
    let r = unsafe { libc::ioctl(fd, libc::SIOCETHTOOL, &mut req as *mut IfreqData) };
    (r == 0).then_some(v.data != 0)
}

fn hw_addr(fd: RawFd, interface: &str) -> Result<MacAddr, PortError> {
    let mut req = IfreqHwaddr {
        name: [0; libc::IFNAMSIZ],
        family: 0,
        data: [0; 14],
        _pad: [0; 8],
    };
    let n = interface.len().min(libc::IFNAMSIZ - 1);
    req.name[..n].copy_from_slice(&interface.as_bytes()[..n]);
    // SAFETY: `req` has the layout of `struct ifreq` for SIOCGIFHWADDR.
    let r = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req as *mut IfreqHwaddr) };
    if r < 0 {
        return Err(PortError::last_os("ioctl(SIOCGIFHWADDR)"));
    }
    let mut m = [0u8; 6];
    m.copy_from_slice(&req.data[..6]);
    Ok(MacAddr(m))
}

impl Drop for AfPacketPort {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping created in `open`; no borrows outlive `self`.
        unsafe { libc::munmap(self.ring.cast(), self.ring_len) };
    }
}

impl Port for AfPacketPort {
    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn rx_burst<F: FnMut(&[u8], RxMeta)>(
        &mut self,
        max: usize,
        mut f: F,
    ) -> Result<usize, PortError> {
        if self.ring_kind == RxRing::V2 {
            return Ok(self.rx_burst_v2(max, f));
        }
        let mut n = 0;
        while n < max {
            let block = self.block(self.current);
            let (left, off) = match self.cursor {
                Some(c) => c,
                None => {
                    let status = self.read_u32(block, BD_BLOCK_STATUS);
                    if status & libc::TP_STATUS_USER == 0 {
                        break;
                    }
                    // Read the block's contents only after seeing it is ours.
                    fence(Ordering::Acquire);
                    let num = self.read_u32(block, BD_NUM_PKTS);
                    let first = self.read_u32(block, BD_OFFSET_TO_FIRST) as usize;
                    (num, first)
                }
            };
            // The header must fit in the block; the kernel wrote it, but a
            // bad offset must cost a block, not the process.
            if left == 0 || off.saturating_add(32) > self.block_size {
                self.release_block();
                continue;
            }
            let next = self.read_u32(block, off + H3_NEXT_OFFSET) as usize;
            let snaplen = self.read_u32(block, off + H3_SNAPLEN) as usize;
            let len = self.read_u32(block, off + H3_LEN) as usize;
            let status = self.read_u32(block, off + H3_STATUS);
            // SAFETY: inside the block, checked above.
            let mac_off = usize::from(unsafe {
                std::ptr::read_volatile(block.add(off + H3_MAC).cast::<u16>())
            });
            let start = off.saturating_add(mac_off);
            if len > snaplen {
                self.rx_truncated += 1;
            } else if start.saturating_add(snaplen) <= self.block_size {
                // SAFETY: the range lies in a block the kernel handed to us
                // and will not touch until `release_block`.
                let frame = unsafe { std::slice::from_raw_parts(block.add(start), snaplen) };
                let meta = RxMeta {
                    checksum_trusted: status
                        & (libc::TP_STATUS_CSUMNOTREADY | libc::TP_STATUS_CSUM_VALID)
                        != 0,
                };
                f(frame, meta);
                n += 1;
            }
            if left <= 1 || next == 0 {
                self.release_block();
            } else {
                self.cursor = Some((left - 1, off + next));
            }
        }
        Ok(n)
    }

    fn tx_burst(&mut self, batch: &mut TxBatch) -> Result<usize, PortError> {
        self.iovs.clear();
        self.msgs.clear();
        let per_msg = if self.tx_fd.is_some() { 2 } else { 1 };
        if self.tx_fd.is_some() {
            self.vnet.clear();
            self.vnet
                .extend(batch.frames_offload().map(|(_, o)| vnet_header(o)));
        }
        for (i, fr) in batch.frames().enumerate() {
            if let Some(h) = self.vnet.get(i).filter(|_| per_msg == 2) {
                self.iovs.push(libc::iovec {
                    iov_base: h.as_ptr() as *mut libc::c_void,
                    iov_len: VNET_HDR_LEN,
                });
            }
            self.iovs.push(libc::iovec {
                iov_base: fr.as_ptr() as *mut libc::c_void,
                iov_len: fr.len(),
            });
        }
        for chunk in self.iovs.chunks_exact_mut(per_msg) {
            // SAFETY: an all-zero mmsghdr is valid; we point it at the
            // message's iovecs (vnet header first when offloading).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = chunk.as_mut_ptr();
            m.msg_hdr.msg_iovlen = per_msg;
            self.msgs.push(m);
        }
        let fd = match &self.tx_fd {
            Some(t) => t.as_raw_fd(),
            None => self.fd.as_raw_fd(),
        };
        let mut sent = 0usize;
        let mut result = Ok(());
        while sent < self.msgs.len() {
            let rest = &mut self.msgs[sent..];
            // SAFETY: every mmsghdr points at an iovec in `self.iovs` that
            // points into `batch`, all alive for the call. The socket is
            // bound, so no destination address is needed.
            let r =
                unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len().min(1024) as u32, 0) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    // A broken descriptor is a bug or a closed port: stop.
                    Some(libc::EBADF) | Some(libc::ENOTSOCK) => {
                        result = Err(PortError::Os {
                            call: "sendmmsg",
                            source: e,
                        });
                        break;
                    }
                    // Queue full, link down, a frame the device refuses:
                    // drop the rest of the burst (counted by the worker as
                    // tx_dropped); TCP retransmits, and the worker lives on.
                    _ => break,
                }
            }
            if r == 0 {
                break;
            }
            sent += r as usize;
        }
        batch.clear();
        result.map(|()| sent)
    }

    fn wait(&mut self, timeout: Option<Duration>, wake: Option<RawFd>) -> Result<(), PortError> {
        // A block or slot already handed to us needs no wait.
        let ready = match self.ring_kind {
            RxRing::V3 => {
                self.cursor.is_some()
                    || self.read_u32(self.block(self.current), BD_BLOCK_STATUS)
                        & libc::TP_STATUS_USER
                        != 0
            }
            RxRing::V2 => {
                self.read_u32(self.slot_ptr(self.slot), H2_STATUS) & libc::TP_STATUS_USER != 0
            }
        };
        if ready {
            return Ok(());
        }
        let ms = match timeout {
            None => -1,
            Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
        };
        let mut pfds = [
            libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let n = if wake.is_some() { 2 } else { 1 };
        // SAFETY: `n` valid pollfds.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), n, ms) };
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(PortError::last_os("poll"));
        }
        Ok(())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn tx_offload(&self) -> bool {
        self.tx_fd.is_some()
    }

    fn rx_truncated(&self) -> u64 {
        self.rx_truncated
    }

    fn rx_ring_drops(&self) -> u64 {
        // `struct tpacket_stats` (V2) or `tpacket_stats_v3` (V3, one more
        // u32): packets, drops[, freeze_q_cnt]. packet(7): reading resets
        // the kernel's counters, so keep the running sum here.
        let mut st = [0u32; 3];
        let mut len = match self.ring_kind {
            RxRing::V2 => 8,
            RxRing::V3 => 12,
        } as libc::socklen_t;
        // SAFETY: `st` is 12 writable bytes and `len` says at most that.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                st.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if r == 0 {
            self.ring_drops
                .set(self.ring_drops.get() + u64::from(st[1]));
        }
        self.ring_drops.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gro_state_of_a_missing_interface_is_unknown() {
        // SAFETY: a plain UDP socket, closed below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        assert!(fd >= 0);
        assert_eq!(gro_enabled(fd, "bt-no-such-if"), None);
        // Loopback answers (GRO on or off, but an answer).
        assert!(gro_enabled(fd, "lo").is_some());
        // SAFETY: closing the socket opened above.
        unsafe { libc::close(fd) };
    }

    #[test]
    fn vnet_header_carries_gso_and_checksum_requests_little_endian() {
        let h = vnet_header(TxOffload {
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            hdr_len: 66,
        });
        assert_eq!(h[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
        assert_eq!(h[1], VIRTIO_NET_HDR_GSO_TCPV4);
        assert_eq!(u16::from_le_bytes([h[2], h[3]]), 66);
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), 1448);
        assert_eq!(u16::from_le_bytes([h[6], h[7]]), 34);
        assert_eq!(u16::from_le_bytes([h[8], h[9]]), 16);
        assert_eq!(
            vnet_header(TxOffload::default()),
            [0u8; VNET_HDR_LEN],
            "a plain frame asks for nothing"
        );
    }
}
