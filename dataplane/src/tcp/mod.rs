//! The sans-IO TCP state machine (RFC 9293) for passive opens, with the
//! takeover hooks of the seed's Fig. 6.
//!
//! Read first: RFC 9293 (the protocol, §3.10 event processing), RFC 7323
//! (window scaling, timestamps, PAWS), RFC 2018 and RFC 6675 (SACK and loss
//! recovery), RFC 6298 (retransmission timer), RFC 5681 and RFC 6582
//! (congestion control, NewReno), RFC 5961 (blind RST/SYN/data attacks),
//! RFC 6528 (ISNs), RFC 6928 (initial window).
//!
//! This module owns one connection's TCP state and nothing else: it never
//! touches a socket and never reads the clock — time comes in as `now`
//! (like quinn-proto). The wire layer parses frames into [`Segment`]s and
//! turns [`OutSegment`]s into frames; the worker owns a flow table of
//! [`Tcb`]s keyed by [`FourTuple`] and a [`Listener`] for passive opens.
//!
//! # Call order (per worker iteration)
//!
//! Methods of [`Tcb`] fall into classes, as in quinn-proto:
//! - getters: [`Tcb::state`], [`Tcb::next_seq`], [`Tcb::send_capacity`], …
//! - inputs: [`Tcb::on_segment`], [`Tcb::on_timeout`];
//! - mutators (application): [`Tcb::send`], [`Tcb::recv`], [`Tcb::close`],
//!   [`Tcb::abort`];
//! - outputs: [`Tcb::poll_transmit`] (call until `None`),
//!   [`Tcb::poll_event`] (call until `None`), [`Tcb::poll_timeout`] (re-arm
//!   the worker's timer after every input or mutator).
//!
//! A segment for no known connection goes to [`Listener::on_syn`] (SYN) or
//! [`Listener::on_unknown`] (anything else: SYN-cookie ACK or RST reply).
//! A SYN for a known connection in TIME-WAIT that
//! [`Tcb::accepts_new_syn`] drops the old TCB and goes to the listener.
//!
//! After [`Event::Closed`] drain [`Tcb::poll_transmit`] once more (a RST
//! may be owed) before dropping the TCB. With
//! [`TcpConfig::ack_after_commit`] or [`TcpConfig::hold_acks`], call
//! [`Tcb::commit_ack`] with the checkpoint's `rcv_nxt` once it is
//! committed: while held, ACKs never pass it.
//!
//! # What is left out, on purpose
//!
//! No Nagle (the cache sends whole responses), no urgent data, no ECN, no
//! keepalive (an idle connection is closed with a FIN after
//! [`TcpConfig::idle_timeout`] instead), no simultaneous open. The
//! out-of-order queue
//! holds at most 16 runs; the receive buffer grows only while the
//! application leaves data unread.
//!
//! # Congestion control
//!
//! NewReno (RFC 5681 + RFC 6582) with SACK-based loss recovery (RFC 6675)
//! and an initial window of 10 segments (RFC 6928). We chose NewReno over
//! CUBIC (RFC 9438) because Baton's clients sit on a LAN or metro link where
//! the bandwidth-delay product is small: CUBIC's gain is on long fat
//! pipes, while NewReno is simple, has no hidden clock-driven state that a
//! takeover would need to checkpoint, and behaves predictably in the lab's
//! loss tests. CUBIC can come later behind the same interface
//! (`congestion::NewReno` is the only type that knows the algorithm).
//!
//! # Takeover
//!
//! [`Tcb::export`] gives the TCP block of a checkpoint ([`TcbExport`]);
//! [`Tcb::restore`] rebuilds an [`State::Unready`] TCB that probes the client
//! with one already-acknowledged byte and waits for its duplicate ACK before
//! it reports [`Event::Ready`] (ARCHITECTURE.md, "Takeover", steps 4-6).
//! A client whose sequence is beyond the checkpoint gets three duplicate
//! ACKs and has [`TcpConfig::restore_gap_timeout`] to send those bytes
//! again (`Ready` comes with its first one) before a RST and
//! [`Event::NotReady`] (TAKEOVER.md, "Client bytes sent as the box dies").

