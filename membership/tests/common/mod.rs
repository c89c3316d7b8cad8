//! A cluster of simulated boxes sharing one in-memory view store, driven
//! step by step the way the appliance's control tick drives them.
#![allow(dead_code)] // each test file uses its own part of the harness

use std::collections::BTreeMap;
use std::time::Duration;

use baton_membership::{
    propose, refresh, sync, Event, Member, Membership, MemoryStore, Phase, Verdict, ViewChange,
};

pub fn m(id: u16, epoch: u32) -> Member {
    Member { id, epoch }
}

pub struct Cluster {
    pub store: MemoryStore,
    pub boxes: BTreeMap<u16, Membership>,
    /// Every event each box's current incarnation produced, in order.
    pub events: BTreeMap<u16, Vec<Event>>,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster {
            store: MemoryStore::new(),
            boxes: BTreeMap::new(),
            events: BTreeMap::new(),
        }
    }

    /// Boxes `ids` started one after the other, each admitted at epoch 1.
    pub fn running(ids: &[u16]) -> Cluster {
        let mut c = Cluster::new();
        for &id in ids {
            c.start(m(id, 1));
        }
        for &id in ids {
            c.tick(id);
        }
        c
    }

    /// A new incarnation of a box whose dataplane is up and which has
    /// beaten: it joins at once.
    pub fn start(&mut self, me: Member) {
        self.boot(me);
        self.up(me.id);
        self.tick(me.id);
        assert_eq!(self.phase(me.id), Phase::Member, "box {} joined", me.id);
    }

    /// A new incarnation that has not brought its dataplane up yet.
    pub fn boot(&mut self, me: Member) {
        let mut b = Membership::new(me);
        refresh(&mut b, &self.store).unwrap();
        self.boxes.insert(me.id, b);
        self.events.insert(me.id, Vec::new());
    }

    pub fn up(&mut self, id: u16) {
        let b = self.machine(id);
        b.handle_dataplane_up();
        b.handle_beat();
    }

    pub fn machine(&mut self, id: u16) -> &mut Membership {
        self.boxes.get_mut(&id).expect("no such box")
    }

    pub fn phase(&self, id: u16) -> Phase {
        self.boxes[&id].phase()
    }

    fn drain(&mut self, id: u16) {
        let b = self.boxes.get_mut(&id).expect("no such box");
        let out = self.events.entry(id).or_default();
        while let Some(e) = b.poll_event() {
            out.push(e);
        }
    }

    /// One control tick without verdicts.
    pub fn tick(&mut self, id: u16) {
        let store = self.store.clone();
        sync(self.machine(id), &store).unwrap();
        self.drain(id);
    }

    /// One control tick in which `judge`'s detector says `peer` was silent.
    pub fn judge(&mut self, judge: u16, peer: Member, silent_ms: u64) {
        let store = self.store.clone();
        let b = self.machine(judge);
        refresh(b, &store).unwrap();
        b.handle_verdict(Verdict {
            peer,
            silent_for: Duration::from_millis(silent_ms),
        });
        propose(b, &store);
        self.drain(judge);
    }

    /// The view changes box `id` reported, in order.
    pub fn changes(&self, id: u16) -> Vec<ViewChange> {
        self.events[&id]
            .iter()
            .filter_map(|e| match e {
                Event::Committed(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn fences(&self, id: u16) -> Vec<Event> {
        self.events[&id]
            .iter()
            .filter(|e| matches!(e, Event::Fence(_)))
            .cloned()
            .collect()
    }

    pub fn members(&self) -> Vec<Member> {
        self.store
            .history()
            .last()
            .map(|v| v.members.clone())
            .unwrap_or_default()
    }
}
