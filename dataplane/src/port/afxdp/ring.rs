//! The four single-producer/single-consumer rings an AF_XDP socket shares
//! with the kernel (fill, completion, RX, TX), and their index
//! arithmetic.
//!
//! A ring is `size` (a power of two) descriptors and two free-running
//! u32 indices; an index becomes a slot by masking, and the counts below
//! stay right when the indices wrap past `u32::MAX`. The side that
//! produces publishes its index with a release store after writing the
//! descriptors; the side that consumes reads it with an acquire load
//! before reading them (the kernel's `smp_load_acquire` /
//! `smp_store_release` on the same words).
//!
//! It knows nothing of frames or sockets: only memory the kernel mapped.

use super::abi::{RingOffset, XDP_RING_NEED_WAKEUP};
use std::sync::atomic::{AtomicU32, Ordering};

/// Entries a producer may still write: `size` minus what is outstanding.
pub(super) fn producer_free(size: u32, prod: u32, cons: u32) -> u32 {
    size.saturating_sub(prod.wrapping_sub(cons))
}

/// Entries a consumer may read.
pub(super) fn consumer_ready(prod: u32, cons: u32) -> u32 {
    prod.wrapping_sub(cons)
}

/// The slot of free-running index `idx`.
pub(super) fn slot(idx: u32, size: u32) -> usize {
    (idx & (size - 1)) as usize
}

/// One mapped ring of descriptors of type `T` (u64 frame addresses for
/// fill and completion, `XdpDesc` for RX and TX).
#[derive(Debug)]
pub(super) struct Ring<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut T,
    size: u32,
    map: *mut libc::c_void,
    map_len: usize,
    /// Our own index (producer for fill/TX, consumer for RX/completion),
    /// published by `submit` / `release`.
    local: u32,
}

impl<T: Copy> Ring<T> {
    /// Maps the ring at `pgoff` of socket `fd` with the kernel's offsets.
    pub(super) fn map(
        fd: libc::c_int,
        pgoff: libc::off_t,
        off: &RingOffset,
        size: u32,
        producer_side: bool,
    ) -> std::io::Result<Ring<T>> {
        let map_len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: mapping the ring the kernel created for this socket at
        // the offset it defines; the result is checked.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = map.cast::<u8>();
        // SAFETY: the kernel's offsets lie inside the mapping it sized.
        let (producer, consumer, flags, descs) = unsafe {
            (
                base.add(off.producer as usize).cast::<AtomicU32>(),
                base.add(off.consumer as usize).cast::<AtomicU32>(),
                base.add(off.flags as usize).cast::<AtomicU32>(),
                base.add(off.desc as usize).cast::<T>(),
            )
        };
        let mut r = Ring {
            producer,
            consumer,
            flags,
            descs,
            size,
            map,
            map_len,
            local: 0,
        };
        r.local = if producer_side {
            r.load(r.producer)
        } else {
            r.load(r.consumer)
        };
        Ok(r)
    }

    fn load(&self, p: *const AtomicU32) -> u32 {
        // SAFETY: `p` points at an index word inside the live mapping.
        unsafe { (*p).load(Ordering::Acquire) }
    }

    fn store(&self, p: *const AtomicU32, v: u32) {
        // SAFETY: as in `load`.
        unsafe { (*p).store(v, Ordering::Release) }
    }

    /// Producer side: how many entries may be written now.
    pub(super) fn free(&self) -> u32 {
        producer_free(self.size, self.local, self.load(self.consumer))
    }

    /// Producer side: writes `v` at the next index (the caller checked
    /// [`Ring::free`]); visible to the kernel at the next `submit`.
    pub(super) fn push(&mut self, v: T) {
        // SAFETY: the slot is inside the ring and, being free, not read by
        // the kernel until we publish it.
        unsafe {
            self.descs
                .add(slot(self.local, self.size))
                .write_volatile(v)
        };
        self.local = self.local.wrapping_add(1);
    }

    /// Producer side: publishes everything pushed.
    pub(super) fn submit(&self) {
        self.store(self.producer, self.local);
    }

    /// Producer side: entries the kernel has not consumed yet.
    pub(super) fn outstanding(&self) -> u32 {
        self.local.wrapping_sub(self.load(self.consumer))
    }

