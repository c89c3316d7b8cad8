//! A port at work: reading frames from the ring (V2 slots or V3 blocks),
//! giving them back to the kernel, sending batches with `sendmmsg`, and
//! waiting.

use super::abi::{
    vnet_header, BD_BLOCK_STATUS, BD_NUM_PKTS, BD_OFFSET_TO_FIRST, H2_LEN, H2_MAC, H2_SNAPLEN,
    H2_STATUS, H3_LEN, H3_MAC, H3_NEXT_OFFSET, H3_SNAPLEN, H3_STATUS, OVERSIZE_FRAME_MAX,
    PACKET_STATISTICS, VNET_HDR_LEN,
};
use super::config::RxRing;
use crate::port::{Port, PortError, RxMeta, TxBatch};
use crate::wire::ethernet::MacAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

/// One AF_PACKET socket with its RX ring.
#[derive(Debug)]
pub struct AfPacketPort {
    pub(super) fd: OwnedFd,
    pub(super) ring: *mut u8,
    pub(super) ring_len: usize,
    pub(super) block_size: usize,
    pub(super) block_count: usize,
    /// Block we read from next.
    pub(super) current: usize,
    /// Inside the current block: frames left and offset of the next one.
    pub(super) cursor: Option<(u32, usize)>,
    pub(super) ring_kind: RxRing,
    /// V2: slot we read from next, the number of slots, their size, and
    /// how many fit a block.
    pub(super) slot: usize,
    pub(super) slots: usize,
    pub(super) slot_size: usize,
    pub(super) slots_per_block: usize,
    pub(super) mac: MacAddr,
    pub(super) ifindex: i32,
    pub(super) iovs: Vec<libc::iovec>,
    /// Frames dropped because the ring held only part of them.
    pub(super) rx_truncated: u64,
    /// V2: frames too large for a slot, read whole from the socket's queue.
    pub(super) rx_oversized: u64,
    /// Where such a frame is read to (allocated at the first one).
    pub(super) oversize_buf: Vec<u8>,
    /// Frames the kernel dropped because the ring was full, summed over
    /// reads of `PACKET_STATISTICS` (each read resets the kernel's count).
    pub(super) ring_drops: std::cell::Cell<u64>,
    /// TX socket with `PACKET_VNET_HDR`, when offload is on.
    pub(super) tx_fd: Option<OwnedFd>,
    pub(super) vnet: Vec<[u8; VNET_HDR_LEN]>,
    pub(super) msgs: Vec<libc::mmsghdr>,
}

// SAFETY: the ring mapping is owned by this value alone (no aliases are
// handed out beyond a borrow of `&mut self`), so moving it to the worker
// thread that will own it is sound.
unsafe impl Send for AfPacketPort {}

impl AfPacketPort {
    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    pub(super) fn discard_pending(&mut self) {
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
            let meta = RxMeta {
                checksum_trusted: status
                    & (libc::TP_STATUS_CSUMNOTREADY | libc::TP_STATUS_CSUM_VALID)
                    != 0,
            };
            if len > snaplen {
                // A GRO/TSO frame larger than a slot: whole in the socket's
                // queue when the slot says so, else its cut-off bytes are
                // gone and it is dropped whole (see the module doc).
                let whole = (status & libc::TP_STATUS_COPY != 0)
                    .then(|| self.recv_oversized(len))
                    .flatten();
                match whole {
                    Some(got) => {
                        self.rx_oversized += 1;
                        f(&self.oversize_buf[..got], meta);
                        n += 1;
                    }
                    None => self.rx_truncated += 1,
                }
            } else if mac_off.saturating_add(snaplen) <= self.slot_size {
                // SAFETY: inside a slot the kernel handed to us and will not
                // touch until we write its status back.
                let frame = unsafe { std::slice::from_raw_parts(slot.add(mac_off), snaplen) };
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

    /// The next frame of the socket's queue, whose slot said it is `len`
    /// bytes (`TP_STATUS_COPY`: the kernel queued each such frame in ring
    /// order), into `oversize_buf`; its length, or `None` if it is not
    /// there or not that frame.
    fn recv_oversized(&mut self, len: usize) -> Option<usize> {
        if self.oversize_buf.is_empty() {
            self.oversize_buf = vec![0; OVERSIZE_FRAME_MAX];
        }
        // SAFETY: receiving into a buffer we own, of the length passed.
        let got = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.oversize_buf.as_mut_ptr().cast(),
                self.oversize_buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        // MSG_TRUNC: the frame's real length, even past the buffer.
        (got >= 0 && got as usize == len && len <= self.oversize_buf.len()).then_some(len)
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
        crate::port::sleep::poll_socket(
            self.fd.as_raw_fd(),
            libc::POLLIN | libc::POLLERR,
            timeout,
            wake,
        )
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

    fn rx_oversized(&self) -> u64 {
        self.rx_oversized
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