pub mod segment;
pub mod seq;

mod budget;
mod congestion;
mod events;
mod listener;
mod packed;
mod recvq;
mod rtt;
mod scoreboard;
mod sendq;
mod siphash;
mod tcb;

#[cfg(test)]
mod tests;

/// The chunk type [`Tcb::send`] takes, re-exported so callers need not
/// depend on `bytes` themselves.
pub use budget::{BudgetStats, BufferBudget, RECV_FLOOR, SEND_FLOOR};
pub use bytes::Bytes;
pub use listener::{Listener, SynOutcome};
pub(crate) use packed::PackedTuple;
pub use segment::{Flags, Options, OutSegment, Segment};
pub use seq::SeqNum;
pub use tcb::Tcb;

use std::net::SocketAddr;
use std::time::Duration;

/// The addresses of one connection, from Baton's side: `local` is the
/// service address the client connected to, `remote` the client.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FourTuple {
    /// Our (service) address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
}

/// Tunables of the TCP state machine. Defaults follow Linux where an RFC
/// leaves the choice open.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpConfig {
    /// MSS we advertise and the cap on what we send (RFC 9293 §3.7.1).
    pub mss: u16,
    /// Receive buffer per connection, in bytes; bounds the advertised window.
    pub recv_buffer: u32,
    /// Send buffer per connection, in bytes; bounds [`Tcb::send_capacity`].
    pub send_buffer: u32,
    /// Window scale shift we offer (RFC 7323 §2.3, at most 14).
    pub window_scale: u8,
    /// Offer/accept the timestamps option (RFC 7323 §3).
    pub timestamps: bool,
    /// Offer/accept SACK (RFC 2018).
    pub sack: bool,
    /// Delayed-ACK timer (RFC 9293 §3.8.6.3: under 0.5 s; Linux uses 40 ms).
    pub delayed_ack: Duration,
    /// RTO before any RTT sample (RFC 6298 §2.1: 1 s).
    pub initial_rto: Duration,
    /// Floor of the RTO (RFC 6298 §2.4 says 1 s; Linux uses 200 ms).
    pub min_rto: Duration,
    /// Ceiling of the RTO (RFC 6298 §2.5: at least 60 s).
    pub max_rto: Duration,
    /// Retransmissions of data before the connection is reset (Linux tcp_retries2).
    pub max_retries: u32,
    /// Retransmissions of our SYN-ACK (or SYN) before giving up (Linux tcp_synack_retries).
    pub syn_retries: u32,
    /// After this long without an acceptable segment from the peer, while
    /// nothing of ours is in flight, an ESTABLISHED or CLOSE-WAIT
    /// connection is closed with a FIN (never a RST) and a FIN-WAIT-2 one
    /// is dropped silently (Linux's `tcp_fin_timeout`, 60 s). The
    /// application is not told until [`Event::Closed`]; its own idle rule
    /// (HTTP's keep-alive timeout) should be no longer. Config key
    /// `dataplane.tcp_idle_timeout_ms`.
    pub idle_timeout: Duration,
    /// TIME-WAIT duration (2*MSL, RFC 9293 §3.4.2).
    pub time_wait: Duration,
    /// Zero-window probes sent while the peer's window stays closed before
    /// the connection is reset (Linux's tcp_retries2 rule for probes).
    pub zero_window_probe_max: u32,
    /// At most one ACK per this interval answers unacceptable segments that
    /// carry no data (Linux's tcp_invalid_ratelimit, 500 ms; RFC 5961 §7).
    pub invalid_ratelimit: Duration,
    /// Takeover probes sent before giving up with [`Event::NotReady`].
    pub restore_probe_retries: u32,
    /// Takeover probe retransmission interval: the first retries come at
    /// this interval, later ones double it.
    pub restore_probe_interval: Duration,
    /// The application acknowledges client data only once the checkpoint
    /// covering it is committed (issue 6, `ack_after_commit`). A restored
    /// TCB then treats a client whose sequence is beyond the checkpoint as
    /// having unacknowledged data in flight (it will retransmit it), not as
    /// "ahead": it becomes ready instead of resetting.
    pub ack_after_commit: bool,
    /// Client bytes (requests, FINs) are acknowledged only up to what
    /// [`Tcb::commit_ack`] covers, while the application leaves the hold
    /// on ([`Tcb::set_ack_hold`]; on from the start). Unlike
    /// `ack_after_commit` the application may lift it per connection (an
    /// upload body acknowledged freely). Set when checkpoints are written:
    /// no client byte is acknowledged before a survivor could expect it.
    pub hold_acks: bool,
    /// A restored connection whose client is beyond the checkpoint's
    /// RCV.NXT (bytes the dead box received but never checkpointed) waits
    /// this long for the client to send bytes from that RCV.NXT again
    /// (proof that the dead box never acknowledged beyond it), then resets
    /// with [`Event::NotReady`] (the dead box acknowledged bytes no
    /// checkpoint holds: a real gap). 5 s outlasts a Linux client's RTO backed off
    /// across a takeover (0.2 s, then 0.4, 0.8, 1.6, 3.2 s …: one
    /// retransmission falls in any 5 s once the survivor listens) with
    /// room for one to be lost. A client whose timestamps show it has
    /// retransmitted for longer is waited for twice that, up to 45 s.
    pub restore_gap_timeout: Duration,
    /// The worker's TCP buffer budget (`dataplane.tcp_buffer_budget`):
    /// every queue of every connection made with this config is counted in
    /// it, and held to the floors of [`BufferBudget`] once it is spent. A
    /// worker starts its own count ([`BufferBudget::fresh`]); the default
    /// is unlimited.
    pub buffer_budget: BufferBudget,
}

