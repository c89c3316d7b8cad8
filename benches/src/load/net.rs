//! The sockets of `baton-load`: parsing the URL, connecting from a chosen
//! source address and port (with a small receive buffer when asked),
//! kernel receive timestamps, the open-files limit. It must not know HTTP
//! or what a run measures.
use std::io;
use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use mio::net::TcpStream;

/// What one recvmsg(2) returned: its bytes, the kernel's receive time in
/// µs since the epoch (`SCM_TIMESTAMPNS`, once `SO_TIMESTAMPNS` is on) and
/// the socket's drop count so far (`SO_RXQ_OVFL`, once that is on).
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Bytes read.
    pub len: usize,
    /// When the kernel received them.
    pub at_us: Option<u64>,
    /// Datagrams the socket dropped so far.
    pub drops: u32,
}

/// recvmsg(2) on `fd` into `buf`, with the SOL_SOCKET control messages
/// above read out.
pub fn recv_with_stamp(fd: std::os::fd::RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for a timespec and a u32 cmsg, 8-byte aligned.
    let mut control = [0u64; 16];
    // SAFETY: all-zero is a valid msghdr; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg describes live buffers of the stated lengths.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut got = Received {
        len: n as usize,
        at_us: None,
        drops: 0,
    };
    // SAFETY: the CMSG_* walk stays inside msg_control as the kernel filled
    // it (msg_controllen was updated by recvmsg); the data is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET {
                if (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    got.at_us = Some(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000);
                } else if (*c).cmsg_type == libc::SO_RXQ_OVFL {
                    got.drops = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(got)
}

/// recvmsg(2) on a stream with its kernel receive timestamp: (bytes, µs).
pub(crate) fn recv_stamped(stream: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    use std::os::fd::AsRawFd;
    recv_with_stamp(stream.as_raw_fd(), buf).map(|r| (r.len, r.at_us))
}

/// Sets SOL_SOCKET options with c_int values on `fd`, in order.
pub fn set_socket_options(
    fd: std::os::fd::RawFd,
    options: &[(libc::c_int, libc::c_int)],
) -> io::Result<()> {
    for &(opt, value) in options {
        // SAFETY: setsockopt with a c_int option value of the right length.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                &value as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Turns kernel receive timestamps on (socket(7) `SO_TIMESTAMPNS`).
pub(crate) fn enable_rx_timestamps(stream: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    set_socket_options(stream.as_raw_fd(), &[(libc::SO_TIMESTAMPNS, 1)])
}

pub(crate) fn parse_url(url: &str) -> Result<(SocketAddr, String, bool)> {
    let (rest, https) = if let Some(rest) = url.strip_prefix("http://") {
        (rest, false)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (rest, true)
    } else {
        anyhow::bail!("{url}: only http:// and https:// URLs are supported");
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr: SocketAddr = match authority.parse() {
        Ok(addr) => addr,
        Err(_) => {
            // An IPv6 address without a port is written in brackets too.
            let ip: IpAddr = authority
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .with_context(|| format!("{url}: host must be an IP address"))?;
            SocketAddr::new(ip, if https { 443 } else { 80 })
        }
    };
    Ok((addr, path.to_string(), https))
}

/// The source ports this process hands out, in turn, from the namespace's
/// `ip_local_port_range`.
///
/// Why not let the kernel pick: with port 0, bind(2) (and connect(2) with
/// `IP_BIND_ADDRESS_NO_PORT`) search the range for a port with no conflict,
/// preferring one half of it, and a port still in TIME_WAIT towards the
/// same server is a conflict. Measured in the lab (Linux 6.18): a run that
/// reuses an address whose previous run left 19000 TIME_WAIT ports stalls
/// once the preferred half is used up: each bind took ~80 ms (each connect
/// ~15 ms with `IP_BIND_ADDRESS_NO_PORT`), 256 at a time, so this
/// one-thread client served none of its open connections for up to 15 s at
/// a stretch, and 19000 connections took 33 s to open instead of 6-14 s.
/// The 300,000-connection run's first five processes (the addresses its
/// 100,000 run had used 30 s before) stalled that way. Walking the range
/// ourselves costs one failed bind or connect per busy port.
pub(crate) struct PortCursor {
    pub(crate) lo: u16,
    pub(crate) span: u32,
    pub(crate) next: u32,
}

impl PortCursor {
    pub(crate) fn new() -> PortCursor {
        let (lo, hi) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace().map(|v| v.parse::<u16>().ok());
                Some((it.next()??, it.next()??))
            })
            .filter(|(lo, hi)| lo <= hi)
            .unwrap_or((32768, 60999));
        let span = u32::from(hi - lo) + 1;
        // Start where another process of the same run is unlikely to be.
        let next = std::process::id().wrapping_mul(7919) % span;
        PortCursor { lo, span, next }
    }

    pub(crate) fn take(&mut self) -> u16 {
        let port = self.lo + (self.next % self.span) as u16;
        self.next = (self.next + 1) % self.span;
        port
    }
}

pub(crate) fn connect(
    target: SocketAddr,
    source: Option<IpAddr>,
    rcvbuf: usize,
    ports: &mut PortCursor,
) -> io::Result<TcpStream> {
    if source.is_none() && rcvbuf == 0 {
        return TcpStream::connect(target);
    }
    let Some(ip) = source else {
        return connect_from(target, None, rcvbuf);
    };
    let mut last = io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
    for _ in 0..ports.span {
        match connect_from(target, Some(SocketAddr::new(ip, ports.take())), rcvbuf) {
            // The port is bound by someone else here, or its 4-tuple towards
            // the target is still in use or in TIME_WAIT: the next one.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EADDRINUSE) | Some(libc::EADDRNOTAVAIL)
                ) =>
            {
                last = e
            }
            other => return other,
        }
    }
    Err(last)
}

