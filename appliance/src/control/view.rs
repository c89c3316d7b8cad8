//! The agreed view on this box: its `baton_membership::Membership`
//! machine, the store the view lives in, and what the box shows of both
//! (status, metrics). The watcher (`super::watcher`) ticks it with the
//! detector's verdicts and acts on the events it returns.
//!
//! The store is chosen once, at start-up ([`store_for`]): the segment's
//! view cell where the boxes share one mapping; the embedded Raft
//! (`baton_raft::RaftStore`) on the back LAN where they do not
//! (replicated segments), whose quorum lease `super::quorum` watches.
//! This module knows no slots, packets or takeovers; the rules live in
//! `baton_membership`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use baton_config::{Config, SegmentMode};
use baton_membership::{
    propose_with, refresh, ChangeLoads, Event, Member, Membership, Phase, Reason, SegmentStore,
    StoreError, Verdict, View, ViewChange, ViewNumber, ViewStore,
};
use baton_raft::{RaftStore, StartError, Timings};
use baton_shmem::{Segment, ViewCell};
use tracing::{info, warn};

use super::placement::LoadReader;

/// The store the agreed view lives in, behind the trait so that either
/// mode's store drops in.
pub(crate) type Store = Box<dyn ViewStore + Send + Sync>;

/// Where this box's agreed view lives: the store, and in replicated mode
/// the Raft behind it (its lease fences, its state shows in the status).
pub(crate) struct Stores {
    /// The view store.
    pub(crate) store: Store,
    /// The Raft, in replicated mode.
    pub(crate) raft: Option<Arc<RaftStore>>,
}

/// The view store for the box `config` describes: the segment's cell in
/// shared mode; in replicated mode this box's Raft node, started here
/// (before the dataplane: a restarted box reads the view before it
/// beats) with the voters' back-LAN addresses at `raft.port`.
pub(crate) fn store_for(
    config: &Config,
    segment: &Segment,
    epoch: u32,
) -> Result<Stores, StartError> {
    match config.checkpoint.mode {
        SegmentMode::Shared => Ok(Stores {
            store: Box::new(SegmentStore::new(ViewCell::new(segment))),
            raft: None,
        }),
        SegmentMode::Replicated => {
            let raft = Arc::new(RaftStore::start(raft_config(config, epoch))?);
            info!(
                port = config.raft.port,
                state = %config.raft.state_path(&config.checkpoint.segment_path).display(),
                voters = config.cluster.members.len(),
                "the agreed view lives in the Raft among the members"
            );
            Ok(Stores {
                store: Box::new(SharedRaft(raft.clone())),
                raft: Some(raft),
            })
        }
    }
}

/// What this box's Raft node needs, from `config`; `epoch` (this start's,
/// durable and growing) is the transport's boot.
pub(crate) fn raft_config(config: &Config, epoch: u32) -> baton_raft::RaftConfig {
    let r = &config.raft;
    let ms = Duration::from_millis;
    baton_raft::RaftConfig {
        me: config.node.id,
        members: config
            .cluster
            .members
            .iter()
            .map(|m| (m.id, std::net::SocketAddr::new(m.back_addr.ip(), r.port)))
            .collect(),
        key: config.cluster.key.clone(),
        path: r.state_path(&config.checkpoint.segment_path),
        timings: Timings {
            heartbeat: ms(r.heartbeat_ms),
            election_min: ms(r.election_min_ms),
            election_max: ms(r.election_max_ms),
            lease: ms(r.lease_ms),
            // The watcher waits this long at most for a read or a
            // proposal: past an election, not much longer, so a
            // leaderless tick costs one wait, not the default 2 s.
            deadline: ms(r.election_max_ms + r.heartbeat_ms),
        },
        boot: u64::from(epoch),
    }
}

/// The Raft as the machine's store, shared with the quorum guard.
struct SharedRaft(Arc<RaftStore>);

impl ViewStore for SharedRaft {
    fn read(&self) -> Result<View, StoreError> {
        self.0.read()
    }

    fn propose(
        &self,
        proposer: u16,
        expected: ViewNumber,
        members: &[Member],
        reason: Reason,
    ) -> Result<View, StoreError> {
        self.0.propose(proposer, expected, members, reason)
    }

    fn propose_with_loads(
        &self,
        proposer: u16,
        expected: ViewNumber,
        members: &[Member],
        reason: Reason,
        loads: Option<&ChangeLoads>,
    ) -> Result<View, StoreError> {
        self.0
            .propose_with_loads(proposer, expected, members, reason, loads)
    }
}

