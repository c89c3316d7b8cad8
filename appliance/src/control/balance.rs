//! The balancer (issue 20, `[balance]`): every `balance.interval_ms`, while
//! this box is a member of the agreed view, it reads the members' published
//! loads from the box table, computes `baton_membership::balance::plan`
//! (the same plan on every box), and moves what this box sends — at most
//! the rate's grant — to each receiver through `migrate`. Each move is
//! logged with its reason (`rejoin`: the receiver joined the view lately;
//! `takeover`: a member left lately, so a takeover piled connections up;
//! `over_threshold`: neither), counted, and kept in a short history for
//! `GET /balance`.
//!
//! It must not know how a move is carried out (`moves.rs`), nor how a load
//! is measured (`load.rs`): it reads the box table and asks `move_to`.
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use baton_config::BalanceConfig;
use baton_membership::balance::{plan, sends_of, RateLimit};
use baton_membership::{Phase, SurvivorLoad};
use tracing::{info, warn};

use super::handle::Control;

/// How many intervals a join or a departure colours the reason of moves.
const RECENT_INTERVALS: u64 = 10;
/// Moves kept for `GET /balance`.
const HISTORY: usize = 64;

/// Why connections moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MoveReason {
    /// The receiver joined the view lately (a rejoined, empty box).
    Rejoin,
    /// A member left the view lately: the survivors took its connections.
    Takeover,
    /// Neither: the loads drifted apart by more than the threshold.
    OverThreshold,
}

impl MoveReason {
    /// Every reason, in the order of [`BalanceLog::moved`].
    pub(crate) const ALL: [MoveReason; 3] = [
        MoveReason::Rejoin,
        MoveReason::Takeover,
        MoveReason::OverThreshold,
    ];

    /// As metrics and the admin API name it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MoveReason::Rejoin => "rejoin",
            MoveReason::Takeover => "takeover",
            MoveReason::OverThreshold => "over_threshold",
        }
    }
}

/// One move this box made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BalanceMove {
    /// Wall-clock time of the move, ms since the epoch.
    pub(crate) at_unix_ms: u64,
    /// The receiver.
    pub(crate) to: u16,
    /// Connections the plan and the rate allowed.
    pub(crate) asked: u64,
    /// Connections the receiver adopted.
    pub(crate) moved: u64,
    /// Why.
    pub(crate) reason: MoveReason,
}

/// What the balancer did, for the admin API and the metrics.
#[derive(Debug, Default)]
pub(crate) struct BalanceLog {
    history: Mutex<VecDeque<BalanceMove>>,
    /// Connections moved, by [`MoveReason::ALL`] index.
    moved: [AtomicU64; 3],
}

impl BalanceLog {
    fn record(&self, m: BalanceMove) {
        let i = MoveReason::ALL
            .iter()
            .position(|r| *r == m.reason)
            .unwrap_or(0);
        self.moved[i].fetch_add(m.moved, Ordering::Relaxed);
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(m);
    }

    /// The last moves, oldest first.
    pub(crate) fn history(&self) -> Vec<BalanceMove> {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        h.iter().cloned().collect()
    }

    /// Connections moved for `reason` since the start.
    pub(crate) fn moved(&self, reason: MoveReason) -> u64 {
        MoveReason::ALL
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.moved[i].load(Ordering::Relaxed))
    }
}

/// Who joined and who left the view, and when (monotonic ms): what the
/// reasons are told from. The first look records the members without
/// calling anyone new.
#[derive(Debug, Default)]
pub(crate) struct MemberWatch {
    known: Option<BTreeSet<u16>>,
    joined_at: HashMap<u16, u64>,
    left_at: Option<u64>,
}

impl MemberWatch {
    /// The view's members at `now_ms`.
    pub(crate) fn observe(&mut self, now_ms: u64, members: &BTreeSet<u16>) {
        if let Some(known) = &self.known {
            for id in members.difference(known) {
                self.joined_at.insert(*id, now_ms);
            }
            if known.difference(members).next().is_some() {
                self.left_at = Some(now_ms);
            }
        }
        self.known = Some(members.clone());
    }

    /// Why moving to `to` at `now_ms`, `recent_ms` being how long a join or
    /// a departure counts.
    pub(crate) fn reason(&self, to: u16, now_ms: u64, recent_ms: u64) -> MoveReason {
        let lately = |t: u64| now_ms.saturating_sub(t) <= recent_ms;
        if self.joined_at.get(&to).is_some_and(|t| lately(*t)) {
            MoveReason::Rejoin
        } else if self.left_at.is_some_and(lately) {
            MoveReason::Takeover
        } else {
            MoveReason::OverThreshold
        }
    }
}