    /// Consumer side: how many entries are ready.
    pub(super) fn ready(&self) -> u32 {
        consumer_ready(self.load(self.producer), self.local)
    }

    /// Consumer side: the `i`th ready entry (the caller checked
    /// [`Ring::ready`]).
    pub(super) fn peek(&self, i: u32) -> T {
        // SAFETY: the slot is inside the ring and was published by the
        // kernel (acquire load in `ready`).
        unsafe {
            self.descs
                .add(slot(self.local.wrapping_add(i), self.size))
                .read_volatile()
        }
    }

    /// Consumer side: gives `n` read entries back to the kernel.
    pub(super) fn release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.store(self.consumer, self.local);
    }

    /// The kernel asked for a syscall to make progress.
    pub(super) fn needs_wakeup(&self) -> bool {
        self.load(self.flags) & XDP_RING_NEED_WAKEUP != 0
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; no borrow outlives the ring.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_right_across_the_u32_wrap() {
        assert_eq!(producer_free(8, 0, 0), 8);
        assert_eq!(producer_free(8, 5, 1), 4);
        assert_eq!(producer_free(8, 8, 0), 0);
        // Producer wrapped, consumer not yet.
        assert_eq!(producer_free(8, 2, u32::MAX - 2), 3);
        assert_eq!(consumer_ready(2, u32::MAX - 2), 5);
        assert_eq!(consumer_ready(7, 7), 0);
        // A kernel index that ran ahead of ours by more than the ring
        // (never legal) must not turn into a huge free count.
        assert_eq!(producer_free(8, 20, 0), 0);
    }

    #[test]
    fn slots_are_indices_masked_by_the_size() {
        assert_eq!(slot(0, 8), 0);
        assert_eq!(slot(9, 8), 1);
        assert_eq!(slot(u32::MAX, 2048), 2047);
        assert_eq!(slot(u32::MAX.wrapping_add(1), 2048), 0);
    }

    /// A ring in ordinary memory, driven from both sides as the kernel
    /// and we would.
    #[test]
    fn a_ring_in_memory_passes_entries_in_order_across_the_wrap() {
        #[repr(C)]
        struct Mem {
            producer: AtomicU32,
            consumer: AtomicU32,
            flags: AtomicU32,
            _pad: u32,
            descs: [u64; 4],
        }
        let start = u32::MAX - 5;
        let mut mem = Box::new(Mem {
            producer: AtomicU32::new(start),
            consumer: AtomicU32::new(start),
            flags: AtomicU32::new(0),
            _pad: 0,
            descs: [0; 4],
        });
        let base = &mut *mem as *mut Mem;
        // SAFETY: field pointers into the boxed struct, alive for the test.
        let mut prod: Ring<u64> = unsafe {
            Ring {
                producer: &(*base).producer,
                consumer: &(*base).consumer,
                flags: &(*base).flags,
                descs: (*base).descs.as_mut_ptr(),
                size: 4,
                map: std::ptr::null_mut(),
                map_len: 0,
                local: start,
            }
        };
        let mut got = Vec::new();
        let mut next = 0u64;
        for _ in 0..5 {
            while prod.free() > 0 && next < 12 {
                prod.push(next);
                next += 1;
            }
            prod.submit();
            if next < 12 {
                assert_eq!(prod.free(), 0, "full after filling");
                assert_eq!(prod.outstanding(), 4);
            }
            // The consumer side, reading the same words.
            let cons_local = mem.consumer.load(Ordering::Acquire);
            let ready = consumer_ready(mem.producer.load(Ordering::Acquire), cons_local);
            for i in 0..ready.min(3) {
                got.push(mem.descs[slot(cons_local.wrapping_add(i), 4)]);
            }
            mem.consumer
                .store(cons_local.wrapping_add(ready.min(3)), Ordering::Release);
        }
        assert_eq!(got, (0..12).take(got.len()).collect::<Vec<_>>());
        assert!(got.len() >= 10, "{got:?}");
        mem.flags.store(XDP_RING_NEED_WAKEUP, Ordering::Release);
        assert!(prod.needs_wakeup());
        // Not mapped: nothing to unmap.
        std::mem::forget(prod);
    }
}
