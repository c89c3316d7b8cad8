//! Frames waiting for their neighbour's MAC ([`PendingFrames`]), bounded
//! in count, bytes and age. Holds built frames only and knows no
//! protocol: the worker keeps a frame here while it asks (ARP, later NDP)
//! and writes the destination MAC in once the neighbour answers.

use super::cache::{NeighbourAddr, REQUEST_INTERVAL};
use crate::port::TxOffload;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Frames kept for neighbours being resolved, at most, and bytes at most.
const PENDING_FRAMES: usize = 16_384;
const PENDING_BYTES: usize = 8 << 20;
/// A frame waits at most this long for its neighbour's answer: the next
/// request for the address may go out then (REQUEST_INTERVAL), and TCP
/// has retransmitted by then anyway.
pub const PENDING_MAX_AGE: Duration = REQUEST_INTERVAL;

/// A frame without its destination MAC yet, and its offload requests.
pub type PendingFrame = (Vec<u8>, Option<TxOffload>);

/// Frames waiting for a neighbour's answer (RFC 1122 §2.3.2.2: the link layer SHOULD save,
/// rather than discard, packets for an address being resolved). Without
/// this, the probe of every connection restored for a client this box has
/// never talked to (the usual case after a takeover) would be lost and
/// resent only after the first probe interval.
#[derive(Debug)]
pub struct PendingFrames<A: NeighbourAddr = Ipv4Addr> {
    /// Per address: when its first frame was kept, and the frames.
    by_ip: HashMap<A, (Instant, Vec<PendingFrame>)>,
    frames: usize,
    bytes: usize,
}

impl<A: NeighbourAddr> Default for PendingFrames<A> {
    fn default() -> Self {
        PendingFrames {
            by_ip: HashMap::new(),
            frames: 0,
            bytes: 0,
        }
    }
}

impl<A: NeighbourAddr> PendingFrames<A> {
    /// Frames waiting, over all addresses.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Keeps `frame` (its destination MAC still to be written) for `ip`;
    /// false when full (the frame is dropped; TCP retransmits it).
    pub fn push(&mut self, ip: A, frame: &[u8], offload: Option<TxOffload>, now: Instant) -> bool {
        self.expire(now);
        if self.frames >= PENDING_FRAMES || self.bytes + frame.len() > PENDING_BYTES {
            return false;
        }
        let entry = self.by_ip.entry(ip).or_insert_with(|| (now, Vec::new()));
        entry.1.push((frame.to_vec(), offload));
        self.frames += 1;
        self.bytes += frame.len();
        true
    }

    /// Forgets frames that waited longer than [`PENDING_MAX_AGE`].
    pub fn expire(&mut self, now: Instant) {
        if self.by_ip.is_empty() {
            return;
        }
        let (mut frames, mut bytes) = (0, 0);
        self.by_ip.retain(|_, (since, q)| {
            let keep = now.saturating_duration_since(*since) < PENDING_MAX_AGE;
            if keep {
                frames += q.len();
                bytes += q.iter().map(|(f, _)| f.len()).sum::<usize>();
            }
            keep
        });
        self.frames = frames;
        self.bytes = bytes;
    }

    /// The frames waiting for `ip`, now that its MAC is known.
    pub fn take(&mut self, ip: A) -> Vec<PendingFrame> {
        match self.by_ip.remove(&ip) {
            Some((_, q)) => {
                self.frames -= q.len();
                self.bytes -= q.iter().map(|(f, _)| f.len()).sum::<usize>();
                q
            }
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 101);

    #[test]
    fn frames_for_a_neighbour_that_never_answers_are_dropped_after_a_second() {
        let now = Instant::now();
        let mut q = PendingFrames::default();
        assert!(q.push(CLIENT, &[1; 60], None, now));
        q.expire(now + Duration::from_millis(999));
        assert_eq!(q.frames, 1);
        q.expire(now + PENDING_MAX_AGE);
        assert_eq!((q.frames, q.bytes), (0, 0));
        assert!(q.take(CLIENT).is_empty());
    }
}
