//! How a kernel-socket port (AF_PACKET, AF_XDP) sleeps while idle: one
//! `poll` on its socket and the worker's wake descriptor, rounded up to
//! whole milliseconds. The caller has already looked at its ring and found
//! nothing to do; this knows nothing of rings.

use std::os::fd::RawFd;
use std::time::Duration;

use super::PortError;

/// Sleeps until `socket` shows `events`, `wake` is readable, or `timeout`
/// passes (`None`: no limit). A signal ending the sleep early is not an
/// error: the worker polls its ring again either way.
pub(crate) fn poll_socket(
    socket: RawFd,
    events: libc::c_short,
    timeout: Option<Duration>,
    wake: Option<RawFd>,
) -> Result<(), PortError> {
    let ms = match timeout {
        None => -1,
        Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
    };
    let mut pfds = [
        libc::pollfd {
            fd: socket,
            events,
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
