//! Opening a port: the packet socket, its ring (V2 or V3) and mapping,
//! the fanout group and its BPF program, the send-only offload socket, the
//! interface's MAC and GRO state.

use super::abi::{
    setsockopt, IfreqHwaddr, PacketMreq, SockFprog, FANOUT_FLAG_IGNORE_OUTGOING,
    OVERSIZE_QUEUE_BYTES, PACKET_ADD_MEMBERSHIP, PACKET_MR_ALLMULTI, TPACKET_V2, TPACKET_V3,
};
use super::config::{AfPacketConfig, RxRing};
use super::port::AfPacketPort;
use crate::port::fanout::{fanout_program, SockFilter};
use crate::port::PortError;
use crate::wire::ethernet::MacAddr;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

impl AfPacketPort {
    /// Opens one socket on `cfg.interface`, not in any fanout group.
    pub fn open(cfg: &AfPacketConfig) -> Result<AfPacketPort, PortError> {
        Self::open_inner(cfg, None)
    }

    /// Opens `n` sockets on `cfg.interface` joined, in order, to one
    /// `PACKET_FANOUT_CBPF` group running [`FANOUT_PROGRAM`]: socket `i`
    /// receives the flows [`crate::port::worker_for`] maps to `i`. Joining in
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
            rx_oversized: 0,
            oversize_buf: Vec::new(),
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

        // IPv6 neighbour discovery comes to multicast MACs (33:33:…) that a
        // NIC filters out unless some socket asks for them; the kernel has
        // no address of ours to join their groups for. Best effort: veth
        // filters nothing, and the worker keeps only its own groups.
        let mreq = PacketMreq {
            mr_ifindex: ifindex,
            mr_type: PACKET_MR_ALLMULTI,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        let _ = setsockopt(
            s,
            libc::SOL_PACKET,
            PACKET_ADD_MEMBERSHIP,
            &mreq,
            "PACKET_ADD_MEMBERSHIP",
        );

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
            // The kernel copies the program at the call.
            let program = fanout_program(cfg.steer);
            let fprog = SockFprog {
                len: program.len() as u16,
                filter: program.as_ptr(),
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
            port.tx_fd = match open_vnet_tx(ifindex) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    tracing::warn!(
                        interface = %cfg.interface,
                        "TX offload unavailable ({e}): sending complete frames"
                    );
                    None
                }
            };
        }
        if cfg.ring == RxRing::V2 {
            enable_oversize_queue(s);
        }
        Ok(port)
    }
}

/// TPACKET_V2: a frame longer than a slot also goes, whole, to the
/// socket's own receive queue (packet(7) `PACKET_COPY_THRESH`; its slot is
/// marked `TP_STATUS_COPY`), with a receive buffer that holds a burst of
/// them (`SO_RCVBUFFORCE` past `rmem_max` with CAP_NET_ADMIN, else as much
/// as `SO_RCVBUF` gets). Best effort: without it such frames are dropped
/// and counted, as before.
fn enable_oversize_queue(s: RawFd) {
    if let Err(e) = setsockopt(
        s,
        libc::SOL_PACKET,
        libc::PACKET_COPY_THRESH,
        &1 as &libc::c_int,
        "PACKET_COPY_THRESH",
    ) {
        tracing::warn!("frames above the ring's slot size will be dropped: {e}");
        return;
    }
    if setsockopt(
        s,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        &OVERSIZE_QUEUE_BYTES,
        "SO_RCVBUFFORCE",
    )
    .is_err()
    {
        let _ = setsockopt(
            s,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &OVERSIZE_QUEUE_BYTES,
            "SO_RCVBUF",
        );
    }
}

/// A send-only packet socket on `ifindex` whose messages start with a
/// `virtio_net_hdr` (packet(7) `PACKET_VNET_HDR`): the kernel then takes
/// `CHECKSUM_PARTIAL` frames and GSO frames from us, like from a VM.
/// Bound with protocol 0, it receives nothing.
pub(super) fn open_vnet_tx(ifindex: i32) -> Result<OwnedFd, PortError> {
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

pub(super) fn hw_addr(fd: RawFd, interface: &str) -> Result<MacAddr, PortError> {
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