/// The IPv6 header is 20 bytes longer than IPv4's: on the same link the
/// MSS is that much smaller.
const IPV6_EXTRA_HEADER: u16 = 20;
/// The MSS of IPv6's minimum MTU (1280 - 40 - 20, RFC 8200 §5): no IPv6
/// path carries less.
pub const IPV6_MIN_MSS: u16 = 1220;

impl TcpConfig {
    /// The MSS we advertise and cap segments at on a connection whose
    /// local address is `local`: [`TcpConfig::mss`] is IPv4's; IPv6 takes
    /// off its longer header (never below [`IPV6_MIN_MSS`]).
    pub fn mss_for(&self, local: std::net::IpAddr) -> u16 {
        match local {
            std::net::IpAddr::V4(_) => self.mss,
            std::net::IpAddr::V6(_) => self
                .mss
                .saturating_sub(IPV6_EXTRA_HEADER)
                .max(IPV6_MIN_MSS.min(self.mss)),
        }
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            recv_buffer: 256 * 1024,
            send_buffer: 256 * 1024,
            window_scale: 7,
            timestamps: true,
            sack: true,
            delayed_ack: Duration::from_millis(40),
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            max_retries: 15,
            syn_retries: 5,
            idle_timeout: Duration::from_secs(60),
            time_wait: Duration::from_secs(60),
            zero_window_probe_max: 15,
            invalid_ratelimit: Duration::from_millis(500),
            // 12: ~26 s (up to ~38 s with the spread) before a restored
            // connection nobody answers is reset. 9 (~3.3 s) reset live
            // clients whose answers an overloaded inheritor dropped for
            // seconds (HTTPS takeover of 10,000: 4-13 resets; BENCHMARKS.md
            // Open findings); Linux itself retransmits for ~15 min before
            // it resets, and a client that is gone costs only a TCB.
            restore_probe_retries: 12,
            // The client answers a probe in ~1-2 ms on a LAN (measured: 1.6 ms,
            // ARCHITECTURE.md). 50 ms leaves room for a survivor busy restoring
            // thousands of connections and for one lost probe within the 200 ms
            // p99 stall goal; 6 tries back off to ~3.2 s in total.
            restore_probe_interval: Duration::from_millis(50),
            ack_after_commit: false,
            hold_acks: false,
            restore_gap_timeout: Duration::from_secs(5),
            buffer_budget: BufferBudget::default(),
        }
    }
}

