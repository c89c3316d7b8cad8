//! An in-memory pair of ports: what one end sends, the other receives.
//! For tests of the worker without root or a NIC.

use super::{Port, PortError, RxMeta, TxBatch};
use crate::wire::ethernet::MacAddr;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::time::Duration;

/// One end of an in-memory link.
#[derive(Debug)]
pub struct MemoryPort {
    mac: MacAddr,
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    pending: VecDeque<Vec<u8>>,
    /// Frames received are reported as checksum-trusted (like a veth peer).
    pub trust_checksums: bool,
}

impl MemoryPort {
    /// Two connected ports with the given MACs.
    pub fn pair(a: MacAddr, b: MacAddr) -> (MemoryPort, MemoryPort) {
        let (ta, rb) = crossbeam_channel::unbounded();
        let (tb, ra) = crossbeam_channel::unbounded();
        let end = |mac, tx, rx| MemoryPort {
            mac,
            tx,
            rx,
            pending: VecDeque::new(),
            trust_checksums: false,
        };
        (end(a, ta, ra), end(b, tb, rb))
    }

    /// Takes every frame received so far (for a test acting as the wire).
    pub fn drain(&mut self) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = self.pending.drain(..).collect();
        v.extend(self.rx.try_iter());
        v
    }

    /// Sends one frame (for a test acting as the wire).
    pub fn send(&self, frame: Vec<u8>) -> Result<(), PortError> {
        self.tx.send(frame).map_err(|_| PortError::Disconnected)
    }
}

impl Port for MemoryPort {
    fn mac(&self) -> MacAddr {
        self.mac
    }

    fn rx_burst<F: FnMut(&[u8], RxMeta)>(
        &mut self,
        max: usize,
        mut f: F,
    ) -> Result<usize, PortError> {
        let meta = RxMeta {
            checksum_trusted: self.trust_checksums,
        };
        let mut n = 0;
        while n < max {
            let frame = match self.pending.pop_front() {
                Some(fr) => fr,
                None => match self.rx.try_recv() {
                    Ok(fr) => fr,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        if n == 0 {
                            return Err(PortError::Disconnected);
                        }
                        break;
                    }
                },
            };
            f(&frame, meta);
            n += 1;
        }
        Ok(n)
    }

    fn tx_burst(&mut self, batch: &mut TxBatch) -> Result<usize, PortError> {
        let mut sent = 0;
        for fr in batch.frames() {
            if self.tx.send(fr.to_vec()).is_ok() {
                sent += 1;
            }
        }
        batch.clear();
        Ok(sent)
    }

    fn wait(&mut self, timeout: Option<Duration>, wake: Option<RawFd>) -> Result<(), PortError> {
        if !self.pending.is_empty() {
            return Ok(());
        }
        // The channel cannot be polled together with a wake-up descriptor:
        // wait in short slices so a wake-up is noticed within a millisecond.
        let timeout = match (timeout, wake) {
            (Some(t), Some(_)) => Some(t.min(Duration::from_millis(1))),
            (None, Some(_)) => Some(Duration::from_millis(1)),
            (t, None) => t,
        };
        let r = match timeout {
            Some(t) => self.rx.recv_timeout(t),
            None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match r {
            Ok(fr) => {
                self.pending.push_back(fr);
                Ok(())
            }
            Err(RecvTimeoutError::Timeout) => Ok(()),
            Err(RecvTimeoutError::Disconnected) => Err(PortError::Disconnected),
        }
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}
