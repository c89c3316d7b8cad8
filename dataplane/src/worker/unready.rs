//! Restored connections waiting for their client's answer to the takeover
//! probe, and how many of them are still *young*: restored less than
//! [`YOUNG_FOR`] ago, in the phase where a probe is retried every ~50 ms.
//! The worker admits the control core's further restores only while fewer
//! than its restore window are young (`WorkerConfig::restore_window`).
//!
//! Young, not all waiting: a connection whose client does not answer for
//! seconds backs its probes off (100, 200, 400 … ms) and costs little, but
//! it waits up to ~26 s before it gives up. Counted against the window, a
//! few thousand such connections stalled a survivor's takeover (measured:
//! 8,316 of 50,000 still pending after 15 s in a 100,000-connection kill).
//!
//! Pure bookkeeping: it knows connection ids and instants, not TCP.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::flow::ConnId;

/// How long a restored connection counts as young: the first probe and
/// its four retries at the base interval (50 ms plus up to 25 ms of
/// spread each, `FLAT_PROBE_RETRIES` in the TCB).
pub(crate) const YOUNG_FOR: Duration = Duration::from_millis(300);

/// Waiting connections by id, with the moment each was restored.
#[derive(Debug, Default)]
pub(crate) struct Unready {
    /// When each waiting connection was restored, and whether it still
    /// counts as young.
    since: HashMap<ConnId, (Instant, bool)>,
    /// The young ones in the order they were restored (entries of
    /// connections that ended since are skipped when they age out).
    by_age: VecDeque<(ConnId, Instant)>,
    /// Waiting connections that are young.
    young: usize,
}

impl Unready {
    /// Connection `id` was restored at `now` and waits for its client.
    pub(crate) fn started(&mut self, id: ConnId, now: Instant) {
        if let Some((_, was_young)) = self.since.insert(id, (now, true)) {
            // Restored twice under one id: the first entry is gone.
            self.young -= usize::from(was_young);
        }
        self.young += 1;
        self.by_age.push_back((id, now));
    }

    /// Connection `id` stopped waiting (ready, ended or handed away);
    /// returns when it was restored, if it was waiting.
    pub(crate) fn ended(&mut self, id: ConnId) -> Option<Instant> {
        let (at, young) = self.since.remove(&id)?;
        self.young -= usize::from(young);
        Some(at)
    }

    /// Waiting connections restored less than [`YOUNG_FOR`] before `now`.
    pub(crate) fn young(&mut self, now: Instant) -> usize {
        while let Some(&(id, at)) = self.by_age.front() {
            if now.saturating_duration_since(at) < YOUNG_FOR {
                break;
            }
            self.by_age.pop_front();
            if let Some(entry) = self.since.get_mut(&id) {
                if entry.0 == at && entry.1 {
                    entry.1 = false;
                    self.young -= 1;
                }
            }
        }
        self.young
    }

    /// Waiting connections, young or not.
    pub(crate) fn len(&self) -> usize {
        self.since.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowTable;
    use crate::tcp::{FourTuple, SeqNum, Tcb, TcpConfig};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    /// Ids of `n` connections of one flow table.
    fn ids(n: u16) -> Vec<ConnId> {
        let mut flows = FlowTable::new();
        (0..n)
            .map(|p| {
                let tuple = FourTuple {
                    local: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 11)), 80),
                    remote: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)), 40_000 + p),
                };
                let tcb = Tcb::connect(Instant::now(), TcpConfig::default(), tuple, SeqNum(1));
                flows.insert(tcb)
            })
            .collect()
    }

    #[test]
    fn a_connection_counts_young_until_it_ends_or_ages() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let id = ids(3);
        let mut u = Unready::default();
        u.started(id[0], t0);
        u.started(id[1], t0 + ms(100));
        u.started(id[2], t0 + ms(200));
        assert_eq!((u.young(t0 + ms(200)), u.len()), (3, 3));
        // Ready while young: it leaves both counts at once.
        assert_eq!(u.ended(id[1]), Some(t0 + ms(100)));
        assert_eq!((u.young(t0 + ms(250)), u.len()), (2, 2));
        // The first ages out but still waits: no longer young.
        assert_eq!((u.young(t0 + ms(300)), u.len()), (1, 2));
        // Ending it after it aged does not count it twice.
        assert_eq!(u.ended(id[0]), Some(t0));
        assert_eq!((u.young(t0 + ms(310)), u.len()), (1, 1));
        // The ended one's stale entry ages out without effect.
        assert_eq!((u.young(t0 + ms(500)), u.len()), (0, 1));
        assert_eq!(u.ended(id[2]), Some(t0 + ms(200)));
        assert_eq!(u.ended(id[2]), None, "ended once");
        assert_eq!((u.young(t0 + ms(900)), u.len()), (0, 0));
    }
}