/// Connection states (RFC 9293 §3.3.2), plus `Unready` for takeover.
///
/// LISTEN is played by [`Listener`]; a [`Tcb`] starts in `SynReceived`
/// (passive open), `SynSent` (active open, used by tests and tools),
/// `Established` (SYN-cookie ACK) or `Unready` (restored from a checkpoint).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum State {
    /// SYN sent, waiting for a matching SYN (active open).
    SynSent = 1,
    /// SYN received and SYN-ACK sent, waiting for the ACK of our SYN.
    SynReceived = 2,
    /// Open; data flows both ways.
    Established = 3,
    /// We closed (FIN sent); waiting for its ACK or the peer's FIN.
    FinWait1 = 4,
    /// Our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2 = 5,
    /// Both sides closed at once; waiting for the ACK of our FIN.
    Closing = 6,
    /// Both FINs acknowledged; waiting 2*MSL so stray segments die out.
    TimeWait = 7,
    /// The peer closed (FIN received); we may still send.
    CloseWait = 8,
    /// The peer closed and so did we; waiting for the ACK of our FIN.
    LastAck = 9,
    /// No connection; the TCB can be removed.
    Closed = 10,
    /// Restored from a checkpoint: probing the peer for its true sequence
    /// numbers; may not carry data until [`Event::Ready`] (seed Fig. 6).
    Unready = 11,
}

impl State {
    /// The state as a byte, for checkpoints.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The state from a checkpoint byte; `None` for an unknown value.
    pub fn from_u8(v: u8) -> Option<State> {
        Some(match v {
            1 => State::SynSent,
            2 => State::SynReceived,
            3 => State::Established,
            4 => State::FinWait1,
            5 => State::FinWait2,
            6 => State::Closing,
            7 => State::TimeWait,
            8 => State::CloseWait,
            9 => State::LastAck,
            10 => State::Closed,
            11 => State::Unready,
            _ => return None,
        })
    }

    /// States in which our side has not yet sent a FIN, so data may be queued.
    pub fn can_send(self) -> bool {
        matches!(
            self,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        )
    }
}

/// What happened to a connection, for the application (poll with
/// [`Tcb::poll_event`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    /// The handshake completed.
    Established,
    /// New in-order data can be read with [`Tcb::recv`].
    Readable,
    /// Send space was freed; [`Tcb::send_capacity`] grew.
    Writable,
    /// The peer's FIN arrived: no more data will come.
    PeerClosed,
    /// The connection is fully done; the TCB can be removed.
    Closed,
    /// An acceptable RST arrived, or we reset the connection (abort).
    Reset,
    /// Retransmissions or probes ran out (we sent a RST to a peer that no
    /// longer answers), or a FIN-WAIT-2 connection stayed idle (dropped
    /// without a RST).
    TimedOut,
    /// A restored TCB learned the peer's true position and may carry data:
    /// resume sending at `snd_una`; `rcv_nxt` is the next byte expected.
    Ready {
        /// The first byte the client has not acknowledged: the next byte to send.
        snd_una: SeqNum,
        /// The next byte expected from the client.
        rcv_nxt: SeqNum,
    },
    /// A restored TCB cannot resume (the client is ahead of the checkpoint,
    /// or never answered); a RST was sent.
    NotReady,
}

