//! Rebalancing decisions (issue 20, `[balance]`): a pure, deterministic
//! function from the published loads to the moves that level them (which
//! box sends how many connections to whom), and a token bucket on virtual
//! time that holds a sender to `rate` moves per second.
//!
//! Every box that feeds [`plan`] the same box table gets the same moves, so
//! each one carries out only those it sends, without talking. Only the more
//! loaded box of a pair ever sends, and only when the gap exceeds the
//! threshold; a move halves the gap, so after it neither box is above the
//! other by more than one connection and the pair never sends back: the
//! loads converge rather than oscillate.
//!
//! It knows nothing of where loads come from, of the clock, nor of how a
//! move is carried out (the control core's migrate path).

use crate::placement::SurvivorLoad;

/// One decision: `from` should send `count` connections to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// The sender, the more loaded box.
    pub from: u16,
    /// The receiver, the less loaded box.
    pub to: u16,
    /// Connections to move.
    pub count: u64,
}

/// The moves that level `loads`, when the most and least loaded boxes are
/// more than `threshold` connections apart (otherwise none). The level is
/// the mean rounded up: each box above it sends its surplus; the surplus is
/// spread over the boxes below it by water filling (the least loaded first,
/// never past the level), and senders (by id) are matched to receivers (by
/// id) in order. A sender ends at the level and a receiver at most there, so
/// no receiver ever becomes a sender. Loads are counted as
/// [`least_loaded_shares`] counts them (connections, or the busy fraction of
/// `capacity` if larger). Sorted by sender, then receiver.
pub fn plan(loads: &[SurvivorLoad], capacity: u64, threshold: u64) -> Vec<Move> {
    let mut boxes: Vec<SurvivorLoad> = loads.to_vec();
    boxes.sort_unstable_by_key(|s| s.id);
    boxes.dedup_by_key(|s| s.id);
    let used: Vec<(u16, u64)> = boxes.iter().map(|s| (s.id, s.used(capacity))).collect();
    let (Some(max), Some(min)) = (
        used.iter().map(|u| u.1).max(),
        used.iter().map(|u| u.1).min(),
    ) else {
        return Vec::new();
    };
    if max - min <= threshold {
        return Vec::new();
    }
    // Targets: the mean rounded down, plus one for the `total mod n` most
    // loaded boxes (ties to the lowest id), so the senders send as little
    // as levelling needs and a full application leaves every box at its
    // target, within one connection of every other.
    let total: u128 = used.iter().map(|u| u128::from(u.1)).sum();
    let n = used.len() as u128;
    let floor = (total / n) as u64;
    let extra = (total % n) as usize;
    let mut rank: Vec<usize> = (0..used.len()).collect();
    rank.sort_unstable_by_key(|&i| (std::cmp::Reverse(used[i].1), used[i].0));
    let mut target = vec![floor; used.len()];
    for &i in rank.iter().take(extra) {
        target[i] += 1;
    }
    let mut senders: Vec<(u16, u64)> = Vec::new();
    let mut room: Vec<(u16, u64)> = Vec::new();
    for (i, &(id, u)) in used.iter().enumerate() {
        if u > target[i] {
            senders.push((id, u - target[i]));
        } else if u < target[i] {
            room.push((id, target[i] - u));
        }
    }
    // Surplus equals room exactly (targets sum to the total), so each
    // receiver gets exactly what brings it to its target.
    let mut receivers = room;
    let mut moves = Vec::new();
    let (mut s, mut r) = (0, 0);
    while s < senders.len() && r < receivers.len() {
        let count = senders[s].1.min(receivers[r].1);
        if count > 0 {
            moves.push(Move {
                from: senders[s].0,
                to: receivers[r].0,
                count,
            });
        }
        senders[s].1 -= count;
        receivers[r].1 -= count;
        if senders[s].1 == 0 {
            s += 1;
        }
        if receivers[r].1 == 0 {
            r += 1;
        }
    }
    moves.sort_unstable_by_key(|m| (m.from, m.to));
    moves
}

/// The moves box `me` sends, in [`plan`]'s order.
pub fn sends_of(moves: &[Move], me: u16) -> Vec<Move> {
    moves.iter().copied().filter(|m| m.from == me).collect()
}

/// At most `rate` moves per second on virtual time, with a burst of one
/// second's worth: what a sender may move now.
#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: u64,
    /// Thousandths of a move, so sub-second ticks accrue exactly.
    milli_tokens: u64,
    last_ms: Option<u64>,
}

impl RateLimit {
    /// A bucket for `rate` moves per second, starting full.
    pub fn new(rate: u64) -> RateLimit {
        RateLimit {
            rate,
            milli_tokens: rate.saturating_mul(1000),
            last_ms: None,
        }
    }

