//! The overflow area: where a bundle too large for its slot lives (a
//! record with a long URL — CDN-signed query strings run to 2 KB — or long
//! validators), so that every slot can stay small.
//!
//! Each region ends with [`crate::Layout::overflow_entries`] entries of
//! [`crate::Layout::overflow_pieces`] pieces. A piece is a slot-sized unit with the slot's
//! own seqlock header, which is why replication carries pieces exactly as
//! it carries slots (each fits a datagram) and readers copy them with the
//! same protocol. A large bundle is written piece by piece into an entry,
//! each piece stamped with the owning slot and a generation; the slot then
//! publishes a 24-byte *link* naming the entry, the bundle's length and the
//! generation. A reader follows the link and accepts the pieces only if
//! every one carries the link's slot and generation: a link and pieces from
//! different writes (a write in progress, a replica that has only part of
//! an update) are never mixed, and the read is retried from the slot.
//!
//! Entries belong to slot writers by range, like slots; an entry is free
//! when the slot its first piece names no longer links to it, so freeing,
//! clearing or shrinking a slot frees its entry without any bookkeeping
//! that could get out of step. It knows the slot layout, not records.

use crate::layout::PIECE_HEADER;
use crate::record::{MAX_NAME_LEN, MAX_VALIDATOR_LEN};
use crate::segment::Region;
pub use crate::segment::OVERFLOW_PAYLOAD;
use crate::unit::{Payload, Raw};

/// Bytes of a slot payload that links to an overflow entry. A bundle
/// archive is never this short (a record alone archives to ~130 bytes).
pub(crate) const LINK_LEN: usize = 24;
/// First bytes of a link payload.
const LINK_MAGIC: [u8; 8] = *b"BTNOVFL1";

// An entry holds a record at the limits: an 8 KiB URL, two 1 KiB
// validators, and < 800 bytes of record around them (checked at build time;
// shmem/tests/overflow.rs writes such a record).
const _: () = assert!(OVERFLOW_PAYLOAD >= MAX_NAME_LEN + 2 * MAX_VALIDATOR_LEN + 800);

/// A slot's pointer to its overflow entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    /// Entry index in the region's overflow area.
    pub(crate) entry: u32,
    /// Bytes of the bundle archive in the entry.
    pub(crate) len: u32,
    /// Generation every piece of this write carries.
    pub(crate) gen: u64,
}

impl Link {
    /// The link's payload bytes.
    pub(crate) fn encode(&self) -> [u8; LINK_LEN] {
        let mut b = [0u8; LINK_LEN];
        b[..8].copy_from_slice(&LINK_MAGIC);
        b[8..12].copy_from_slice(&self.entry.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b[16..24].copy_from_slice(&self.gen.to_le_bytes());
        b
    }

    /// The link in a slot payload, if the payload is one.
    pub(crate) fn parse(payload: &[u8]) -> Option<Link> {
        if payload.len() != LINK_LEN || payload.get(..8)? != LINK_MAGIC {
            return None;
        }
        Some(Link {
            entry: u32::from_le_bytes(payload.get(8..12)?.try_into().ok()?),
            len: u32::from_le_bytes(payload.get(12..16)?.try_into().ok()?),
            gen: u64::from_le_bytes(payload.get(16..24)?.try_into().ok()?),
        })
    }
}

/// A bundle-sized buffer, 16-aligned like [`Payload`] (rkyv validates
/// archives at their alignment).
#[repr(C, align(16))]
#[derive(Clone)]
pub(crate) struct BigPayload(pub(crate) [u8; OVERFLOW_PAYLOAD]);

impl BigPayload {
    pub(crate) fn boxed() -> Box<BigPayload> {
        Box::new(BigPayload([0u8; OVERFLOW_PAYLOAD]))
    }
}

/// Why the pieces of an entry were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Assemble {
    /// The pieces belong to another write than the link (a write in
    /// progress, the entry reused, a replica still missing pieces): read
    /// the slot again.
    Stale,
    /// The pieces match the link's write but contradict it.
    Corrupt(&'static str),
}

fn piece_header(payload: &[u8]) -> Option<(u64, u32, u32)> {
    Some((
        u64::from_le_bytes(payload.get(0..8)?.try_into().ok()?),
        u32::from_le_bytes(payload.get(8..12)?.try_into().ok()?),
        u32::from_le_bytes(payload.get(12..16)?.try_into().ok()?),
    ))
}

impl Region {
    /// Entries in this region's overflow area.
    pub(crate) fn overflow_entries(&self) -> u32 {
        self.inner().layout.overflow_entries()
    }

