//! View changes: what one committed view changed from the one before it.
//!
//! A box polls the store and may find the view several numbers ahead of
//! the last one it saw; [`changes_between`] rebuilds each change in between
//! from the reasons the new view carries, so every box reports the same
//! sequence of changes whatever its polling pace. It knows nothing of the
//! state machine or the stores.

use std::fmt;

use crate::{CommittedLoads, Member, Reason, View, ViewNumber};

/// One committed view change, as every box that saw it reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewChange {
    /// The view the change starts from.
    pub from: ViewNumber,
    /// The view it committed (`from + 1`, unless `reason` is `None`).
    pub number: ViewNumber,
    /// Members of view `from` that are not in view `number` (a dead box,
    /// or the previous incarnation of a box that rejoined).
    pub left: Vec<Member>,
    /// Members of view `number` that were not in view `from`.
    pub joined: Vec<Member>,
    /// The members of view `number`, sorted by id.
    pub members: Vec<Member>,
    /// Why; `None` when the box missed views whose reasons the store no
    /// longer carries, and this change merges them.
    pub reason: Option<Reason>,
    /// The survivors' loads committed with the change (issue 20): a
    /// load-aware split is computed from them, and only from them. A merged
    /// change (`reason: None`) carries none.
    pub loads: CommittedLoads,
}

impl ViewChange {
    fn diff(
        from: ViewNumber,
        before: &[Member],
        after: &View,
        reason: Option<Reason>,
        loads: CommittedLoads,
    ) -> Self {
        ViewChange {
            from,
            number: after.number,
            left: before
                .iter()
                .copied()
                .filter(|m| !after.members.contains(m))
                .collect(),
            joined: after
                .members
                .iter()
                .copied()
                .filter(|m| !before.contains(m))
                .collect(),
            members: after.members.clone(),
            reason,
            loads,
        }
    }

    /// Whether box `id` left with this change and did not come back in it
    /// (a death, not a restart).
    pub fn died(&self, id: u16) -> bool {
        self.left.iter().any(|m| m.id == id) && !self.members.iter().any(|m| m.id == id)
    }
}

/// The one line a box logs per change: `view 4 → 5: box 3 (epoch 2)
/// silent for 310 ms; left [3/2]; joined []; members [1/1, 2/4]`.
impl fmt::Display for ViewChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |ms: &[Member]| {
            ms.iter()
                .map(|m| format!("{}/{}", m.id, m.epoch))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "view {} → {}: ", self.from, self.number)?;
        match &self.reason {
            Some(r) => write!(f, "{r}")?,
            None => f.write_str("several changes merged")?,
        }
        write!(
            f,
            "; left [{}]; joined [{}]; members [{}]",
            list(&self.left),
            list(&self.joined),
            list(&self.members)
        )
    }
}

/// The changes from view `last` to view `now`, one per view number in
/// between when `now` still carries their reasons, or one merged change
/// (reason `None`) when it does not or they do not add up. Empty when
/// `now` is not newer than `last`.
pub fn changes_between(last: &View, now: &View) -> Vec<ViewChange> {
    if now.number <= last.number {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut members = last.members.clone();
    let mut from = last.number;
    while from < now.number {
        let Some(number) = from.next() else { break };
        let reason = now.reason_of(number).and_then(Reason::from_code);
        let Some(reason) = reason else { break };
        let after = reason.apply(&members);
        let step = View {
            number,
            members: after.clone(),
            ..View::default()
        };
        let loads = now.loads_of(number).clone();
        out.push(ViewChange::diff(from, &members, &step, Some(reason), loads));
        members = after;
        from = number;
    }
    if from == now.number && members == now.members {
        return out;
    }
    // A gap the reasons cannot bridge, or a rebuilt view that does not
    // match the committed one: report the whole step as one change rather
    // than a guess.
    vec![ViewChange::diff(
        last.number,
        &last.members,
        now,
        None,
        CommittedLoads::None,
    )]
}
