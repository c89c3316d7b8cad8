//! Why a view changed, and its 64-bit code in the view store.
//!
//! A reason names the one member a change adds or removes, with its epoch,
//! so the code is enough to rebuild view *n* from view *n − 1*: a box that
//! missed a view learns what it changed from the reasons the next view
//! carries (`baton_shmem::View::reasons`). This module knows nothing of
//! stores or of the state machine.
//!
//! Code layout: bits 63..56 kind (1 joined, 2 silent), 55..48 box id,
//! 47..32 how long the member was silent in ms (saturated), 31..0 epoch.
//! 0 is "unknown".

use std::fmt;

use crate::Member;

/// Why a view changed: the one member it added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// This incarnation of a box joined, after its dataplane came up and it
    /// beat once. A previous incarnation of the same id, if it was still a
    /// member, left with this change.
    Joined(Member),
    /// This member was removed because its heartbeat was silent.
    Silent {
        /// The member removed.
        member: Member,
        /// How long the detector had not heard it, in ms (at most 65,535).
        silent_ms: u16,
    },
}

const KIND_JOINED: u64 = 1;
const KIND_SILENT: u64 = 2;

impl Reason {
    /// The member the change adds or removes.
    pub fn member(&self) -> Member {
        match *self {
            Reason::Joined(m) | Reason::Silent { member: m, .. } => m,
        }
    }

    /// The reason's code in the view store (never 0).
    pub fn code(&self) -> u64 {
        let (kind, detail) = match *self {
            Reason::Joined(_) => (KIND_JOINED, 0),
            Reason::Silent { silent_ms, .. } => (KIND_SILENT, silent_ms as u64),
        };
        let m = self.member();
        (kind << 56) | ((m.id as u64 & 0xff) << 48) | (detail << 32) | m.epoch as u64
    }

    /// The reason a code stands for; `None` for 0 (unknown) or a code this
    /// build does not write (it is never guessed at).
    pub fn from_code(code: u64) -> Option<Reason> {
        let member = Member {
            id: ((code >> 48) & 0xff) as u16,
            epoch: code as u32,
        };
        if member.epoch == 0 {
            return None;
        }
        let detail = ((code >> 32) & 0xffff) as u16;
        match code >> 56 {
            KIND_JOINED if detail == 0 => Some(Reason::Joined(member)),
            KIND_SILENT => Some(Reason::Silent {
                member,
                silent_ms: detail,
            }),
            _ => None,
        }
    }

    /// The members after this change is applied to `members` (sorted by
    /// id): a join sets its id's epoch, a removal drops its exact member.
    pub fn apply(&self, members: &[Member]) -> Vec<Member> {
        match *self {
            Reason::Joined(m) => {
                let mut out: Vec<Member> =
                    members.iter().copied().filter(|x| x.id != m.id).collect();
                out.push(m);
                out.sort();
                out
            }
            Reason::Silent { member, .. } => {
                members.iter().copied().filter(|x| *x != member).collect()
            }
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::Joined(m) => write!(f, "box {} (epoch {}) joined", m.id, m.epoch),
            Reason::Silent { member, silent_ms } => write!(
                f,
                "box {} (epoch {}) silent for {} ms",
                member.id, member.epoch, silent_ms
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u16, epoch: u32) -> Member {
        Member { id, epoch }
    }

    #[test]
    fn every_reason_survives_its_code() {
        for r in [
            Reason::Joined(m(3, 7)),
            Reason::Silent {
                member: m(15, u32::MAX),
                silent_ms: 450,
            },
            Reason::Silent {
                member: m(0, 1),
                silent_ms: u16::MAX,
            },
        ] {
            assert_ne!(r.code(), 0);
            assert_eq!(Reason::from_code(r.code()), Some(r));
        }
    }

    #[test]
    fn unknown_and_foreign_codes_are_not_guessed_at() {
        assert_eq!(Reason::from_code(0), None);
        assert_eq!(Reason::from_code(9 << 56 | 1), None);
        assert_eq!(Reason::from_code(KIND_JOINED << 56), None, "epoch 0");
    }

    #[test]
    fn a_join_replaces_the_previous_incarnation_and_a_removal_drops_only_its_epoch() {
        let before = [m(1, 1), m(2, 1), m(3, 1)];
        assert_eq!(
            Reason::Joined(m(2, 2)).apply(&before),
            vec![m(1, 1), m(2, 2), m(3, 1)]
        );
        let silent = |member| Reason::Silent {
            member,
            silent_ms: 300,
        };
        assert_eq!(silent(m(3, 1)).apply(&before), vec![m(1, 1), m(2, 1)]);
        assert_eq!(silent(m(3, 2)).apply(&before), before.to_vec());
    }
}