    /// Pieces of each overflow entry of this region.
    fn overflow_pieces(&self) -> u32 {
        self.inner().layout.overflow_pieces()
    }

    /// Bundle bytes one piece carries.
    fn piece_data(&self) -> usize {
        self.slot_payload() - PIECE_HEADER
    }

    /// Unit index of piece `i` of entry `entry`.
    fn piece_unit(&self, entry: u32, i: usize) -> u32 {
        self.slot_count() + entry * self.overflow_pieces() + i as u32
    }

    /// Writes `bundle` (at most [`OVERFLOW_PAYLOAD`] bytes) into `entry`
    /// for `slot`, generation `gen`. The slot's link is published after.
    pub(crate) fn write_overflow(&self, slot: u32, entry: u32, gen: u64, bundle: &[u8]) {
        let mut piece = Payload::zeroed();
        let pieces = self.overflow_pieces() as usize;
        for (i, chunk) in bundle.chunks(self.piece_data()).enumerate().take(pieces) {
            piece.0[0..8].copy_from_slice(&gen.to_le_bytes());
            piece.0[8..12].copy_from_slice(&slot.to_le_bytes());
            piece.0[12..16].copy_from_slice(&(bundle.len() as u32).to_le_bytes());
            piece.0[PIECE_HEADER..PIECE_HEADER + chunk.len()].copy_from_slice(chunk);
            self.publish(
                self.piece_unit(entry, i),
                &piece.0[..PIECE_HEADER + chunk.len()],
                None,
            );
        }
    }

    /// The slot currently linked to `entry`, if any: the slot its first
    /// piece names, if that slot's payload is a link to this entry.
    pub(crate) fn overflow_holder(&self, entry: u32) -> Option<u32> {
        let mut buf = Payload::zeroed();
        let Ok(Raw::Data { len, .. }) = self.read_raw(self.piece_unit(entry, 0), &mut buf) else {
            return None;
        };
        let (_, owner, _) = piece_header(&buf.0[..len])?;
        if owner >= self.slot_count() {
            return None;
        }
        let Ok(Raw::Data { len, .. }) = self.read_raw(owner, &mut buf) else {
            return None;
        };
        let link = Link::parse(&buf.0[..len])?;
        (link.entry == entry).then_some(owner)
    }

