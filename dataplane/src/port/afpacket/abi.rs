//! The kernel's packet-socket ABI we use: ring header offsets, option
//! numbers and structs the libc crate does not have, and `setsockopt`.

use crate::port::fanout::SockFilter;
use crate::port::{PortError, TxOffload};
use std::os::fd::RawFd;

// Offsets in `struct tpacket_block_desc` / `tpacket_hdr_v1`.
pub(super) const BD_BLOCK_STATUS: usize = 8;
pub(super) const BD_NUM_PKTS: usize = 12;
pub(super) const BD_OFFSET_TO_FIRST: usize = 16;
// Offsets in `struct tpacket3_hdr`.
pub(super) const H3_NEXT_OFFSET: usize = 0;
pub(super) const H3_SNAPLEN: usize = 12;
pub(super) const H3_LEN: usize = 16;
pub(super) const H3_STATUS: usize = 20;
pub(super) const H3_MAC: usize = 24;

/// `struct virtio_net_hdr` (without `num_buffers`), little-endian fields.
pub(super) const VNET_HDR_LEN: usize = 10;
pub(super) const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
pub(super) const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub(super) const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
pub(super) const TPACKET_V2: libc::c_int = 1;
pub(super) const TPACKET_V3: libc::c_int = 2;
/// Default bytes of one TPACKET_V2 slot: its header (`tpacket2_hdr` and
/// `sockaddr_ll`, aligned, ~80 bytes) plus an MTU-sized frame (1,518 with
/// a VLAN tag), a multiple of 16 (`TPACKET_ALIGNMENT`). Larger frames (GRO,
/// TSO) come whole through the socket's queue (`PACKET_COPY_THRESH`).
pub(super) const V2_DEFAULT_SLOT: u32 = 2_048;
/// Default slots of a TPACKET_V2 ring: 16 MiB of 2 KiB slots.
pub(super) const V2_DEFAULT_SLOTS: u32 = 8_192;
/// The socket's receive buffer for the frames too large for a slot: a
/// merged frame of up to 64 KiB is charged its truesize (more than its
/// length), so 8 MiB holds dozens of them in a burst.
pub(super) const OVERSIZE_QUEUE_BYTES: libc::c_int = 8 << 20;
/// The largest frame read from the socket's queue: four times a 64 KiB GSO
/// frame and its headers. A larger one (BIG TCP can merge more) is
/// dropped and counted as truncated.
pub(super) const OVERSIZE_FRAME_MAX: usize = 256 << 10;
// Offsets in `struct tpacket2_hdr`.
pub(super) const H2_STATUS: usize = 0;
pub(super) const H2_LEN: usize = 4;
pub(super) const H2_SNAPLEN: usize = 8;
pub(super) const H2_MAC: usize = 12;
pub(super) const FANOUT_FLAG_IGNORE_OUTGOING: u32 = 0x4000;
/// `PACKET_STATISTICS` of linux/if_packet.h (not in the libc crate).
pub(super) const PACKET_STATISTICS: libc::c_int = 6;

/// `PACKET_ADD_MEMBERSHIP` (linux/if_packet.h; not in the libc crate).
pub(super) const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
/// `PACKET_MR_ALLMULTI`: the device takes every multicast frame.
pub(super) const PACKET_MR_ALLMULTI: u16 = 2;

/// `struct packet_mreq`.
#[repr(C)]
pub(super) struct PacketMreq {
    pub mr_ifindex: libc::c_int,
    pub mr_type: u16,
    pub mr_alen: u16,
    pub mr_address: [u8; 8],
}

#[repr(C)]
pub(super) struct SockFprog {
    pub(super) len: u16,
    pub(super) filter: *const SockFilter,
}

#[repr(C)]
pub(super) struct IfreqHwaddr {
    pub(super) name: [u8; libc::IFNAMSIZ],
    pub(super) family: u16,
    pub(super) data: [u8; 14],
    pub(super) _pad: [u8; 8],
}

pub(super) fn setsockopt<T>(
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

/// The `virtio_net_hdr` for a frame's offload requests.
pub(super) fn vnet_header(o: TxOffload) -> [u8; VNET_HDR_LEN] {
    let mut h = [0u8; VNET_HDR_LEN];
    if o.csum_start != 0 {
        h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        h[6..8].copy_from_slice(&o.csum_start.to_le_bytes());
        h[8..10].copy_from_slice(&o.csum_offset.to_le_bytes());
    }
    if o.gso_size != 0 {
        h[1] = if o.ipv6 {
            VIRTIO_NET_HDR_GSO_TCPV6
        } else {
            VIRTIO_NET_HDR_GSO_TCPV4
        };
        h[2..4].copy_from_slice(&o.hdr_len.to_le_bytes());
        h[4..6].copy_from_slice(&o.gso_size.to_le_bytes());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnet_header_carries_gso_and_checksum_requests_little_endian() {
        let h = vnet_header(TxOffload {
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            hdr_len: 66,
            ipv6: false,
        });
        assert_eq!(h[0], VIRTIO_NET_HDR_F_NEEDS_CSUM);
        assert_eq!(h[1], VIRTIO_NET_HDR_GSO_TCPV4);
        assert_eq!(u16::from_le_bytes([h[2], h[3]]), 66);
        let v6 = vnet_header(TxOffload {
            gso_size: 1428,
            csum_start: 54,
            csum_offset: 16,
            hdr_len: 86,
            ipv6: true,
        });
        assert_eq!(v6[1], VIRTIO_NET_HDR_GSO_TCPV6);
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
