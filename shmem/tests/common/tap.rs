//! A datagram socket that records what is sent instead of sending it
//! (what an attacker on the back LAN captures) and never receives.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_shmem::DatagramSocket;

/// Records what is sent instead of sending it.
#[derive(Clone, Default)]
pub struct Tap(Arc<Mutex<Vec<Vec<u8>>>>);

impl Tap {
    /// The datagrams sent since the last call.
    pub fn take(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl DatagramSocket for Tap {
    fn send_to(&self, buf: &[u8], _to: SocketAddr) -> io::Result<usize> {
        self.0.lock().unwrap().push(buf.to_vec());
        Ok(buf.len())
    }
    fn recv_from(&self, _buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn set_read_timeout(&self, _t: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}
