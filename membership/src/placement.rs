//! Load-aware placement (issue 20, `takeover.assignment = "least_loaded"`):
//! pure, deterministic functions from a dead box's orphan count, the
//! survivors' loads and a capacity to each survivor's share, and from a
//! share and a slot number to that slot's owner. Every survivor that feeds
//! them the same inputs gets the same split, without talking; a slot (a
//! bundle) is never divided.
//!
//! The owner of a slot depends on that slot's number and the shares only,
//! never on which other slots a survivor holds: in replicated mode
//! survivors whose replicas of the dead region differ by a slot still agree
//! on every other one (as with round-robin by slot number).
//!
//! It knows nothing of where the loads come from (the box table, a
//! committed change) nor of how a split is carried out.

/// What one survivor carries, as the split sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurvivorLoad {
    /// Its member id.
    pub id: u16,
    /// Connections it owns.
    pub connections: u64,
    /// Its workers' busy fraction, parts per million (0 when unknown).
    pub busy_ppm: u32,
}

impl SurvivorLoad {
    /// Its fullness in connections: the larger of what it holds and its
    /// busy fraction of `capacity`, so a box busy with few heavy
    /// connections counts as full as one holding many idle ones.
    pub(crate) fn used(&self, capacity: u64) -> u64 {
        let busy = u128::from(capacity) * u128::from(self.busy_ppm.min(1_000_000)) / 1_000_000;
        self.connections.max(busy as u64)
    }
}

/// How many of `orphans` connections each survivor should take: water
/// filling, one connection at a time to the survivor with the most spare
/// capacity (`capacity` minus what it uses, counting what it was already
/// given; ties to the lowest id), so survivors end as level as the orphans
/// allow and a preloaded one takes fewer. Sorted by id, one entry per
/// distinct id, shares summing to `orphans` (empty without survivors).
pub fn least_loaded_shares(
    survivors: &[SurvivorLoad],
    orphans: u64,
    capacity: u64,
) -> Vec<(u16, u64)> {
    let mut boxes: Vec<SurvivorLoad> = survivors.to_vec();
    boxes.sort_unstable_by_key(|s| s.id);
    boxes.dedup_by_key(|s| s.id);
    if boxes.is_empty() {
        return Vec::new();
    }
    let mut used: Vec<u64> = boxes.iter().map(|s| s.used(capacity)).collect();
    let mut shares = vec![0u64; boxes.len()];
    let mut left = orphans;
    while left > 0 {
        // Raise the least used to the next one's level in one step rather
        // than one connection at a time (300 000 orphans stay cheap).
        let low = used.iter().copied().min().unwrap_or(0);
        let at_low: Vec<usize> = (0..used.len()).filter(|&i| used[i] == low).collect();
        let next = used.iter().copied().filter(|&u| u > low).min();
        let per = match next {
            Some(n) => (n - low).min(left / at_low.len() as u64),
            None => left / at_low.len() as u64,
        };
        if per == 0 {
            // Fewer left than boxes at the lowest level: one each, by id.
            for &i in at_low.iter().take(left as usize) {
                shares[i] += 1;
                used[i] += 1;
            }
            break;
        }
        for &i in &at_low {
            shares[i] += per;
            used[i] += per;
        }
        left -= per * at_low.len() as u64;
    }
    boxes.iter().map(|s| s.id).zip(shares).collect()
}

