//! The datagram socket a replicator talks through: [`UdpSocket`] in a box,
//! a lossy double in tests. Knows nothing of the datagrams it carries.
//! (Heartbeats on a socket of their own, issue #13, are wired here and in
//! `Replicator::run`.)

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// A datagram socket: [`UdpSocket`], or a test double that loses packets.
pub trait DatagramSocket: Send {
    /// Sends one datagram.
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;
    /// Receives one datagram; `WouldBlock`/`TimedOut` when none came.
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    /// How long `recv_from` may block (`None` = forever).
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
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
}
