//! One connection's transmission control block.

use super::{
    Event, FourTuple, OutSegment, Segment, SendError, SeqNum, State, TcbExport, TcbStats, TcpConfig,
};
use bytes::Bytes;
use std::time::Instant;

/// One TCP connection's state (RFC 9293 §3.3.1).
#[derive(Debug)]
pub struct Tcb {
    tuple: FourTuple,
    config: TcpConfig,
    state: State,
}

impl Tcb {
    /// The connection's state.
    pub fn state(&self) -> State {
        self.state
    }
    /// The connection's addresses.
    pub fn tuple(&self) -> FourTuple {
        self.tuple
    }
    /// False while a restored TCB waits for the peer's answer to its probe.
    pub fn is_ready(&self) -> bool {
        self.state != State::Unready
    }
    /// Sequence number the next byte given to [`Tcb::send`] will get.
    pub fn next_seq(&self) -> SeqNum {
        SeqNum(0)
    }
    /// Bytes [`Tcb::send`] accepts now.
    pub fn send_capacity(&self) -> usize {
        0
    }
    /// In-order bytes waiting for [`Tcb::recv`].
    pub fn recv_available(&self) -> usize {
        0
    }
    /// Counters and estimates.
    pub fn stats(&self) -> TcbStats {
        TcbStats::default()
    }
    /// A segment for this connection arrived.
    pub fn on_segment(&mut self, now: Instant, seg: &Segment<'_>) {
        let _ = (now, seg, &self.config);
    }
    /// Call when `now >= poll_timeout()`.
    pub fn on_timeout(&mut self, now: Instant) {
        let _ = now;
    }
    /// Queue `data`; returns the sequence number of its first byte.
    pub fn send(&mut self, data: Bytes) -> Result<SeqNum, SendError> {
        let _ = data;
        Err(SendError::Closed)
    }
    /// Copy received in-order bytes into `buf`; returns how many.
    pub fn recv(&mut self, buf: &mut [u8]) -> usize {
        let _ = buf;
        0
    }
    /// Send a FIN after the queued data.
    pub fn close(&mut self) {}
    /// Send a RST now and close.
    pub fn abort(&mut self) {}
    /// The next segment to send, if any; call until `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<OutSegment> {
        let _ = now;
        None
    }
    /// The next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        None
    }
    /// The earliest deadline at which [`Tcb::on_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// The TCP block of a checkpoint.
    pub fn export(&self, now: Instant) -> TcbExport {
        let _ = now;
        TcbExport {
            tuple: self.tuple,
            state: self.state,
            iss: 0,
            irs: 0,
            snd_una: 0,
            snd_nxt: 0,
            rcv_nxt: 0,
            snd_wnd: 0,
            rcv_wnd: 0,
            mss: 0,
            snd_wscale: 0,
            rcv_wscale: 0,
            sack_permitted: false,
            timestamps: false,
            ts_recent: 0,
            ts_last_sent: 0,
        }
    }
    /// Rebuild an unready TCB from a checkpoint.
    pub fn restore(now: Instant, config: TcpConfig, export: &TcbExport) -> Tcb {
        let _ = now;
        Tcb {
            tuple: export.tuple,
            config,
            state: State::Unready,
        }
    }
}