/// The survivor that restores `slot`'s bundle under `shares` (from
/// [`least_loaded_shares`]): the slot number is spread over [0, 1) by a
/// golden-ratio (Weyl) sequence, which covers any run of slot numbers
/// evenly, and lands in the survivors' cumulative shares. `None` when no
/// survivor has a share (no survivor, or no orphan counted).
pub fn least_loaded_owner(shares: &[(u16, u64)], slot: usize) -> Option<u16> {
    let total: u64 = shares.iter().map(|&(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
    let u = (slot as u64).wrapping_add(1).wrapping_mul(GOLDEN);
    let point = ((u128::from(u) * u128::from(total)) >> 64) as u64;
    let mut upto = 0u64;
    for &(id, n) in shares {
        upto += n;
        if point < upto {
            return Some(id);
        }
    }
    shares
        .iter()
        .rev()
        .find(|&&(_, n)| n > 0)
        .map(|&(id, _)| id)
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

    fn counts(shares: &[(u16, u64)], slots: impl Iterator<Item = usize>) -> (usize, usize) {
        let owners: Vec<Option<u16>> = slots.map(|s| least_loaded_owner(shares, s)).collect();
        let to = |id| owners.iter().filter(|&&o| o == Some(id)).count();
        (to(2), to(3))
    }

    #[test]
    fn shares_fill_the_survivors_to_one_level() {
        assert_eq!(
            least_loaded_shares(&[load(3, 0), load(2, 40)], 30, 1000),
            vec![(2, 0), (3, 30)]
        );
        assert_eq!(
            least_loaded_shares(&[load(2, 10), load(3, 0)], 30, 1000),
            vec![(2, 10), (3, 20)]
        );
        assert_eq!(
            least_loaded_shares(&[load(2, 0), load(3, 0), load(4, 0)], 31, 1000),
            vec![(2, 11), (3, 10), (4, 10)]
        );
        assert!(least_loaded_shares(&[], 5, 10).is_empty());
        assert_eq!(least_loaded_owner(&[], 0), None);
        assert_eq!(least_loaded_owner(&[(2, 0)], 0), None);
    }

    #[test]
    fn a_busy_survivor_counts_as_full_as_its_busy_fraction_of_capacity() {
        let busy = SurvivorLoad {
            id: 2,
            connections: 1,
            busy_ppm: 900_000,
        };
        assert_eq!(
            least_loaded_shares(&[busy, load(3, 50)], 10, 100),
            vec![(2, 0), (3, 10)]
        );
    }

    #[test]
    fn slots_follow_the_shares_and_the_preloaded_survivor_gets_fewer() {
        let shares = least_loaded_shares(&[load(2, 40), load(3, 0)], 30, 1000);
        assert_eq!(counts(&shares, 0..30), (0, 30));
        let shares = least_loaded_shares(&[load(2, 20), load(3, 0)], 60, 1000);
        assert_eq!(shares, vec![(2, 20), (3, 40)]);
        let (two, three) = counts(&shares, 0..60);
        assert!(
            (18..=22).contains(&two) && two + three == 60,
            "{two}/{three}"
        );
    }

    fn survivors() -> impl Strategy<Value = Vec<SurvivorLoad>> {
        prop::collection::btree_map(1u16..20, (0u64..500, 0u32..1_200_000), 1..6).prop_map(|m| {
            m.into_iter()
                .map(|(id, (connections, busy_ppm))| SurvivorLoad {
                    id,
                    connections,
                    busy_ppm,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn every_survivor_computes_the_same_split_and_each_orphan_goes_to_exactly_one(
            slots in prop::collection::btree_set(0usize..300_000, 1..200),
            loads in survivors(),
            capacity in 1u64..2000,
        ) {
            let n = slots.len() as u64;
            let reference = least_loaded_shares(&loads, n, capacity);
            prop_assert_eq!(reference.iter().map(|s| s.1).sum::<u64>(), n);
            // Each survivor lists the same facts in its own order.
            for k in 0..loads.len() {
                let mut mine = loads.clone();
                mine.rotate_left(k);
                mine.reverse();
                prop_assert_eq!(&least_loaded_shares(&mine, n, capacity), &reference);
            }
            for &slot in &slots {
                let owner = least_loaded_owner(&reference, slot);
                // Exactly one owner, a survivor with a share.
                prop_assert!(owner.is_some_and(|o| reference.iter().any(|&(id, s)| id == o && s > 0)));
            }
        }

        #[test]
        fn a_preloaded_survivor_gets_fewer_over_any_run_of_slots(
            n in 40usize..400,
            first in 0usize..100_000,
            preload_pct in 30u64..100,
        ) {
            let preload = n as u64 * preload_pct / 100;
            let shares = least_loaded_shares(&[load(2, preload), load(3, 0)], n as u64, 100_000);
            let (two, three) = counts(&shares, first..first + n);
            prop_assert!(two < three, "preloaded {preload}: {two} vs {three}");
            prop_assert_eq!(two + three, n);
        }

        #[test]
        fn no_survivor_is_pushed_past_capacity_while_another_has_room(
            loads in survivors(),
            capacity in 1u64..2000,
            orphans in 0u64..3000,
        ) {
            let shares = least_loaded_shares(&loads, orphans, capacity);
            let used = |id: u16| loads.iter().find(|l| l.id == id).map_or(0, |l| l.used(capacity));
            let spare: u64 = loads.iter().map(|l| capacity.saturating_sub(l.used(capacity))).sum();
            for &(id, share) in &shares {
                if orphans <= spare {
                    // Everything fits: nobody goes over.
                    prop_assert!(used(id) + share <= capacity.max(used(id)), "box {id}: {share}");
                }
                // Water filling never gives to a box while another sits lower.
                for &(other, other_share) in &shares {
                    if share > 0 {
                        prop_assert!(used(id) + share <= used(other) + other_share + 1,
                            "box {id} above box {other}");
                    }
                }
            }
        }

        #[test]
        fn ties_go_to_the_lowest_ids_whatever_the_order(
            ids in prop::collection::btree_set(1u16..20, 2..6),
            level in 0u64..100,
            orphans in 0u64..50,
        ) {
            let loads: Vec<SurvivorLoad> = ids.iter().rev().map(|&id| load(id, level)).collect();
            let shares = least_loaded_shares(&loads, orphans, 1000);
            let n = ids.len() as u64;
            for (i, &(id, share)) in shares.iter().enumerate() {
                prop_assert_eq!(id, *ids.iter().nth(i).unwrap_or(&0));
                let expected = orphans / n + u64::from((i as u64) < orphans % n);
                prop_assert_eq!(share, expected, "box {}", id);
            }
        }
    }
}
