//! A worker's flow table: 4-tuple → connection id, and a slab of
//! connections indexed by id.
//!
//! A [`ConnId`] carries a generation so that an id kept by the application
//! after its connection closed never reaches the connection that reused the
//! slot. Slab indices are dense, which is what the timer wheel keys on.

use crate::tcp::{FourTuple, Tcb};
use crate::wire::ethernet::MacAddr;
use std::collections::HashMap;
use std::net::IpAddr;

/// Names one connection of one worker.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    /// The slab index (also the connection's timer key).
    pub fn index(&self) -> usize {
        self.index as usize
    }
}

/// One connection as the worker keeps it.
#[derive(Debug)]
pub struct Conn {
    /// The TCP state machine.
    pub tcb: Tcb,
    /// Still counted in the SYN backlog (SYN-RECEIVED, not yet established).
    pub half_open: bool,
    /// The application has been told about it (accepted or restored).
    pub announced: bool,
    /// The application opened it ([`crate::app::Ctx::connect`]): it hears
    /// of its end even if it never became established.
    pub opened: bool,
    /// Already on the worker's list of connections to poll this iteration.
    pub touched: bool,
    /// Finished: remove after this iteration.
    pub done: bool,
    /// The MAC the client's frames came from: where this connection's
    /// frames go when the neighbour cache does not know the client (a SYN
    /// is answered without being learned from; an entry may age out or be
    /// evicted while the connection lives). None for restored connections.
    pub peer_mac: Option<MacAddr>,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    conn: Option<Conn>,
}

/// Connections of one worker.
#[derive(Debug, Default)]
pub struct FlowTable {
    by_tuple: HashMap<FourTuple, ConnId>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Connections per client address (`dataplane.max_connections_per_client`).
    per_client: HashMap<IpAddr, u32>,
}

impl FlowTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.by_tuple.len()
    }

    /// True when there is no connection.
    pub fn is_empty(&self) -> bool {
        self.by_tuple.is_empty()
    }

    /// Connections held for client address `ip` (restored ones included).
    pub fn of_client(&self, ip: IpAddr) -> usize {
        self.per_client.get(&ip).map_or(0, |&n| n as usize)
    }

    /// The connection of `tuple`, if any.
    pub fn lookup(&self, tuple: &FourTuple) -> Option<ConnId> {
        self.by_tuple.get(tuple).copied()
    }

    /// Adds a connection for its TCB's tuple; returns its id. Replaces
    /// nothing: the caller looked the tuple up first.
    pub fn insert(&mut self, tcb: Tcb) -> ConnId {
        let tuple = tcb.tuple();
        let conn = Conn {
            tcb,
            half_open: false,
            announced: false,
            opened: false,
            touched: false,
            done: false,
            peer_mac: None,
        };
        let id = match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.conn = Some(conn);
                ConnId {
                    index: i,
                    generation: slot.generation,
                }
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    conn: Some(conn),
                });
                ConnId {
                    index: (self.slots.len() - 1) as u32,
                    generation: 0,
                }
            }
        };
        if self.by_tuple.insert(tuple, id).is_none() {
            *self.per_client.entry(tuple.remote.ip()).or_insert(0) += 1;
        }
        id
    }

    /// The connection `id` names, if it still exists.
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        let s = self.slots.get(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        s.conn.as_ref()
    }

    /// Mutable access to the connection `id` names.
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let s = self.slots.get_mut(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        s.conn.as_mut()
    }

    /// The current id of slab slot `index` (for timer keys), if occupied.
    pub fn id_at(&self, index: usize) -> Option<ConnId> {
        let s = self.slots.get(index)?;
        s.conn.as_ref().map(|_| ConnId {
            index: index as u32,
            generation: s.generation,
        })
    }

    /// Removes connection `id`; returns it.
    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let s = self.slots.get_mut(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        let conn = s.conn.take()?;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(id.index);
        let tuple = conn.tcb.tuple();
        if self.by_tuple.remove(&tuple).is_some() {
            let ip = tuple.remote.ip();
            if let Some(n) = self.per_client.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_client.remove(&ip);
                }
            }
        }
        Some(conn)
    }

    /// Ids of every connection (for shutdown and drain).
    pub fn ids(&self) -> Vec<ConnId> {
        self.by_tuple.values().copied().collect()
    }
}