    /// Take up to `want` moves at `now_ms` (monotonic milliseconds); returns
    /// how many are granted. A clock that goes back grants nothing new.
    pub fn take(&mut self, now_ms: u64, want: u64) -> u64 {
        let cap = self.rate.saturating_mul(1000);
        if let Some(last) = self.last_ms {
            let elapsed = now_ms.saturating_sub(last);
            self.milli_tokens = self
                .milli_tokens
                .saturating_add(elapsed.saturating_mul(self.rate))
                .min(cap);
        }
        self.last_ms = Some(self.last_ms.map_or(now_ms, |l| l.max(now_ms)));
        let granted = want.min(self.milli_tokens / 1000);
        self.milli_tokens -= granted * 1000;
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn load(id: u16, connections: u64) -> SurvivorLoad {
        SurvivorLoad {
            id,
            connections,
            busy_ppm: 0,
        }
    }

    #[test]
    fn a_level_table_moves_nothing() {
        assert!(plan(&[load(1, 50), load(2, 52), load(3, 49)], 1000, 4).is_empty());
    }

    #[test]
    fn a_rejoined_empty_box_gets_half_the_gap_from_the_loaded_one() {
        let moves = plan(&[load(1, 100), load(2, 0)], 1000, 10);
        assert_eq!(
            moves,
            vec![Move {
                from: 1,
                to: 2,
                count: 50
            }]
        );
        assert_eq!(sends_of(&moves, 2), vec![]);
        assert_eq!(sends_of(&moves, 1).len(), 1);
        let moves = plan(&[load(1, 4), load(2, 0), load(3, 0)], 1000, 1);
        assert_eq!(
            moves,
            vec![
                Move {
                    from: 1,
                    to: 2,
                    count: 1
                },
                Move {
                    from: 1,
                    to: 3,
                    count: 1
                }
            ],
            "receivers filled level, not one to the brim"
        );
    }

    #[test]
    fn a_busy_box_with_few_connections_counts_as_loaded() {
        let busy = SurvivorLoad {
            id: 1,
            connections: 5,
            busy_ppm: 900_000,
        };
        let moves = plan(&[busy, load(2, 100)], 1000, 10);
        assert_eq!(moves[0].from, 1);
        assert_eq!(moves[0].to, 2);
    }

    #[test]
    fn the_bucket_grants_rate_per_second_on_virtual_time() {
        let mut r = RateLimit::new(10);
        assert_eq!(r.take(0, 100), 10);
        assert_eq!(r.take(0, 100), 0);
        assert_eq!(r.take(500, 100), 5);
        assert_eq!(r.take(10_000, 100), 10, "burst capped at one second");
        assert_eq!(r.take(5_000, 100), 0, "a clock going back grants nothing");
        let mut total = 0;
        for t in 1..=100u64 {
            total += r.take(10_000 + t * 100, 100);
        }
        assert_eq!(total, 100, "ten seconds at 10/s");
    }

    proptest! {
        /// Every box computes the same plan; only the more loaded of a pair
        /// sends; applying the moves, a tick at a time at `rate`, ends with
        /// the table level to within the threshold and never sends back.
        #[test]
        fn moves_converge_without_oscillating(
            conns in proptest::collection::vec(0u64..5000, 1..8),
            threshold in 1u64..50,
            rate in 1u64..500,
        ) {
            let mut loads: Vec<SurvivorLoad> =
                conns.iter().enumerate().map(|(i, &c)| load(i as u16 + 1, c)).collect();
            let total: u64 = conns.iter().sum();
            let mut buckets: Vec<RateLimit> = loads.iter().map(|_| RateLimit::new(rate)).collect();
            let mut sent: std::collections::BTreeSet<(u16, u16)> = Default::default();
            let mut settled = false;
            // Interval 100 ms; 5000 s of virtual time is far more than
            // any case needs at rate >= 1.
            for tick in 0..50_000u64 {
                let now = tick * 100;
                let moves = plan(&loads, 1_000_000, threshold);
                let mut reversed = loads.clone();
                reversed.reverse();
                prop_assert_eq!(&plan(&reversed, 1_000_000, threshold), &moves);
                if moves.is_empty() {
                    settled = true;
                    break;
                }
                let before = loads.clone();
                for (i, b) in before.iter().enumerate() {
                    for m in sends_of(&moves, b.id) {
                        let to = before.iter().find(|x| x.id == m.to).map(|x| x.connections);
                        prop_assert!(to.is_some_and(|t| t < b.connections));
                        prop_assert!(!sent.contains(&(m.to, m.from)), "sent back");
                        sent.insert((m.from, m.to));
                        let n = buckets[i].take(now, m.count);
                        loads[i].connections -= n;
                        let j = loads.iter().position(|x| x.id == m.to).unwrap();
                        loads[j].connections += n;
                    }
                }
                prop_assert_eq!(loads.iter().map(|l| l.connections).sum::<u64>(), total);
            }
            prop_assert!(settled);
            let max = loads.iter().map(|l| l.connections).max().unwrap_or(0);
            let min = loads.iter().map(|l| l.connections).min().unwrap_or(0);
            prop_assert!(max - min <= threshold.max(1));
        }
    }
}
