//! A worker's flow table: 4-tuple → connection id, and a slab of
//! connections indexed by id.
//!
//! A [`ConnId`] carries a generation so that an id kept by the application
//! after its connection closed never reaches the connection that reused the
//! slot. Slab indices are dense, which is what the timer wheel keys on.
//!
//! The tuple index holds slab indices only (4 bytes a bucket) and compares
//! a looked-up tuple with the one in the slot's TCB: a map keyed by the
//! 64-byte tuple would cost ~150 bytes per connection in its buckets, more
//! than a fifth of an idle connection's memory (issue 19).

use crate::connmap::DenseKey;
use crate::tcp::{FourTuple, PackedTuple, Tcb};
use crate::wire::ethernet::MacAddr;
use hashbrown::HashTable;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
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

impl DenseKey for ConnId {
    fn index(&self) -> usize {
        ConnId::index(self)
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

/// A slab entry: its connection boxed, so that a slot left free (its
/// connection closed or parked) holds 16 bytes, not a TCB's 450 — the slab
/// never shrinks, and a box's idle connections parked after a burst must
/// give their memory back (issue 19).
#[derive(Debug)]
struct Slot {
    generation: u32,
    conn: Option<Box<Conn>>,
}

/// Connections of one worker.
#[derive(Debug, Default)]
pub struct FlowTable {
    /// Slab indices of the occupied slots, hashed by their TCB's tuple
    /// (keyed SipHash: clients choose their ports).
    by_tuple: HashTable<u32>,
    hasher: RandomState,
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
        let key = PackedTuple::pack(tuple);
        let i = *self.by_tuple.find(self.hasher.hash_one(key), |&i| {
            tuple_in(&self.slots, i) == Some(&key)
        })?;
        self.id_at(i as usize)
    }

    /// Adds a connection for its TCB's tuple; returns its id. Replaces
    /// nothing: the caller looked the tuple up first.
    pub fn insert(&mut self, tcb: Tcb) -> ConnId {
        let tuple = tcb.tuple();
        let conn = Box::new(Conn {
            tcb,
            half_open: false,
            announced: false,
            opened: false,
            touched: false,
            done: false,
            peer_mac: None,
        });
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
        let key = PackedTuple::pack(&tuple);
        let hash = self.hasher.hash_one(key);
        let (slots, hasher) = (&self.slots, &self.hasher);
        // A tuple already indexed (never, when the caller looked it up
        // first) is found by the new slot from now on.
        if let Some(i) = self
            .by_tuple
            .find_mut(hash, |&i| i != id.index && tuple_in(slots, i) == Some(&key))
        {
            *i = id.index;
        } else {
            self.by_tuple.insert_unique(hash, id.index, |&i| {
                tuple_in(slots, i).map_or(0, |t| hasher.hash_one(t))
            });
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
        s.conn.as_deref()
    }

    /// Mutable access to the connection `id` names.
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let s = self.slots.get_mut(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        s.conn.as_deref_mut()
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
        let tuple = s.conn.as_ref()?.tcb.tuple();
        // Out of the index while the slot still holds the tuple it is
        // found by.
        let indexed = self
            .by_tuple
            .find_entry(self.hasher.hash_one(PackedTuple::pack(&tuple)), |&i| {
                i == id.index
            })
            .map(|e| e.remove())
            .is_ok();
        let s = &mut self.slots[id.index as usize];
        let conn = *s.conn.take()?;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(id.index);
        if indexed {
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
        self.by_tuple
            .iter()
            .filter_map(|&i| self.id_at(i as usize))
            .collect()
    }
}

/// The tuple of the connection in slot `i` of `slots`, packed as the
/// index hashes and compares it (the per-packet lookup copies no tuple per
/// probed bucket). A free function so that the index's hasher can borrow
/// the slots while the index is borrowed mutably.
fn tuple_in(slots: &[Slot], i: u32) -> Option<&PackedTuple> {
    slots
        .get(i as usize)?
        .conn
        .as_ref()
        .map(|c| c.tcb.packed_tuple())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::{SeqNum, TcpConfig};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    use std::time::Instant;

    fn tuple(client: IpAddr, port: u16) -> FourTuple {
        FourTuple {
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), 80),
            remote: SocketAddr::new(client, port),
        }
    }

    fn tcb(t: FourTuple) -> Tcb {
        Tcb::connect(Instant::now(), TcpConfig::default(), t, SeqNum(1))
    }

    #[test]
    fn connections_are_found_by_tuple_until_removed_and_ids_of_reused_slots_differ() {
        let client = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2));
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 7));
        let mut table = FlowTable::new();
        // Enough to make the index grow (and rehash by the slots' tuples)
        // several times.
        let ids: Vec<ConnId> = (0..5_000u16)
            .map(|p| table.insert(tcb(tuple(if p % 2 == 0 { client } else { v6 }, 1024 + p))))
            .collect();
        assert_eq!(table.len(), 5_000);
        assert_eq!(
            (table.of_client(client), table.of_client(v6)),
            (2_500, 2_500)
        );
        for (p, id) in ids.iter().enumerate() {
            let ip = if p % 2 == 0 { client } else { v6 };
            assert_eq!(table.lookup(&tuple(ip, 1024 + p as u16)), Some(*id));
        }
        assert_eq!(
            table.lookup(&tuple(client, 1025)),
            None,
            "port 1025 is v6's"
        );
        let mut all = table.ids();
        all.sort_by_key(ConnId::index);
        assert_eq!(all, ids);

        let gone = table.remove(ids[10]).expect("there");
        assert_eq!(gone.tcb.tuple(), tuple(client, 1034));
        assert_eq!(table.lookup(&tuple(client, 1034)), None);
        assert!(table.remove(ids[10]).is_none(), "removed once");
        assert_eq!((table.len(), table.of_client(client)), (4_999, 2_499));
        // The slot is reused under a new generation: the old id misses.
        let again = table.insert(tcb(tuple(client, 1034)));
        assert_eq!(again.index(), ids[10].index());
        assert_ne!(again, ids[10]);
        assert!(table.get(ids[10]).is_none());
        assert_eq!(table.lookup(&tuple(client, 1034)), Some(again));
        for id in table.ids() {
            table.remove(id).expect("each once");
        }
        assert!(table.is_empty());
        assert_eq!(table.of_client(client), 0);
    }

    #[test]
    fn a_tuple_inserted_twice_is_found_by_its_newer_connection() {
        let t = tuple(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2)), 4000);
        let mut table = FlowTable::new();
        let old = table.insert(tcb(t));
        let new = table.insert(tcb(t));
        assert_eq!(table.lookup(&t), Some(new));
        assert_eq!((table.len(), table.of_client(t.remote.ip())), (1, 1));
        assert!(table.remove(old).is_some());
        assert_eq!(
            table.lookup(&t),
            Some(new),
            "the older one's removal leaves it"
        );
    }
}
