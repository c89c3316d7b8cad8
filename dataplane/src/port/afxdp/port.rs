//! A port at work: lending received frames from the UMEM and giving
//! their chunks back through the fill ring, copying a batch into TX
//! chunks and waking the kernel to send them, reclaiming sent chunks from
//! the completion ring, and waiting.

use super::abi::{getsockopt, XdpDesc, XdpStatistics, XDP_STATISTICS};
use super::program::{AttachMode, XdpProgram};
use super::ring::Ring;
use super::umem::{chunk_of, Umem, FRAME_SIZE};
use crate::port::{Port, PortError, RxMeta, TxBatch};
use crate::wire::ethernet::MacAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// One AF_XDP socket on one queue, its UMEM, rings and XDP program.
#[derive(Debug)]
pub struct AfXdpPort {
    // Rings first: unmapped before the socket closes.
    pub(super) rx: Ring<XdpDesc>,
    pub(super) tx: Ring<XdpDesc>,
    pub(super) fill: Ring<u64>,
    pub(super) comp: Ring<u64>,
    pub(super) fd: OwnedFd,
    // After the socket: the kernel lets go of the pages when it closes.
    pub(super) umem: Umem,
    pub(super) program: XdpProgram,
    /// TX chunks we own.
    pub(super) tx_free: Vec<u64>,
    /// RX chunks read but not yet back on the fill ring (only when the
    /// fill ring was unexpectedly full).
    pub(super) rx_spare: Vec<u64>,
    pub(super) mac: MacAddr,
    pub(super) ifindex: u32,
    pub(super) zero_copy: bool,
    /// RX descriptors that pointed outside a chunk (never from a sane kernel).
    pub(super) rx_invalid: u64,
}

// SAFETY: the rings and the UMEM are mappings owned by this value alone
// (no aliases beyond borrows of `&self`/`&mut self`), so moving it to the
// worker thread that will own it is sound.
unsafe impl Send for AfXdpPort {}

impl AfXdpPort {
    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// True when the driver moves frames in and out of the UMEM itself.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Where the XDP program runs.
    pub fn attach_mode(&self) -> AttachMode {
        self.program.mode()
    }

    /// Takes sent chunks back from the completion ring.
    fn reclaim(&mut self) {
        let n = self.comp.ready();
        for i in 0..n {
            self.tx_free.push(chunk_of(self.comp.peek(i)));
        }
        self.comp.release(n);
    }

    /// Makes the kernel send what the TX ring holds. In copy mode each
    /// `sendto` sends at most a small budget of frames (32 in 6.x) and
    /// answers `EAGAIN` while more wait, so we call it until the ring is
    /// drained or the device pushes back.
    fn kick_tx(&mut self) -> Result<(), PortError> {
        let rounds = self.tx.outstanding() / 16 + 4;
        for _ in 0..rounds {
            if self.tx.outstanding() == 0 || (self.zero_copy && !self.tx.needs_wakeup()) {
                break;
            }
            // SAFETY: a send of nothing: the frames are in the TX ring.
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            self.reclaim();
            if r < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::EINTR) => continue,
                    Some(libc::EBADF) | Some(libc::ENOTSOCK) => {
                        return Err(PortError::Os {
                            call: "sendto(AF_XDP)",
                            source: e,
                        })
                    }
                    // Link down, no buffer: the frames wait in the ring
                    // for the next kick, or are lost when it fills (TCP
                    // retransmits).
                    _ => break,
                }
            }
        }
        Ok(())
    }
}

impl Port for AfXdpPort {
    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn rx_burst<F: FnMut(&[u8], RxMeta)>(
        &mut self,
        max: usize,
        mut f: F,
    ) -> Result<usize, PortError> {
        while !self.rx_spare.is_empty() && self.fill.free() > 0 {
            if let Some(a) = self.rx_spare.pop() {
                self.fill.push(a);
            }
        }
        let ready = self.rx.ready().min(u32::try_from(max).unwrap_or(u32::MAX));
        let mut n = 0;
        for i in 0..ready {
            let d = self.rx.peek(i);
            match self.umem.frame(d.addr, d.len) {
                // The kernel verified no checksum for us (copy mode has no
                // metadata), so the worker checks every one.
                Some(frame) => {
                    f(frame, RxMeta::default());
                    n += 1;
                }
                None => self.rx_invalid += 1,
            }
            if self.fill.free() > 0 {
                self.fill.push(chunk_of(d.addr));
            } else {
                self.rx_spare.push(chunk_of(d.addr));
            }
        }
        if ready > 0 {
            self.rx.release(ready);
            self.fill.submit();
            if self.fill.needs_wakeup() {
                // Zero-copy drivers sleep on an empty fill ring until told.
                // SAFETY: a receive of nothing, to wake the driver.
                unsafe {
                    libc::recvfrom(
                        self.fd.as_raw_fd(),
                        std::ptr::null_mut(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                };
            }
        }
        Ok(n)
    }

    fn tx_burst(&mut self, batch: &mut TxBatch) -> Result<usize, PortError> {
        self.reclaim();
        let mut sent = 0usize;
        for fr in batch.frames() {
            if self.tx.free() == 0 {
                break;
            }
            // Larger than a chunk: only a GSO frame would be, and this
            // port does not offer offload; drop it (counted by the worker).
            if fr.is_empty() || fr.len() > FRAME_SIZE as usize {
                continue;
            }
            let Some(addr) = self.tx_free.pop() else {
                break;
            };
            if !self.umem.write(addr, fr) {
                self.tx_free.push(addr);
                continue;
            }
            self.tx.push(XdpDesc {
                addr,
                len: fr.len() as u32,
                options: 0,
            });
            sent += 1;
        }
        if sent > 0 {
            self.tx.submit();
        }
        batch.clear();
        self.kick_tx()?;
        Ok(sent)
    }

    fn wait(&mut self, timeout: Option<Duration>, wake: Option<RawFd>) -> Result<(), PortError> {
        if self.rx.ready() > 0 {
            return Ok(());
        }
        crate::port::sleep::poll_socket(self.fd.as_raw_fd(), libc::POLLIN, timeout, wake)
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn rx_truncated(&self) -> u64 {
        self.rx_invalid
    }

    fn rx_ring_drops(&self) -> u64 {
        // Running totals in the kernel (reading does not reset them):
        // frames lost to a full RX ring or an empty fill ring.
        let mut st = XdpStatistics::default();
        match getsockopt(self.fd.as_raw_fd(), XDP_STATISTICS, &mut st) {
            Ok(_) => st.rx_dropped + st.rx_ring_full,
            Err(_) => 0,
        }
    }
}