/// What this box shows of its Raft (replicated mode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RaftSnapshot {
    /// The leader this box knows.
    pub(crate) leader: Option<u16>,
    /// Its term.
    pub(crate) term: u64,
    /// How old its quorum proof is, ms (`None`: never had one).
    pub(crate) lease_age_ms: Option<u64>,
    /// The lease, ms: a proof older than this fences the box.
    pub(crate) lease_ms: u64,
    /// Its transport's dropped datagrams, by reason.
    pub(crate) drops: Vec<(&'static str, u64)>,
}

impl RaftSnapshot {
    /// `raft` as it stands at `now`.
    pub(crate) fn of(raft: &RaftStore, now: Instant) -> RaftSnapshot {
        RaftSnapshot {
            leader: raft.leader(),
            term: raft.term(),
            lease_age_ms: raft.lease_age(now).map(|a| a.as_millis() as u64),
            lease_ms: raft.timings().lease.as_millis() as u64,
            drops: raft.stats().drops(),
        }
    }
}

/// What this box shows of the view (admin status and metrics).
#[derive(Debug, Clone, Default)]
pub(crate) struct ViewSnapshot {
    /// The newest committed view this box read (none before the first).
    pub(crate) view: Option<View>,
    /// This incarnation's phase (`None` without an agreed view).
    pub(crate) phase: Option<Phase>,
    /// Committed view changes this box has seen and acted on.
    pub(crate) changes: u64,
    /// Orphans skipped because another box had claimed their slot.
    pub(crate) claims_lost: u64,
    /// The last time from this box's first verdict on a member to the
    /// commit of its removal, in µs.
    pub(crate) last_commit_us: Option<u64>,
    /// The Raft the view lives in (replicated mode).
    pub(crate) raft: Option<RaftSnapshot>,
}

/// The snapshot, shared between the watcher (writer) and the admin API.
#[derive(Debug, Default)]
pub(crate) struct ViewStatus(Mutex<ViewSnapshot>);

