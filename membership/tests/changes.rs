//! A box that reads the store late still reports every change in between,
//! exactly as a box that read each view did, as long as the store still
//! carries the reasons; beyond that, one merged change that ends where the
//! store is.

use baton_membership::{changes_between, Member, MemoryStore, Reason, View, ViewStore};
use proptest::prelude::*;

/// A run of committed views made of random joins and removals.
fn history(steps: &[(u16, bool)]) -> Vec<View> {
    let store = MemoryStore::new();
    let mut epochs = [0u32; 8];
    for &(id, join) in steps {
        let current = store.read().unwrap();
        let member = current.members.iter().copied().find(|m| m.id == id);
        let reason = match (join, member) {
            (false, Some(member)) => Reason::Silent {
                member,
                silent_ms: 300,
            },
            _ => {
                epochs[id as usize] += 1;
                Reason::Joined(Member {
                    id,
                    epoch: epochs[id as usize],
                })
            }
        };
        let members = reason.apply(&current.members);
        store.propose(id, current.number, &members, reason).unwrap();
    }
    let mut views = vec![View::default()];
    views.extend(store.history());
    views
}

proptest! {
    #[test]
    fn a_late_reader_reports_the_same_changes_as_a_reader_of_every_view(
        steps in proptest::collection::vec((0u16..8, any::<bool>()), 1..30),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        let views = history(&steps);
        let (mut from, mut to) = (a.index(views.len()), b.index(views.len()));
        if from > to {
            std::mem::swap(&mut from, &mut to);
        }
        let late = changes_between(&views[from], &views[to]);
        if from == to {
            prop_assert!(late.is_empty());
            return Ok(());
        }
        let step_by_step: Vec<_> = (from..to)
            .flat_map(|i| changes_between(&views[i], &views[i + 1]))
            .collect();
        prop_assert_eq!(step_by_step.len(), to - from);
        if to - from <= baton_membership::REASON_HISTORY {
            prop_assert_eq!(&late, &step_by_step);
        } else {
            prop_assert_eq!(late.len(), 1);
            prop_assert_eq!(late[0].reason, None);
        }
        let last = late.last().unwrap();
        prop_assert_eq!(&last.members, &views[to].members);
        prop_assert_eq!(late[0].from, views[from].number);
    }
}