/// A non-blocking connect from `source` (exactly that address and port,
/// SO_REUSEADDR so that TIME_WAIT on the port does not refuse the bind;
/// connect(2) still refuses a 4-tuple in use).
pub(crate) fn connect_from(
    target: SocketAddr,
    source: Option<SocketAddr>,
    rcvbuf: usize,
) -> io::Result<TcpStream> {
    // mio has no bind-before-connect nor socket options before connect; go
    // through a non-blocking socket made by libc so that many source
    // addresses can be used and SO_RCVBUF takes effect before the SYN
    // (the window scale is chosen then, RFC 7323 §2.2).
    use std::os::fd::FromRawFd;
    let domain = if target.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2); the fd is owned by the std socket below.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid socket we own (closed on every return).
    let socket = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| {
        // SAFETY: setsockopt with a c_int option value of the right length.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                &value as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    if rcvbuf > 0 {
        set(
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            rcvbuf.min(i32::MAX as usize) as libc::c_int,
        )?;
    }
    if let Some(bind_to) = source {
        set(libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        let (addr, len) = sockaddr(&bind_to);
        // SAFETY: addr is a valid sockaddr of length len.
        if unsafe { libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let (addr, len) = sockaddr(&target);
    // SAFETY: as above; EINPROGRESS is the expected answer of a non-blocking connect.
    if unsafe { libc::connect(fd, &addr as *const _ as *const libc::sockaddr, len) } < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(err);
        }
    }
    Ok(TcpStream::from_std(socket))
}

/// Raises RLIMIT_NOFILE so that `want` sockets fit (as root the hard limit
/// may be raised too, up to fs.nr_open).
pub(crate) fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || lim.rlim_cur >= want {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: want.max(lim.rlim_max),
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        let soft = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) };
        eprintln!(
            "baton-load: could not raise the open-file limit to {want}; it is {}",
            lim.rlim_max
        );
    }
}

pub(crate) fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_an_address_a_port_and_a_path() {
        let (a, p, tls) = parse_url("http://198.18.0.11/1K.bin").unwrap();
        assert_eq!(
            (a, p.as_str(), tls),
            ("198.18.0.11:80".parse().unwrap(), "/1K.bin", false)
        );
        let (a, p, tls) = parse_url("https://198.18.0.11").unwrap();
        assert_eq!(
            (a, p.as_str(), tls),
            ("198.18.0.11:443".parse().unwrap(), "/", true)
        );
        let (a, _, _) = parse_url("http://[2001:2:0:18::11]/x").unwrap();
        assert_eq!(a, "[2001:2:0:18::11]:80".parse().unwrap());
        let (a, _, _) = parse_url("https://[2001:2:0:18::11]:8443/x").unwrap();
        assert_eq!(a, "[2001:2:0:18::11]:8443".parse().unwrap());
        assert!(parse_url("ftp://198.18.0.11/x").is_err());
        assert!(parse_url("http://lab.baton.test/x").is_err());
    }
}
