//! The UMEM: the one memory area frames live in, shared with the kernel,
//! cut into equal chunks; and which chunks we own for sending. It knows
//! no ring or socket.

/// Bytes of one chunk: a page, so a frame plus the kernel's 256-byte
/// headroom always fits one MTU-sized frame.
pub(super) const FRAME_SIZE: u32 = 4096;

/// An anonymous mapping of `frames` chunks, unmapped on drop (after the
/// socket that registered it is closed: the kernel pins the pages while
/// it uses them).
#[derive(Debug)]
pub(super) struct Umem {
    base: *mut u8,
    len: usize,
}

impl Umem {
    pub(super) fn new(frames: u32) -> std::io::Result<Umem> {
        let len = frames as usize * FRAME_SIZE as usize;
        // SAFETY: a fresh private anonymous mapping; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Umem {
            base: p.cast(),
            len,
        })
    }

    pub(super) fn addr(&self) -> u64 {
        self.base as u64
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The `len` bytes at UMEM offset `addr`, if they lie inside one
    /// chunk: a descriptor the kernel wrote is checked before we trust it.
    pub(super) fn frame(&self, addr: u64, len: u32) -> Option<&[u8]> {
        let (start, end) = chunk_range(addr, len, self.len)?;
        // SAFETY: inside the mapping (checked); the kernel handed this
        // chunk to us and writes it again only after we give it back.
        Some(unsafe { std::slice::from_raw_parts(self.base.add(start), end - start) })
    }

    /// Copies `data` into the chunk at `addr` (a chunk we own).
    pub(super) fn write(&mut self, addr: u64, data: &[u8]) -> bool {
        let Ok(len) = u32::try_from(data.len()) else {
            return false;
        };
        let Some((start, _)) = chunk_range(addr, len, self.len) else {
            return false;
        };
        // SAFETY: inside the mapping (checked) and in a chunk the kernel
        // does not read until we post its descriptor.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(start), data.len()) };
        true
    }
}

/// The byte range of `len` bytes at `addr`, when it stays inside one
/// chunk of an area of `area` bytes.
pub(super) fn chunk_range(addr: u64, len: u32, area: usize) -> Option<(usize, usize)> {
    let start = usize::try_from(addr).ok()?;
    let end = start.checked_add(len as usize)?;
    let chunk_end = (start / FRAME_SIZE as usize + 1) * FRAME_SIZE as usize;
    (end <= area && end <= chunk_end).then_some((start, end))
}

/// The chunk an address lies in (aligned mode: the kernel may hand back
/// an address past the chunk's start, after its headroom).
pub(super) fn chunk_of(addr: u64) -> u64 {
    addr & !(u64::from(FRAME_SIZE) - 1)
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: our own mapping; no borrow outlives `self`.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_outside_a_chunk_or_the_area_are_refused() {
        let area = 4 * FRAME_SIZE as usize;
        assert_eq!(chunk_range(256, 1514, area), Some((256, 1770)));
        assert_eq!(chunk_range(4096 + 256, 3840, area), Some((4352, 8192)));
        assert_eq!(chunk_range(4096 + 256, 3841, area), None, "crosses a chunk");
        assert_eq!(chunk_range(3 * 4096, 4096, area), Some((12288, 16384)));
        assert_eq!(chunk_range(4 * 4096, 1, area), None, "past the area");
        assert_eq!(chunk_range(u64::MAX, 10, area), None);
        assert_eq!(chunk_of(4096 + 256), 4096);
        assert_eq!(chunk_of(8191), 4096);
    }

    #[test]
    fn frames_written_read_back() {
        let mut u = Umem::new(2).expect("mmap");
        assert!(u.write(4096, b"hello"));
        assert_eq!(u.frame(4096, 5), Some(&b"hello"[..]));
        assert!(!u.write(8000, &[0u8; 200]), "would cross the end");
    }
}
