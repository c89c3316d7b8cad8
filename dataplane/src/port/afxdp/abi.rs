//! The kernel's AF_XDP and bpf(2) ABI we use (linux/if_xdp.h,
//! linux/bpf.h, linux/if_link.h): option numbers, mmap offsets, structs
//! the libc crate does not have, and thin syscall wrappers. Numbers were
//! checked against the uapi headers of a 6.18 kernel; they are ABI and
//! never change.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

pub(super) const AF_XDP: libc::c_int = 44;
pub(super) const SOL_XDP: libc::c_int = 283;

pub(super) const XDP_MMAP_OFFSETS: libc::c_int = 1;
pub(super) const XDP_RX_RING: libc::c_int = 2;
pub(super) const XDP_TX_RING: libc::c_int = 3;
pub(super) const XDP_UMEM_REG: libc::c_int = 4;
pub(super) const XDP_UMEM_FILL_RING: libc::c_int = 5;
pub(super) const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
pub(super) const XDP_STATISTICS: libc::c_int = 7;
pub(super) const XDP_OPTIONS: libc::c_int = 8;
pub(super) const XDP_OPTIONS_ZEROCOPY: u32 = 1;

/// `sockaddr_xdp.sxdp_flags`.
pub(super) const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
/// `flags` word of a ring: the kernel wants a syscall to make progress.
pub(super) const XDP_RING_NEED_WAKEUP: u32 = 1;

pub(super) const XDP_PGOFF_RX_RING: libc::off_t = 0;
pub(super) const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
pub(super) const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
pub(super) const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

/// `struct xdp_umem_reg` with `tx_metadata_len` (32 bytes, the size every
/// kernel since 5.4 accepts; the last field must be 0 on older ones).
#[repr(C)]
#[derive(Default)]
pub(super) struct UmemReg {
    pub(super) addr: u64,
    pub(super) len: u64,
    pub(super) chunk_size: u32,
    pub(super) headroom: u32,
    pub(super) flags: u32,
    pub(super) tx_metadata_len: u32,
}

/// `struct xdp_ring_offset`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RingOffset {
    pub(super) producer: u64,
    pub(super) consumer: u64,
    pub(super) desc: u64,
    pub(super) flags: u64,
}

/// `struct xdp_mmap_offsets`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct MmapOffsets {
    pub(super) rx: RingOffset,
    pub(super) tx: RingOffset,
    pub(super) fr: RingOffset,
    pub(super) cr: RingOffset,
}

/// `struct sockaddr_xdp`.
#[repr(C)]
pub(super) struct SockaddrXdp {
    pub(super) family: u16,
    pub(super) flags: u16,
    pub(super) ifindex: u32,
    pub(super) queue_id: u32,
    pub(super) shared_umem_fd: u32,
}

/// `struct xdp_desc`: one RX or TX descriptor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct XdpDesc {
    pub(super) addr: u64,
    pub(super) len: u32,
    pub(super) options: u32,
}

/// `struct xdp_statistics`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct XdpStatistics {
    pub(super) rx_dropped: u64,
    pub(super) rx_invalid_descs: u64,
    pub(super) tx_invalid_descs: u64,
    pub(super) rx_ring_full: u64,
    pub(super) rx_fill_ring_empty_descs: u64,
    pub(super) tx_ring_empty_descs: u64,
}

// bpf(2) commands, map and program types, attach type, helper id.
pub(super) const BPF_MAP_CREATE: libc::c_int = 0;
pub(super) const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
pub(super) const BPF_PROG_LOAD: libc::c_int = 5;
pub(super) const BPF_LINK_CREATE: libc::c_int = 28;
pub(super) const BPF_MAP_TYPE_XSKMAP: u32 = 17;
pub(super) const BPF_PROG_TYPE_XDP: u32 = 6;
pub(super) const BPF_XDP: u32 = 37;
pub(super) const BPF_FUNC_REDIRECT_MAP: i32 = 51;
pub(super) const XDP_PASS: i32 = 2;
/// `ld_imm64` source register meaning "imm is a map fd".
pub(super) const BPF_PSEUDO_MAP_FD: u8 = 1;
/// Offset of `rx_queue_index` in `struct xdp_md`.
pub(super) const XDP_MD_RX_QUEUE_INDEX: i16 = 16;
/// `XDP_FLAGS_SKB_MODE` / `XDP_FLAGS_DRV_MODE` of linux/if_link.h.
pub(super) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub(super) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// `sizeof(union bpf_attr)` on 6.x; the kernel takes a shorter or longer
/// attr as long as the bytes it does not know are zero.
pub(super) const BPF_ATTR_LEN: usize = 144;

/// A zeroed `union bpf_attr` we fill field by field at their offsets.
pub(super) struct BpfAttr(pub(super) [u8; BPF_ATTR_LEN]);

impl BpfAttr {
    pub(super) fn new() -> Self {
        BpfAttr([0; BPF_ATTR_LEN])
    }
    pub(super) fn u32_at(mut self, off: usize, v: u32) -> Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    pub(super) fn u64_at(mut self, off: usize, v: u64) -> Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    pub(super) fn bytes_at(mut self, off: usize, v: &[u8]) -> Self {
        self.0[off..off + v.len()].copy_from_slice(v);
        self
    }
}

/// bpf(2); the result or the OS error.
pub(super) fn bpf(cmd: libc::c_int, attr: &mut BpfAttr) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable buffer of the size we pass; the
    // kernel reads (and for some commands writes) only inside it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            BPF_ATTR_LEN as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// bpf(2) for a command that returns a new descriptor.
pub(super) fn bpf_fd(cmd: libc::c_int, attr: &mut BpfAttr) -> std::io::Result<OwnedFd> {
    let r = bpf(cmd, attr)?;
    // SAFETY: commands that create objects return a fresh descriptor
    // (close-on-exec) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// setsockopt(2) of a plain value.
pub(super) fn setsockopt<T>(fd: RawFd, name: libc::c_int, v: &T) -> std::io::Result<()> {
    // SAFETY: `v` is a live `T` of the size we pass.
    let r = unsafe {
        libc::setsockopt(
            fd,
            SOL_XDP,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// getsockopt(2) into a plain value; the length the kernel wrote.
pub(super) fn getsockopt<T>(fd: RawFd, name: libc::c_int, v: &mut T) -> std::io::Result<usize> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` is a live, writable `T` and `len` says its size.
    let r = unsafe { libc::getsockopt(fd, SOL_XDP, name, (v as *mut T).cast(), &mut len) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(len as usize)
    }
}

/// The MAC address of `interface` (`SIOCGIFHWADDR`, asked through a
/// short-lived UDP socket: AF_XDP sockets take no ioctls).
pub(super) fn hw_addr(interface: &str) -> std::io::Result<[u8; 6]> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    #[repr(C)]
    struct IfreqHwaddr {
        name: [u8; libc::IFNAMSIZ],
        family: u16,
        data: [u8; 14],
        _pad: [u8; 8],
    }
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
        return Err(std::io::Error::last_os_error());
    }
    let mut m = [0u8; 6];
    m.copy_from_slice(&req.data[..6]);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_have_the_kernels_sizes() {
        assert_eq!(std::mem::size_of::<UmemReg>(), 32);
        assert_eq!(std::mem::size_of::<MmapOffsets>(), 128);
        assert_eq!(std::mem::size_of::<SockaddrXdp>(), 16);
        assert_eq!(std::mem::size_of::<XdpDesc>(), 16);
        assert_eq!(std::mem::size_of::<XdpStatistics>(), 48);
    }
}