impl ViewStatus {
    /// A copy of what the box shows now.
    pub(crate) fn get(&self) -> ViewSnapshot {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes the snapshot.
    pub(crate) fn update(&self, f: impl FnOnce(&mut ViewSnapshot)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// This incarnation's machine and the store it proposes to.
pub(crate) struct AgreedView {
    machine: Membership,
    store: Store,
    /// When this box first judged each member silent: the start of the
    /// verdict-to-commit time, and the one log line per verdict.
    judged_at: HashMap<Member, Instant>,
    /// The last store error logged, so a store that stays unreadable is
    /// logged once, not at every tick.
    last_error: Option<String>,
    /// Where the loads committed with this box's removals come from, when
    /// it splits by load (`takeover.assignment = "least_loaded"`).
    loads: Option<LoadReader>,
}

impl AgreedView {
    /// The machine of incarnation `me`, proposing to `store`.
    pub(crate) fn new(me: Member, store: Store) -> AgreedView {
        AgreedView {
            machine: Membership::new(me),
            store,
            judged_at: HashMap::new(),
            last_error: None,
            loads: None,
        }
    }

    /// Commits the survivors' loads (read by `reader`) with every removal
    /// this box proposes: its changes then split by load for every box.
    pub(crate) fn commit_loads(&mut self, reader: LoadReader) {
        self.loads = Some(reader);
    }

    /// The dataplane serves and the box has beaten: the next tick proposes
    /// its join (start-up order, `docs/MEMBERSHIP.md`).
    pub(crate) fn started(&mut self) {
        self.machine.handle_dataplane_up();
        self.machine.handle_beat();
    }

    /// This incarnation.
    pub(crate) fn me(&self) -> Member {
        self.machine.me()
    }

    /// Where this incarnation stands.
    pub(crate) fn phase(&self) -> Phase {
        self.machine.phase()
    }

    /// The members of the newest view read, other than this box: the ones
    /// the detector judges.
    pub(crate) fn peers(&self) -> Vec<Member> {
        let me = self.me().id;
        self.machine
            .view()
            .map(|v| v.members.iter().copied().filter(|m| m.id != me).collect())
            .unwrap_or_default()
    }

    /// Reads the committed view. Before the verdicts: a verdict about a
    /// box the machine does not hold as a member is dropped.
    pub(crate) fn refresh(&mut self) {
        if let Err(err) = refresh(&mut self.machine, self.store.as_ref()) {
            let text = err.to_string();
            if self.last_error.as_deref() != Some(text.as_str()) {
                warn!(%err, "the agreed view cannot be read: acting on the last one read");
                self.last_error = Some(text);
            }
        } else {
            self.last_error = None;
        }
    }

    /// Hands the detector's verdicts to the machine, makes the proposals it
    /// asks for, and returns what the box must act on, each committed
    /// change with this box's verdict-to-commit time when it judged the
    /// member itself.
    pub(crate) fn tick(&mut self, verdicts: &[Verdict]) -> Vec<(Event, Option<Duration>)> {
        for v in verdicts {
            self.judged_at.entry(v.peer).or_insert_with(|| {
                warn!(
                    peer = v.peer.id,
                    epoch = v.peer.epoch,
                    silent_ms = v.silent_for.as_millis() as u64,
                    "peer silent: proposing its removal from the view"
                );
                Instant::now()
            });
            self.machine.handle_verdict(*v);
        }
        let loads = &self.loads;
        propose_with(&mut self.machine, self.store.as_ref(), &|p| {
            loads.as_ref().and_then(|l| l.loads_for(p))
        });
        let mut out = Vec::new();
        while let Some(event) = self.machine.poll_event() {
            let took = match &event {
                Event::Committed(change) => change
                    .left
                    .iter()
                    .find_map(|m| self.judged_at.remove(m))
                    .map(|at| at.elapsed()),
                _ => None,
            };
            out.push((event, took));
        }
        // A member that left without our verdict (a restart, another
        // box's judgement) has nothing left to time.
        if let Some(view) = self.machine.view() {
            self.judged_at.retain(|m, _| view.contains(*m));
        }
        out
    }

    /// The newest view read, for the status.
    pub(crate) fn view(&self) -> Option<&View> {
        self.machine.view()
    }
}

/// Before a restarted box beats, its previous incarnation may still be a
/// member of the view, holding connections in the box's region. Its
/// survivors take them over only once they judge it silent: so the new
/// incarnation stays silent (no heartbeat, its region untouched) until a
/// committed view no longer holds `predecessor`. Then, and also when the
/// removal was already committed but recently (the view's reason history
/// still names it), it leaves the region untouched until the survivors
/// have read it: `taken_over(removal)` says every orphan's slot is claimed
/// in that view or later, and at least `grace` has passed since this box
/// saw the removal (each survivor reads the view once per heartbeat
/// interval, the address heir included, which claims nothing of its own
/// when it has no share). It gives up after `limit` (no live survivor
/// judges: a whole-cluster restart).
///
/// Returns the number of the view that removed the predecessor, if it did
/// recently: claims on the region's slots made in it or later are the
/// survivors' claims on its connections.
pub(crate) fn await_predecessor_leaving(
    store: &dyn ViewStore,
    predecessor: Member,
    taken_over: &dyn Fn(u32) -> bool,
    grace: Duration,
    limit: Duration,
) -> Option<u32> {
    let started = Instant::now();
    let held = |v: &View| v.contains(predecessor) && v.members.len() > 1;
    let mut last_holding: Option<u32> = None;
    let mut removal: Option<(u32, Instant)> = None;
    loop {
        match store.read() {
            Ok(v) if held(&v) => last_holding = Some(v.number.0),
            Ok(v) => {
                if removal.is_none() {
                    let recent =
                        removal_of(&v, predecessor).or_else(|| last_holding.map(|n| n + 1));
                    let Some(r) = recent else {
                        // Out of the view long ago (or never in it):
                        // nothing of it is left to take over.
                        return None;
                    };
                    removal = Some((r, Instant::now()));
                }
                if let Some((r, seen)) = removal {
                    if seen.elapsed() >= grace && taken_over(r) {
                        info!(
                            view = r,
                            waited_ms = started.elapsed().as_millis() as u64,
                            "the previous incarnation left the view and its survivors took its connections over"
                        );
                        return Some(r);
                    }
                }
            }
            Err(err) => warn!(%err, "the agreed view cannot be read at start-up"),
        }
        if started.elapsed() >= limit {
            warn!(
                predecessor = predecessor.id,
                epoch = predecessor.epoch,
                removed_in = removal.map(|(r, _)| r),
                waited_ms = started.elapsed().as_millis() as u64,
                "the previous incarnation's connections were not all taken over in time: going on (those left are lost)"
            );
            return removal.map(|(r, _)| r);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The change that removed `predecessor` in view `number`, rebuilt from
/// the committed view when it is still that view (its members are the
/// change's); `None` when the view has changed since (its members then
/// are not the change's).
pub(crate) fn removal_change(
    store: &dyn ViewStore,
    predecessor: Member,
    number: u32,
) -> Option<ViewChange> {
    let view = store.read().ok()?;
    (view.number.0 == number && !view.contains(predecessor)).then(|| ViewChange {
        from: ViewNumber(number.saturating_sub(1)),
        number: view.number,
        left: vec![predecessor],
        joined: Vec::new(),
        members: view.members.clone(),
        reason: Reason::from_code(view.reason()),
        loads: view.loads[0].clone(),
    })
}

/// The number of the view that removed `member`, if `view` still carries
/// its reason.
fn removal_of(view: &View, member: Member) -> Option<u32> {
    let newest = view.number.0;
    (newest.saturating_sub(baton_membership::REASON_HISTORY as u32 - 1)..=newest)
        .rev()
        .find(|&n| {
            view.reason_of(baton_membership::ViewNumber(n))
                .and_then(Reason::from_code)
                .is_some_and(|r| matches!(r, Reason::Silent { member: m, .. } if m == member))
        })
}

#[cfg(test)]
mod tests {
    use baton_membership::MemoryStore;

    use super::*;

    #[test]
    fn check_config_refuses_the_member_ids_the_view_cell_cannot_hold() {
        assert_eq!(
            baton_config::SHARED_MAX_MEMBERS as usize,
            baton_membership::MAX_MEMBERS
        );
    }

    fn joined(store: &MemoryStore, m: Member) {
        let v = store.read().unwrap();
        store
            .propose(
                m.id,
                v.number,
                &Reason::Joined(m).apply(&v.members),
                Reason::Joined(m),
            )
            .unwrap();
    }

    #[test]
    fn a_restarted_box_waits_until_its_previous_incarnation_left_the_view() {
        let store = MemoryStore::new();
        let (one, three) = (Member { id: 1, epoch: 1 }, Member { id: 3, epoch: 1 });
        joined(&store, one);
        joined(&store, three);
        let remover = store.clone();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            let v = remover.read().unwrap();
            let why = Reason::Silent {
                member: three,
                silent_ms: 100,
            };
            remover
                .propose(1, v.number, &why.apply(&v.members), why)
                .unwrap();
        });
        let started = Instant::now();
        let after = await_predecessor_leaving(
            &store,
            three,
            &|_| true,
            Duration::from_millis(10),
            Duration::from_secs(5),
        );
        t.join().unwrap();
        assert_eq!(after, Some(3), "view 3 removed it");
        assert!(started.elapsed() >= Duration::from_millis(40));
    }

    #[test]
    fn a_box_removed_a_moment_ago_waits_until_its_connections_are_claimed() {
        let store = MemoryStore::new();
        let (one, three) = (Member { id: 1, epoch: 1 }, Member { id: 3, epoch: 1 });
        joined(&store, one);
        joined(&store, three);
        let v = store.read().unwrap();
        let why = Reason::Silent {
            member: three,
            silent_ms: 100,
        };
        store
            .propose(1, v.number, &why.apply(&v.members), why)
            .unwrap();
        // Already out of the view when the box starts: the claims decide.
        let started = Instant::now();
        let claimed_after = started + Duration::from_millis(50);
        let after = await_predecessor_leaving(
            &store,
            three,
            &|view| {
                assert_eq!(view, 3);
                Instant::now() >= claimed_after
            },
            Duration::from_millis(10),
            Duration::from_secs(5),
        );
        assert_eq!(after, Some(3));
        assert!(started.elapsed() >= Duration::from_millis(50));
        // A limit bounds the wait when a claim never comes.
        let started = Instant::now();
        let after = await_predecessor_leaving(
            &store,
            three,
            &|_| false,
            Duration::ZERO,
            Duration::from_millis(40),
        );
        assert_eq!(after, Some(3));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_box_alone_in_the_view_or_already_out_of_it_starts_at_once() {
        let store = MemoryStore::new();
        let three = Member { id: 3, epoch: 1 };
        let wait = |s: &MemoryStore| {
            await_predecessor_leaving(s, three, &|_| true, Duration::ZERO, Duration::from_secs(5))
        };
        assert_eq!(wait(&store), None, "view 0 holds nobody");
        joined(&store, three);
        let started = Instant::now();
        assert_eq!(wait(&store), None, "nobody is left to remove it");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
