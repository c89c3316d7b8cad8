//! The events a TCB owes its application, kept as a set of flags in a
//! fixed delivery order instead of a queue (issue 19: the queue was 32
//! bytes in every TCB plus a 64-byte allocation every idle connection
//! kept).
//!
//! A queue delivered events in the order they happened; the set delivers
//! them in the order a connection's life makes them happen — opened
//! (`Established`, or `Ready`/`NotReady` after a restore), data
//! (`Readable`, `Writable`), the peer's FIN, the end (`Reset`,
//! `TimedOut`, `Closed`) — so an application that drains the events after
//! each input sees the same sequence. An event raised twice before it is
//! polled is delivered once (it always was for `Readable` and `Writable`;
//! the others happen once in a connection's life).
//!
//! Knows nothing of TCBs: only [`Event`].

use super::{Event, SeqNum};

/// Delivery order: the bit of each event kind.
const ESTABLISHED: u16 = 1 << 0;
const READY: u16 = 1 << 1;
const NOT_READY: u16 = 1 << 2;
const READABLE: u16 = 1 << 3;
const WRITABLE: u16 = 1 << 4;
const PEER_CLOSED: u16 = 1 << 5;
const RESET: u16 = 1 << 6;
const TIMED_OUT: u16 = 1 << 7;
const CLOSED: u16 = 1 << 8;

/// Events not yet polled (see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EventSet {
    bits: u16,
    /// `Ready`'s positions, while it is owed.
    ready: (SeqNum, SeqNum),
}

impl EventSet {
    fn bit(e: &Event) -> u16 {
        match e {
            Event::Established => ESTABLISHED,
            Event::Ready { .. } => READY,
            Event::NotReady => NOT_READY,
            Event::Readable => READABLE,
            Event::Writable => WRITABLE,
            Event::PeerClosed => PEER_CLOSED,
            Event::Reset => RESET,
            Event::TimedOut => TIMED_OUT,
            Event::Closed => CLOSED,
        }
    }

    /// Owes `e` (once, however often it is pushed before it is polled;
    /// a later `Ready` replaces an earlier one's positions).
    pub(crate) fn push(&mut self, e: Event) {
        if let Event::Ready { snd_una, rcv_nxt } = e {
            self.ready = (snd_una, rcv_nxt);
        }
        self.bits |= Self::bit(&e);
    }

    /// The next event owed, in delivery order.
    pub(crate) fn pop(&mut self) -> Option<Event> {
        if self.bits == 0 {
            return None;
        }
        let bit = 1u16 << self.bits.trailing_zeros();
        self.bits &= !bit;
        Some(match bit {
            ESTABLISHED => Event::Established,
            READY => Event::Ready {
                snd_una: self.ready.0,
                rcv_nxt: self.ready.1,
            },
            NOT_READY => Event::NotReady,
            READABLE => Event::Readable,
            WRITABLE => Event::Writable,
            PEER_CLOSED => Event::PeerClosed,
            RESET => Event::Reset,
            TIMED_OUT => Event::TimedOut,
            _ => Event::Closed,
        })
    }

    /// True when nothing is owed.
    pub(crate) fn is_empty(&self) -> bool {
        self.bits == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(s: &mut EventSet) -> Vec<Event> {
        std::iter::from_fn(|| s.pop()).collect()
    }

    #[test]
    fn events_come_out_in_a_connections_order_whatever_order_they_went_in() {
        let mut s = EventSet::default();
        for e in [
            Event::Closed,
            Event::PeerClosed,
            Event::Writable,
            Event::Readable,
            Event::Established,
        ] {
            s.push(e);
        }
        assert_eq!(
            drain(&mut s),
            [
                Event::Established,
                Event::Readable,
                Event::Writable,
                Event::PeerClosed,
                Event::Closed
            ]
        );
        assert!(s.is_empty());
    }

    #[test]
    fn an_event_owed_twice_is_delivered_once_and_ready_keeps_its_latest_positions() {
        let mut s = EventSet::default();
        s.push(Event::Readable);
        s.push(Event::Readable);
        s.push(Event::Ready {
            snd_una: SeqNum(1),
            rcv_nxt: SeqNum(2),
        });
        s.push(Event::Ready {
            snd_una: SeqNum(10),
            rcv_nxt: SeqNum(20),
        });
        assert_eq!(
            drain(&mut s),
            [
                Event::Ready {
                    snd_una: SeqNum(10),
                    rcv_nxt: SeqNum(20)
                },
                Event::Readable
            ]
        );
        s.push(Event::Readable);
        assert_eq!(s.pop(), Some(Event::Readable), "owed again once polled");
        assert_eq!(s.pop(), None);
    }

    #[test]
    fn every_event_kind_round_trips() {
        let all = [
            Event::Established,
            Event::Ready {
                snd_una: SeqNum(7),
                rcv_nxt: SeqNum(8),
            },
            Event::NotReady,
            Event::Readable,
            Event::Writable,
            Event::PeerClosed,
            Event::Reset,
            Event::TimedOut,
            Event::Closed,
        ];
        for e in all {
            let mut s = EventSet::default();
            s.push(e);
            assert_eq!(drain(&mut s), [e]);
        }
    }
}