    /// Copies the bundle `link` of `slot` names into `out`.
    pub(crate) fn read_overflow(
        &self,
        slot: u32,
        link: &Link,
        out: &mut BigPayload,
    ) -> Result<(), Assemble> {
        let total = link.len as usize;
        if link.entry >= self.overflow_entries() {
            return Err(Assemble::Corrupt("link names an entry beyond the area"));
        }
        if total == 0 || total > OVERFLOW_PAYLOAD {
            return Err(Assemble::Corrupt("link length beyond an entry"));
        }
        let mut buf = Payload::zeroed();
        let piece_data = self.piece_data();
        for i in 0..total.div_ceil(piece_data) {
            let unit = self.piece_unit(link.entry, i);
            let len = match self.read_raw(unit, &mut buf) {
                Ok(Raw::Data { len, .. }) => len,
                // Empty, mid-write or never replicated: not this write's.
                Ok(Raw::Empty { .. }) | Err(_) => return Err(Assemble::Stale),
            };
            let Some((gen, owner, whole)) = piece_header(&buf.0[..len]) else {
                return Err(Assemble::Stale);
            };
            if gen != link.gen || owner != slot {
                return Err(Assemble::Stale);
            }
            let start = i * piece_data;
            let want = (total - start).min(piece_data);
            if whole as usize != total || len != PIECE_HEADER + want {
                return Err(Assemble::Corrupt("piece disagrees with its link"));
            }
            out.0[start..start + want].copy_from_slice(&buf.0[PIECE_HEADER..len]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_link_round_trips_and_nothing_else_parses_as_one() {
        let l = Link {
            entry: 7,
            len: 9_000,
            gen: 42,
        };
        assert_eq!(Link::parse(&l.encode()), Some(l));
        assert_eq!(Link::parse(&l.encode()[..23]), None);
        let mut other = l.encode();
        other[0] = b'X';
        assert_eq!(Link::parse(&other), None);
    }

    fn link_of(region: &Region, slot: u32) -> Option<Link> {
        let mut buf = Payload::zeroed();
        match region.read_raw(slot, &mut buf) {
            Ok(Raw::Data { len, .. }) => Link::parse(&buf.0[..len]),
            _ => None,
        }
    }

    #[test]
    fn a_rewrite_moves_to_a_fresh_entry_and_in_place_only_when_none_is_free() {
        let path = std::env::temp_dir().join(format!("baton-ovf-cow-{}.seg", std::process::id()));
        let layout = crate::Layout {
            regions: 1,
            slots_per_region: 16,
            slot_size: crate::SLOT_SIZE as u32,
        };
        let seg = crate::Segment::open_or_create(&path, layout).unwrap();
        let region = seg.region(0).unwrap();
        let mut w = region.writer();
        let url = "u".repeat(2_000);
        let rec = |port: u16| {
            let mut r = crate::ConnRecord {
                owner: 0,
                worker: 0,
                epoch: 1,
                checkpoint_ms: 0,
                local: "198.18.0.11:80"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
                remote: "198.18.0.100:1"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
                transport: crate::Transport::Tcp,
                app_protocol: 1,
                tcp: Some(crate::TcpBlock::default()),
                app: None,
                app_lost: false,
                tls: None,
                app_state: None,
            };
            r.remote.port = port;
            r
        };
        let long = |port: u16| {
            let mut r = rec(port);
            r.app = Some(crate::AppBlock {
                object_start_seq: 0,
                version: 11,
                method: 1,
                status: 200,
                body_len: None,
                name: &url,
                etag: None,
                last_modified: None,
                range_start: None,
                range_end: None,
                persistent: true,
                bytes_sent: 0,
                request_count: 1,
                upload: None,
            });
            r
        };
        w.write(crate::SlotId(0), &[long(1)]).unwrap();
        let first = link_of(&region, 0).unwrap().entry;
        w.write(crate::SlotId(0), &[long(2)]).unwrap();
        let second = link_of(&region, 0).unwrap().entry;
        assert_ne!(
            first, second,
            "the previous checkpoint stays whole while the new one is written"
        );
        assert_eq!(
            region.overflow_holder(first),
            None,
            "and its entry is free again"
        );
        // Every other entry taken: the rewrite goes in place.
        for s in 1..16 {
            w.write(crate::SlotId(s), &[long(100 + s as u16)]).unwrap();
        }
        w.write(crate::SlotId(0), &[long(3)]).unwrap();
        let link = link_of(&region, 0).unwrap();
        let v = region.read(crate::SlotId(0)).unwrap().unwrap();
        assert_eq!(v.bundle().records[0].remote.port.to_native(), 3);
        assert_eq!(region.overflow_holder(link.entry), Some(0));
        let _ = std::fs::remove_file(&path);
    }

    proptest! {
        #[test]
        fn garbage_never_panics_the_link_parser(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Link::parse(&b);
        }
    }
}