/// Which members beat since the last look: a receiver must, or a box
/// killed but not yet removed from the view would be sent connections
/// (the move then fails and they are taken back, but it costs a stall).
#[derive(Debug, Default)]
pub(crate) struct Beats {
    last: HashMap<u16, u64>,
    advanced: BTreeSet<u16>,
}

impl Beats {
    /// Member `id`'s heartbeat counter now.
    pub(crate) fn observe(&mut self, id: u16, counter: u64) {
        let before = self.last.insert(id, counter);
        if before.is_some_and(|b| counter > b) {
            self.advanced.insert(id);
        } else {
            self.advanced.remove(&id);
        }
    }

    /// Whether `id` beat between the last two looks.
    pub(crate) fn alive(&self, id: u16) -> bool {
        self.advanced.contains(&id)
    }
}

/// What this box sends now: the plan's sends of `me` over `loads` to
/// receivers `alive` says are, each cut to what `bucket` grants at
/// `now_ms` (nothing once it is empty; a receiver skipped takes nothing).
pub(crate) fn sends_now(
    loads: &[SurvivorLoad],
    me: u16,
    cfg: &BalanceConfig,
    capacity: u64,
    bucket: &mut RateLimit,
    now_ms: u64,
    alive: impl Fn(u16) -> bool,
) -> Vec<(u16, u64)> {
    sends_of(&plan(loads, capacity, cfg.threshold), me)
        .into_iter()
        .filter(|m| alive(m.to))
        .filter_map(|m| {
            let granted = bucket.take(now_ms, m.count);
            (granted > 0).then_some((m.to, granted))
        })
        .collect()
}

/// Starts the balancer thread when `cfg.enabled`; it ends with `stop`.
pub(crate) fn spawn_balancer(
    control: Arc<Control>,
    cfg: BalanceConfig,
    capacity: u64,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Option<thread::JoinHandle<()>>> {
    if !cfg.enabled {
        return Ok(None);
    }
    info!(
        threshold = cfg.threshold,
        rate = cfg.rate,
        interval_ms = cfg.interval_ms,
        "balancer on: connections move to less loaded boxes"
    );
    thread::Builder::new()
        .name("balancer".into())
        .spawn(move || {
            let origin = Instant::now();
            let mut bucket = RateLimit::new(cfg.rate);
            let mut watch = MemberWatch::default();
            let mut beats = Beats::default();
            let recent_ms = cfg.interval_ms.saturating_mul(RECENT_INTERVALS);
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                // In short naps, so a stop is not held up by a long interval.
                next += Duration::from_millis(cfg.interval_ms);
                while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                    thread::sleep((next - Instant::now()).min(Duration::from_millis(100)));
                }
                let now_ms = origin.elapsed().as_millis() as u64;
                let snapshot = control.view.get();
                let Some(view) = snapshot
                    .view
                    .filter(|_| snapshot.phase == Some(Phase::Member))
                else {
                    continue;
                };
                let members: BTreeSet<u16> = view.members.iter().map(|m| m.id).collect();
                watch.observe(now_ms, &members);
                let loads = published_loads(&control, &members, &mut beats);
                let alive = |id| beats.alive(id);
                let sends = sends_now(
                    &loads,
                    control.me,
                    &cfg,
                    capacity,
                    &mut bucket,
                    now_ms,
                    alive,
                );
                for (to, asked) in sends {
                    let reason = watch.reason(to, now_ms, recent_ms);
                    match control.move_to(to, asked as usize) {
                        Ok(moved) => {
                            info!(
                                to,
                                asked,
                                moved,
                                reason = reason.as_str(),
                                "balancer: moved connections"
                            );
                            control.balance.record(BalanceMove {
                                at_unix_ms: crate::clock::unix_ms(),
                                to,
                                asked,
                                moved: moved as u64,
                                reason,
                            });
                        }
                        Err(err) => warn!(to, asked, %err, "balancer: the move failed"),
                    }
                }
            }
        })
        .map(Some)
}

