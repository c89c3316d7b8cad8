//! Passive opens: the LISTEN state (RFC 9293 §3.10.7.2), a bounded SYN
//! backlog, SYN cookies when it is full, and RFC 6528 ISNs.

use super::{FourTuple, OutSegment, Segment, Tcb, TcpConfig};
use std::time::Instant;

/// What to do with a SYN for no known connection.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum SynOutcome {
    /// A new TCB in SYN-RECEIVED; its `poll_transmit` yields the SYN-ACK.
    Tcb(Tcb),
    /// The backlog is full: send this stateless SYN-ACK carrying a cookie.
    Cookie(OutSegment),
    /// Ignore the segment.
    Drop,
}

/// What to do with a non-SYN segment for no known connection.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum UnknownOutcome {
    /// A valid SYN-cookie ACK: a new ESTABLISHED TCB (it has already
    /// processed the segment; poll it).
    Tcb(Tcb),
    /// Send this reply (a RST, RFC 9293 §3.10.7.1).
    Reply(OutSegment),
    /// Ignore the segment (e.g. it was itself a RST).
    Drop,
}

/// The passive-open side of one worker.
#[derive(Debug)]
pub struct Listener {
    config: TcpConfig,
    secret: [u8; 16],
    epoch: Option<Instant>,
}

impl Listener {
    /// A listener whose ISNs and cookies are keyed by `cookie_secret`.
    pub fn new(config: TcpConfig, cookie_secret: [u8; 16]) -> Self {
        Listener {
            config,
            secret: cookie_secret,
            epoch: None,
        }
    }

    /// A SYN for no known connection. `half_open` is how many SYN-RECEIVED
    /// TCBs the caller holds; from `backlog` on, answer with a SYN cookie.
    pub fn on_syn(
        &mut self,
        now: Instant,
        tuple: FourTuple,
        seg: &Segment,
        half_open: usize,
        backlog: usize,
    ) -> SynOutcome {
        let _ = (
            now,
            tuple,
            seg,
            half_open,
            backlog,
            &self.config,
            &self.secret,
            self.epoch,
        );
        SynOutcome::Drop
    }

    /// A non-SYN segment for no known connection: a valid cookie ACK builds
    /// an ESTABLISHED TCB; otherwise the reply to send (RST per RFC 9293
    /// §3.10.7.1, none for a RST).
    pub fn on_unknown(&mut self, now: Instant, tuple: FourTuple, seg: &Segment) -> UnknownOutcome {
        let _ = (now, tuple, seg);
        UnknownOutcome::Drop
    }
}
