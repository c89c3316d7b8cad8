//! The worker's wake-up line: an eventfd it polls beside its port, so a
//! worker blocked in adaptive mode notices a command or an app's
//! cross-thread result at once. Knows nothing of what the worker does.

/// Wakes a worker blocked in adaptive mode: an eventfd the worker polls
/// beside its port. Cheap to clone and to call from any thread, e.g. when
/// an origin fetch finished and the app's `poll` has work.
#[derive(Clone, Debug)]
pub struct Waker {
    fd: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
}

impl Waker {
    /// A new eventfd; without one (the call failed), wake-ups are lost and
    /// the worker relies on its bounded wait.
    pub fn new() -> Waker {
        // SAFETY: eventfd returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Waker { fd: None };
        }
        use std::os::fd::FromRawFd;
        // SAFETY: `fd` is a fresh descriptor we own.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        Waker {
            fd: Some(std::sync::Arc::new(owned)),
        }
    }

    /// Wakes the worker (or makes its next wait return at once).
    pub fn wake(&self) {
        if let Some(fd) = &self.fd {
            use std::os::fd::AsRawFd;
            let one = 1u64;
            // SAFETY: writing 8 bytes from a u64 to an eventfd.
            unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// The descriptor to poll.
    pub fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }

    /// Resets the eventfd after a wait; true if a wake-up was pending.
    pub(super) fn drain(&self) -> bool {
        let Some(fd) = &self.fd else {
            return false;
        };
        use std::os::fd::AsRawFd;
        let mut v = 0u64;
        // SAFETY: reading 8 bytes into a u64 from a non-blocking eventfd.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        n == 8 && v > 0
    }
}

impl Default for Waker {
    fn default() -> Self {
        Self::new()
    }
}