/// The box table's loads of `members` (a member whose entry cannot be
/// read is left out of the plan).
fn published_loads(
    control: &Control,
    members: &BTreeSet<u16>,
    beats: &mut Beats,
) -> Vec<SurvivorLoad> {
    members
        .iter()
        .filter_map(|&id| {
            let info = control.segment.box_info(id).ok()?;
            beats.observe(id, info.heartbeat);
            Some(SurvivorLoad {
                id,
                connections: u64::try_from(info.connections).unwrap_or(0),
                busy_ppm: info.load.map_or(0, |l| l.busy_ppm.min(1_000_000)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(threshold: u64, rate: u64) -> BalanceConfig {
        BalanceConfig {
            enabled: true,
            threshold,
            rate,
            interval_ms: 100,
        }
    }

    fn load(id: u16, connections: u64) -> SurvivorLoad {
        SurvivorLoad {
            id,
            connections,
            busy_ppm: 0,
        }
    }

    #[test]
    fn a_rejoined_empty_box_gets_its_share_at_the_rate_and_only_from_loaded_boxes() {
        let loads = [load(1, 300), load(2, 300), load(3, 0)];
        let mut bucket = RateLimit::new(50);
        // Box 1 sends to 3 what the bucket holds (one second's worth).
        assert_eq!(
            sends_now(&loads, 1, &cfg(10, 50), 1000, &mut bucket, 0, |_| true),
            vec![(3, 50)]
        );
        // Then nothing until the bucket refills: 100 ms is 5 moves.
        assert_eq!(
            sends_now(&loads, 1, &cfg(10, 50), 1000, &mut bucket, 0, |_| true),
            vec![]
        );
        assert_eq!(
            sends_now(&loads, 1, &cfg(10, 50), 1000, &mut bucket, 100, |_| true),
            vec![(3, 5)]
        );
        // The receiver never sends.
        let mut b3 = RateLimit::new(50);
        assert_eq!(
            sends_now(&loads, 3, &cfg(10, 50), 1000, &mut b3, 0, |_| true),
            vec![]
        );
    }

    #[test]
    fn only_a_member_whose_heartbeat_advanced_since_the_last_look_is_alive() {
        let mut b = Beats::default();
        b.observe(3, 10);
        assert!(!b.alive(3), "one look proves nothing");
        b.observe(3, 12);
        assert!(b.alive(3));
        b.observe(3, 12);
        assert!(!b.alive(3), "killed: its counter stopped");
        assert!(!b.alive(4), "never seen");
    }

    #[test]
    fn a_receiver_that_is_not_beating_gets_nothing_and_costs_no_tokens() {
        let loads = [load(1, 300), load(2, 300), load(3, 0)];
        let mut bucket = RateLimit::new(50);
        let c = cfg(10, 50);
        assert_eq!(
            sends_now(&loads, 1, &c, 1000, &mut bucket, 0, |id| id != 3),
            vec![]
        );
        assert_eq!(
            sends_now(&loads, 1, &c, 1000, &mut bucket, 0, |_| true),
            vec![(3, 50)]
        );
    }

    #[test]
    fn a_level_cluster_moves_nothing() {
        let loads = [load(1, 105), load(2, 100), load(3, 98)];
        let mut bucket = RateLimit::new(1000);
        for me in 1..=3 {
            assert_eq!(
                sends_now(&loads, me, &cfg(10, 1000), 1000, &mut bucket, 0, |_| true),
                vec![]
            );
        }
    }

    #[test]
    fn reasons_follow_joins_and_departures_and_fade() {
        let mut w = MemberWatch::default();
        w.observe(0, &BTreeSet::from([1, 2, 3]));
        // The first look calls nobody new.
        assert_eq!(w.reason(3, 0, 1000), MoveReason::OverThreshold);
        w.observe(100, &BTreeSet::from([1, 2]));
        assert_eq!(w.reason(2, 200, 1000), MoveReason::Takeover);
        w.observe(2000, &BTreeSet::from([1, 2, 3]));
        assert_eq!(w.reason(3, 2100, 1000), MoveReason::Rejoin);
        assert_eq!(w.reason(2, 2100, 1000), MoveReason::OverThreshold);
        assert_eq!(w.reason(3, 5000, 1000), MoveReason::OverThreshold);
    }

    #[test]
    fn the_log_counts_by_reason_and_keeps_the_last_moves() {
        let log = BalanceLog::default();
        for i in 0..(HISTORY as u64 + 5) {
            log.record(BalanceMove {
                at_unix_ms: i,
                to: 3,
                asked: 2,
                moved: 1,
                reason: if i % 2 == 0 {
                    MoveReason::Rejoin
                } else {
                    MoveReason::OverThreshold
                },
            });
        }
        assert_eq!(log.moved(MoveReason::Rejoin), 35);
        assert_eq!(log.moved(MoveReason::OverThreshold), 34);
        assert_eq!(log.moved(MoveReason::Takeover), 0);
        let h = log.history();
        assert_eq!(h.len(), HISTORY);
        assert_eq!(h[0].at_unix_ms, 5);
    }
}
