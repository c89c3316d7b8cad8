//! The datagram sockets a replicator talks through: [`UdpSocket`] in a box,
//! a lossy double in tests; the receive-buffer sizing and the kernel's drop
//! count of a real socket; where a peer's heartbeats go. Knows nothing of
//! the datagrams it carries.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// A datagram socket: [`UdpSocket`], or a test double that loses packets.
pub trait DatagramSocket: Send {
    /// Sends one datagram.
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;
    /// Receives one datagram; `WouldBlock`/`TimedOut` when none came. A
    /// datagram longer than `buf` is cut to its length (the replicator's
    /// buffer is one byte longer than any valid datagram, so a cut one is
    /// recognised as oversized without copying the rest).
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// How long `recv_from` may block (`None` = forever).
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    /// The file descriptor to `poll(2)`, if the socket is a kernel one.
    /// A replicator with two sockets waits on both only when both have one;
    /// otherwise it takes turns with short timeouts.
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
    /// Makes `recv_from` return `WouldBlock` at once when nothing is there.
    fn set_nonblocking(&self, _on: bool) -> io::Result<()> {
        Ok(())
    }
    /// Datagrams the kernel dropped at this socket (buffer full), if known.
    fn kernel_drops(&self) -> Option<u64> {
        None
    }
}

impl DatagramSocket for UdpSocket {
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        UdpSocket::send_to(self, buf, to)
    }
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        UdpSocket::recv_from(self, buf)
    }
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        UdpSocket::set_read_timeout(self, t)
    }
    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        UdpSocket::set_nonblocking(self, on)
    }
    fn kernel_drops(&self) -> Option<u64> {
        kernel_drops(self.as_raw_fd())
    }
}

/// linux/sock_diag.h: the number of `u32` SO_MEMINFO returns.
const SK_MEMINFO_VARS: usize = 9;

/// `sk_drops` of socket `fd` (SO_MEMINFO): datagrams the kernel dropped
/// because the receive buffer was full.
fn kernel_drops(fd: RawFd) -> Option<u64> {
    let mut info = [0u32; SK_MEMINFO_VARS];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is a writable buffer of `len` bytes; the kernel writes
    // at most `len` bytes and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    let i = libc::SK_MEMINFO_DROPS as usize;
    (rc == 0 && (len as usize) > i * 4).then(|| u64::from(info[i]))
}

/// Sets the receive buffer of `socket` to `bytes`: beyond
/// `net.core.rmem_max` if the process may (SO_RCVBUFFORCE, needs
/// CAP_NET_ADMIN), else as far as the limit allows. Returns the size the
/// kernel reports (twice what was asked, for its bookkeeping).
pub fn size_receive_buffer(socket: &UdpSocket, bytes: usize) -> io::Result<usize> {
    let fd = socket.as_raw_fd();
    let want = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    let set = |opt| {
        // SAFETY: `want` is a valid c_int that outlives the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&want as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 && set(libc::SO_RCVBUF) != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `got` is a writable c_int of `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(got).unwrap_or(0))
}

/// Where a box whose replication address is `replication` receives
/// heartbeats: the next port on the same address (7401 for the default
/// 7400). `None` for port 65535, which has no next port.
pub fn heartbeat_addr(replication: SocketAddr) -> Option<SocketAddr> {
    let port = replication.port().checked_add(1)?;
    Some(SocketAddr::new(replication.ip(), port))
}
