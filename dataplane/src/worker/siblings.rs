//! Neighbour news between the workers of one box. The port's fanout sends
//! every ARP and neighbour-discovery frame to worker 0, but a connection
//! restored on worker 1 for a client that box never talked to asks for the
//! client's MAC itself and would never hear the answer: its probe waited
//! out the pending-frame bound and the connection was lost. What a worker
//! learns from ARP or NDP addressed to us it posts to its siblings, which
//! learn it and send the frames they held for that address.
//!
//! Knows the waker and the neighbour's address and MAC; not the protocol
//! that taught it, nor the tables the siblings keep.

use super::waker::Waker;
use crate::wire::ethernet::MacAddr;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::net::IpAddr;

/// Items a worker's inbox holds; a burst beyond (a hostile LAN's ARP
/// flood) drops news, counted, never blocking the poster.
pub const INBOX: usize = 4096;

/// One learned neighbour.
pub type News = (IpAddr, MacAddr);

/// One worker's end: its inbox, and its siblings' inboxes with their
/// wakers (a sibling blocked in its adaptive wait must hear at once: a
/// probe is waiting there).
#[derive(Debug)]
pub struct Siblings {
    inbox: Receiver<News>,
    others: Vec<(Sender<News>, Waker)>,
}

impl Siblings {
    /// The ends for workers woken by `wakers` (one per worker, in worker
    /// order): element `i` is worker `i`'s.
    pub fn link(wakers: &[Waker]) -> Vec<Siblings> {
        let (txs, rxs): (Vec<_>, Vec<_>) = wakers
            .iter()
            .map(|_| crossbeam_channel::bounded(INBOX))
            .unzip();
        rxs.into_iter()
            .enumerate()
            .map(|(i, inbox)| Siblings {
                inbox,
                others: txs
                    .iter()
                    .zip(wakers)
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, (tx, w))| (tx.clone(), w.clone()))
                    .collect(),
            })
            .collect()
    }

    /// Tells every sibling; returns how many inboxes were full.
    pub fn post(&self, news: News) -> u64 {
        let mut dropped = 0;
        for (tx, waker) in &self.others {
            match tx.try_send(news) {
                Ok(()) => waker.wake(),
                Err(TrySendError::Full(_)) => dropped += 1,
                // A sibling that stopped needs nothing.
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
        dropped
    }

    /// The next piece of news, if any.
    pub fn next(&self) -> Option<News> {
        self.inbox.try_recv().ok()
    }

    /// Whether this worker has siblings at all.
    pub fn any(&self) -> bool {
        !self.others.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn news_reaches_every_other_worker_once_and_never_its_poster() {
        let wakers = vec![Waker::new(), Waker::new(), Waker::new()];
        let s = Siblings::link(&wakers);
        let news = (
            "198.18.0.101".parse().unwrap(),
            MacAddr([2, 0, 0, 0, 0, 0x64]),
        );
        assert_eq!(s[0].post(news), 0);
        assert_eq!(s[0].next(), None, "not to itself");
        for other in &s[1..] {
            assert_eq!(other.next(), Some(news));
            assert_eq!(other.next(), None);
        }
        assert!(wakers[1].drain() && wakers[2].drain(), "both were woken");
        assert!(!wakers[0].drain());
    }

    #[test]
    fn a_full_inbox_drops_news_and_counts_it() {
        let wakers = vec![Waker::new(), Waker::new()];
        let s = Siblings::link(&wakers);
        let news = (
            "198.18.0.101".parse().unwrap(),
            MacAddr([2, 0, 0, 0, 0, 0x64]),
        );
        for _ in 0..INBOX {
            assert_eq!(s[0].post(news), 0);
        }
        assert_eq!(s[0].post(news), 1);
        assert!(!Siblings::link(&wakers[..1])[0].any());
    }
}