/// Why [`Tcb::send`] refused data.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SendError {
    /// A restored TCB has not yet resynchronised with the peer.
    #[error("connection is not ready (takeover in progress)")]
    NotReady,
    /// We already sent a FIN or the connection is closed.
    #[error("connection is closed for sending")]
    Closed,
    /// The data does not fit in the send buffer; see [`Tcb::send_capacity`].
    #[error("send buffer full: {len} bytes offered, {capacity} free")]
    Full {
        /// Bytes offered.
        len: usize,
        /// Bytes that would have been accepted.
        capacity: usize,
    },
}

/// Counters and estimates of one connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcbStats {
    /// Payload bytes sent, retransmissions included.
    pub bytes_sent: u64,
    /// Payload bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// In-order payload bytes received.
    pub bytes_received: u64,
    /// Segments sent.
    pub segments_sent: u64,
    /// Segments received.
    pub segments_received: u64,
    /// Segments retransmitted (RTO, fast retransmit, SACK recovery).
    pub retransmits: u64,
    /// Retransmission timeouts that fired.
    pub rto_fired: u64,
    /// Fast retransmits (recovery episodes entered).
    pub fast_retransmits: u64,
    /// Segments dropped as unacceptable (out of window, PAWS, …).
    pub dropped: u64,
    /// Challenge ACKs sent (RFC 5961). This and `oow_acks` are u32 so
    /// that an idle TCB stays within its size (a wrap only skews the
    /// worker's sum of one interval).
    pub challenge_acks: u32,
    /// ACKs sent in answer to a segment that cannot belong to the
    /// connection as it stands: out of window, PAWS-old, or an in-window
    /// RST or SYN (the challenge ACKs are among them). Rate-limited for
    /// segments without data.
    pub oow_acks: u32,
    /// Smoothed RTT, microseconds (0 before the first sample).
    pub srtt_us: u64,
    /// Current retransmission timeout, microseconds.
    pub rto_us: u64,
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Slow-start threshold, bytes.
    pub ssthresh: u32,
    /// Effective send MSS (payload bytes per segment), bytes.
    pub mss: u16,
}

/// The TCP block of a checkpoint: what a survivor needs to resume the
/// connection (ARCHITECTURE.md "Checkpoints"; Fig. 5 of the seed names the
/// sequence numbers, the rest is what the peer negotiated). Plain data.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TcbExport {
    /// Both addresses and ports.
    pub tuple: FourTuple,
    /// State at export time (see [`State::as_u8`]).
    pub state: State,
    /// Our initial sequence number.
    pub iss: u32,
    /// The client's initial sequence number.
    pub irs: u32,
    /// First byte the client has not acknowledged.
    pub snd_una: u32,
    /// Next byte we would send (excluding retransmissions).
    pub snd_nxt: u32,
    /// Next byte expected from the client.
    pub rcv_nxt: u32,
    /// The client's window, in bytes (already scaled).
    pub snd_wnd: u32,
    /// Our receive window, in bytes.
    pub rcv_wnd: u32,
    /// Effective send MSS (payload bytes per segment, options excluded).
    pub mss: u16,
    /// Shift applied to the client's window field.
    pub snd_wscale: u8,
    /// Shift we apply to our window field.
    pub rcv_wscale: u8,
    /// SACK was negotiated.
    pub sack_permitted: bool,
    /// Timestamps were negotiated.
    pub timestamps: bool,
    /// The client's last valid TSval (TS.Recent, RFC 7323 §4.3).
    pub ts_recent: u32,
    /// Our timestamp clock at export time: no TSval we sent is above it, so a
    /// survivor continuing from here never goes backwards (PAWS).
    pub ts_last_sent: u32,
    /// No ACK beyond `rcv_nxt` was or will be sent from the exporting box
    /// (its ACKs were held at the committed point: `ack_after_commit`,
    /// `hold_acks` while the application holds, or a final checkpoint
    /// before a planned move): a
    /// client sequence beyond `rcv_nxt` is then data in flight, which the
    /// client retransmits, never data it believes delivered.
    pub acks_covered: bool,
}
