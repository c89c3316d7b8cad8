//! The replication datagram format: the 36-byte header, slot entries, the
//! heartbeat's box-table entry and the snapshot bodies, as specified in
//! docs/CHECKPOINT_FORMAT.md, "Replication datagrams".
//!
//! Pure bytes: no sockets, no keys (the HMAC tag is `auth`'s), no replica
//! state. A new datagram kind (consensus traffic, issue #21) adds its kind
//! number and body here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::boxtable::{BoxInfo, BoxLoad, BoxState, LOAD_VERSION, MAX_SERVICE_IPS};
use crate::slot::SLOT_PAYLOAD;

/// Largest datagram sent: fits a 1500-byte Ethernet MTU with IPv6 and UDP
/// headers, so nothing is ever fragmented on the back LAN.
pub const MAX_DATAGRAM: usize = 1400;
const MAGIC: [u8; 4] = *b"BTR1";
/// 2: the header names the incarnation of the box it is meant for
/// (`target_epoch`), so a datagram captured before its receiver restarted
/// is refused after the restart.
const VERSION: u8 = 2;
/// Header length; the body follows it.
pub(super) const HDR: usize = 36;
/// HMAC-SHA256 tag length; the tag follows the body.
pub(super) const TAG: usize = 32;
/// Shortest datagram: a header and a tag around an empty body.
pub(super) const MIN_DATAGRAM: usize = HDR + TAG;
/// The load trailer of a heartbeat body: tag `L`, version, bytes/s (u64),
/// busy ppm (u32).
const LOAD_TRAILER: usize = 2 + 8 + 4;
/// The layout trailer of a heartbeat body: tag `G`, the sender's slots a
/// region (u32) and bytes a slot (u32).
const LAYOUT_TRAILER: usize = 1 + 4 + 4;
/// Longest heartbeat: header, a full box-table entry (41 bytes, 17 per
/// service address, the load trailer) and tag. The heartbeat socket
/// refuses anything longer before the HMAC, so garbage the size of
/// replication traffic costs it no more than a length comparison. It must
/// hold the longest heartbeat a box sends: a survivor that inherited
/// addresses (an IPv4 and an IPv6 one per box) publishes all four slots,
/// and a heartbeat refused for its length makes its sender look dead.
pub const MAX_HEARTBEAT: usize = HDR + service_ip_at(MAX_SERVICE_IPS) + LOAD_TRAILER + TAG;
/// Largest body that keeps the datagram within [`MAX_DATAGRAM`].
pub(super) const MAX_BODY: usize = MAX_DATAGRAM - HDR - TAG;
/// Slot entry in an update or chunk body: slot u32, seq u64, len u16.
pub(super) const ENTRY_HDR: usize = 14;
/// Snapshot chunks sent per request; the receiver asks for the next window
/// when it has them, which paces a snapshot to what the receiver absorbs.
pub(super) const SNAPSHOT_WINDOW: u16 = 32;
/// Slot updates (own slots published since the last tick).
pub(super) const K_UPDATE: u8 = 1;
/// The sender's box-table entry (its liveness).
pub(super) const K_HEARTBEAT: u8 = 2;
/// A request for a window of snapshot chunks.
pub(super) const K_SNAP_REQ: u8 = 3;
/// One snapshot chunk: a slot range of the sender's region.
pub(super) const K_SNAP_CHUNK: u8 = 4;

/// The fixed header of a received datagram.
pub(super) struct Header {
    pub(super) kind: u8,
    pub(super) sender: u16,
    pub(super) epoch: u32,
    pub(super) target: u16,
    /// The incarnation of `target` the sender believed current (0: it has
    /// not heard of one yet).
    pub(super) target_epoch: u32,
    pub(super) body_len: usize,
    pub(super) counter: u64,
    pub(super) data_seq: u64,
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
/// The little-endian u32 at `off`, if the bytes are there.
pub(super) fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn le64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Why a datagram's framing is refused, before any tag is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Longer than any datagram a box sends ([`MAX_DATAGRAM`]).
    Oversized,
    /// Shorter than a header and tag, or its length field disagrees with
    /// its size (truncated or padded).
    Truncated,
    /// Not our magic or version: not a replication datagram at all.
    BadMagic,
}

/// Parses the fixed header: only a datagram of exactly header + body + tag,
/// within [`MAX_DATAGRAM`], of the magic and version we speak. These are
/// the cheap checks that run before the HMAC: a forged flood costs a
/// length and four-byte comparison per datagram, never a tag computation
/// over 60 KB.
pub(super) fn parse_header(d: &[u8]) -> Result<Header, Malformed> {
    if d.len() > MAX_DATAGRAM {
        return Err(Malformed::Oversized);
    }
    if d.len() < MIN_DATAGRAM {
        return Err(Malformed::Truncated);
    }
    if d.get(0..4) != Some(&MAGIC[..]) || d.get(4) != Some(&VERSION) {
        return Err(Malformed::BadMagic);
    }
    let body_len = le16(d, 14).ok_or(Malformed::Truncated)? as usize;
    if d.len() != HDR + body_len + TAG {
        return Err(Malformed::Truncated);
    }
    let h = (|| {
        Some(Header {
            kind: *d.get(5)?,
            sender: le16(d, 6)?,
            epoch: le32(d, 8)?,
            target: le16(d, 12)?,
            target_epoch: le32(d, 32)?,
            body_len,
            counter: le64(d, 16)?,
            data_seq: le64(d, 24)?,
        })
    })();
    h.ok_or(Malformed::Truncated)
}

/// What the header of an outgoing datagram says.
pub(super) struct Outgoing {
    pub(super) kind: u8,
    pub(super) sender: u16,
    pub(super) epoch: u32,
    pub(super) target: u16,
    pub(super) target_epoch: u32,
    pub(super) counter: u64,
    pub(super) data_seq: u64,
}

/// Starts a datagram in `out` (cleared first): its header, with the body
/// length left for [`finish_body`].
pub(super) fn begin(out: &mut Vec<u8>, h: &Outgoing) {
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(h.kind);
    out.extend_from_slice(&h.sender.to_le_bytes());
    out.extend_from_slice(&h.epoch.to_le_bytes());
    out.extend_from_slice(&h.target.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // body length, set by finish_body
    out.extend_from_slice(&h.counter.to_le_bytes());
    out.extend_from_slice(&h.data_seq.to_le_bytes());
    out.extend_from_slice(&h.target_epoch.to_le_bytes());
    debug_assert_eq!(out.len(), HDR);
}

/// Readdresses the datagram being built in `out` (not sealed yet) to
/// incarnation `epoch` of box `target`: each peer gets its own tag over its
/// own address, so a copy cannot be replayed to another box, nor to a later
/// incarnation of its own.
pub(super) fn set_target(out: &mut [u8], target: u16, epoch: u32) {
    out[12..14].copy_from_slice(&target.to_le_bytes());
    out[32..36].copy_from_slice(&epoch.to_le_bytes());
}

/// Overwrites the header's data_seq of the datagram in `out`.
pub(super) fn set_data_seq(out: &mut [u8], ds: u64) {
    out[24..32].copy_from_slice(&ds.to_le_bytes());
}

/// Writes the body length into the header, once the body is complete.
pub(super) fn finish_body(out: &mut [u8]) {
    let body = (out.len() - HDR) as u16;
    out[14..16].copy_from_slice(&body.to_le_bytes());
}

/// Appends one slot entry.
pub(super) fn append_entry(out: &mut Vec<u8>, slot: u32, seq: u64, payload: &[u8]) {
    out.extend_from_slice(&slot.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload);
}

/// One slot entry at `off`: (slot, seq, payload, offset after it).
pub(super) fn parse_entry(b: &[u8], off: usize) -> Option<(u32, u64, &[u8], usize)> {
    let slot = le32(b, off)?;
    let seq = le64(b, off + 4)?;
    let len = le16(b, off + 12)? as usize;
    if len > SLOT_PAYLOAD || seq & 1 == 1 {
        return None;
    }
    let start = off + ENTRY_HDR;
    let bytes = b.get(start..start + len)?;
    Some((slot, seq, bytes, start + len))
}

/// Appends a snapshot request body: `from_slot u32, window u16`.
pub(super) fn append_snapshot_request(out: &mut Vec<u8>, from: u32, window: u16) {
    out.extend_from_slice(&from.to_le_bytes());
    out.extend_from_slice(&window.to_le_bytes());
}

/// `(from_slot, window)` of a snapshot request body.
pub(super) fn parse_snapshot_request(body: &[u8]) -> Option<(u32, u16)> {
    let from = le32(body, 0)?;
    let window = le16(body, 4)?;
    Some((from, window))
}

/// The shape of a box's region: a replica holds a peer's region only if
/// both boxes have the same (their `checkpoint.slots` and
/// `checkpoint.slot_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionLayout {
    /// Slots a region.
    pub slots: u32,
    /// Bytes a slot.
    pub slot_bytes: u32,
}

impl RegionLayout {
    /// The layout of `region`, as a heartbeat announces it and a replica
    /// compares it.
    pub fn of(region: &crate::Region) -> RegionLayout {
        RegionLayout {
            slots: region.slot_count(),
            slot_bytes: region.slot_size() as u32,
        }
    }
}

impl std::fmt::Display for RegionLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} slots of {} bytes", self.slots, self.slot_bytes)
    }
}

/// Appends the heartbeat body: the sender's box-table entry, if readable,
/// and its region's layout.
pub(super) fn encode_info(out: &mut Vec<u8>, info: Option<&BoxInfo>, layout: RegionLayout) {
    let Some(i) = info else {
        out.push(0);
        return;
    };
    out.push(1);
    out.extend_from_slice(&i.heartbeat.to_le_bytes());
    out.extend_from_slice(&i.heartbeat_ms.to_le_bytes());
    out.push(match i.state {
        BoxState::Unused => 0,
        BoxState::Alive => 1,
        BoxState::Dead => 2,
        BoxState::Draining => 3,
        BoxState::Rejoined => 4,
    });
    out.extend_from_slice(&i.mac);
    out.extend_from_slice(&i.connections.to_le_bytes());
    out.extend_from_slice(&i.checkpoints.to_le_bytes());
    out.push(i.service_ips.len().min(MAX_SERVICE_IPS) as u8);
    for ip in i.service_ips.iter().take(MAX_SERVICE_IPS) {
        match ip {
            IpAddr::V4(a) => {
                out.push(4);
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                out.extend_from_slice(&b);
            }
            IpAddr::V6(a) => {
                out.push(6);
                out.extend_from_slice(&a.octets());
            }
        }
    }
    // Additive trailer (issue 20): older receivers stop reading after the
    // IPs, so they ignore it; a body without it means "no load".
    if let Some(load) = i.load {
        out.push(b'L');
        out.push(LOAD_VERSION as u8);
        out.extend_from_slice(&load.bytes_per_sec.to_le_bytes());
        out.extend_from_slice(&load.busy_ppm.to_le_bytes());
    }
    // Additive too (issue 19): a receiver whose replica has another layout
    // refuses the sender's slots instead of half-applying them. Left out of
    // the rare body it would make longer than an older receiver accepts
    // (every address slot filled): receivers keep what they last heard.
    if HDR + out.len() + LAYOUT_TRAILER + TAG > MAX_HEARTBEAT {
        return;
    }
    out.push(b'G');
    out.extend_from_slice(&layout.slots.to_le_bytes());
    out.extend_from_slice(&layout.slot_bytes.to_le_bytes());
}

/// The region layout a heartbeat body announces; `None` for a body without
/// one (a sender from before the trailer) or a malformed one.
pub(super) fn decode_layout(b: &[u8]) -> Option<RegionLayout> {
    let mut at = trailers_at(b)?;
    if b.get(at) == Some(&b'L') {
        // A load trailer of another version may have another length.
        if u32::from(*b.get(at + 1)?) != LOAD_VERSION {
            return None;
        }
        at += LOAD_TRAILER;
    }
    if b.get(at) != Some(&b'G') {
        return None;
    }
    Some(RegionLayout {
        slots: le32(b, at + 1)?,
        slot_bytes: le32(b, at + 5)?,
    })
}

/// Offset of the service address count in a heartbeat body: after the
/// presence byte and the entry's fixed fields (40 bytes).
const SERVICE_IP_COUNT_AT: usize = 40;
/// Bytes of one service address in a heartbeat body: family (4 or 6),
/// then 16 address bytes.
const SERVICE_IP_LEN: usize = 1 + 16;

/// Offset of service address `i` in a heartbeat body; `service_ip_at(n)`
/// of a body with `n` addresses is where its trailers begin. Shared by the
/// decoders and [`MAX_HEARTBEAT`], so none of them counts bytes apart.
const fn service_ip_at(i: usize) -> usize {
    SERVICE_IP_COUNT_AT + 1 + i * SERVICE_IP_LEN
}

/// How many service addresses a heartbeat body carries; `None` if it has
/// no box-table entry or claims more than a box publishes.
fn service_ip_count(b: &[u8]) -> Option<usize> {
    if *b.first()? == 0 {
        return None;
    }
    let n = *b.get(SERVICE_IP_COUNT_AT)? as usize;
    (n <= MAX_SERVICE_IPS).then_some(n)
}

/// Where a heartbeat body's trailers begin: after the service addresses.
fn trailers_at(b: &[u8]) -> Option<usize> {
    Some(service_ip_at(service_ip_count(b)?))
}

/// The box-table entry of a heartbeat body; `None` if absent or malformed.
pub(super) fn decode_info(b: &[u8]) -> Option<BoxInfo> {
    let n = service_ip_count(b)?;
    let heartbeat = le64(b, 1)?;
    let heartbeat_ms = le64(b, 9)?;
    let state = match *b.get(17)? {
        0 => BoxState::Unused,
        1 => BoxState::Alive,
        2 => BoxState::Dead,
        3 => BoxState::Draining,
        4 => BoxState::Rejoined,
        _ => return None,
    };
    let mac: [u8; 6] = b.get(18..24)?.try_into().ok()?;
    let connections = le64(b, 24)? as i64;
    let checkpoints = le64(b, 32)?;
    let mut service_ips = Vec::with_capacity(n);
    for i in 0..n {
        let off = service_ip_at(i);
        let fam = *b.get(off)?;
        let a: [u8; 16] = b.get(off + 1..off + SERVICE_IP_LEN)?.try_into().ok()?;
        service_ips.push(match fam {
            4 => IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            6 => IpAddr::V6(Ipv6Addr::from(a)),
            _ => return None,
        });
    }
    let tail = service_ip_at(n);
    // A trailer of an unknown tag or version is ignored, not an error: a
    // newer sender may publish more than this build reads.
    let load = match (b.get(tail), b.get(tail + 1)) {
        (Some(b'L'), Some(&v)) if u32::from(v) == LOAD_VERSION => Some(BoxLoad {
            bytes_per_sec: le64(b, tail + 2)?,
            busy_ppm: le32(b, tail + 10)?.min(1_000_000),
        }),
        _ => None,
    };
    Some(BoxInfo {
        heartbeat,
        heartbeat_ms,
        state,
        epoch: 0,
        mac,
        service_ips,
        connections,
        checkpoints,
        load,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: RegionLayout = RegionLayout {
        slots: 4096,
        slot_bytes: 768,
    };

    /// An alive box with one service address and no load.
    fn one_address_info() -> BoxInfo {
        BoxInfo {
            heartbeat: 7,
            heartbeat_ms: 1,
            state: BoxState::Alive,
            epoch: 0,
            mac: [2, 0, 0, 0, 0, 2],
            service_ips: vec!["198.18.0.12".parse().unwrap_or_else(|_| unreachable!())],
            connections: 3,
            checkpoints: 4,
            load: None,
        }
    }

    #[test]
    fn a_heartbeat_names_its_sender_s_layout_with_or_without_a_load() {
        let mut info = one_address_info();
        let mut body = Vec::new();
        encode_info(&mut body, Some(&info), LAYOUT);
        assert_eq!(decode_layout(&body), Some(LAYOUT));
        info.load = Some(BoxLoad {
            bytes_per_sec: 5,
            busy_ppm: 6,
        });
        body.clear();
        encode_info(&mut body, Some(&info), LAYOUT);
        assert_eq!(decode_layout(&body), Some(LAYOUT));
        assert_eq!(decode_info(&body).and_then(|i| i.load), info.load);
        // A sender from before the trailer: no layout, not a mismatch.
        body.truncate(body.len() - LAYOUT_TRAILER);
        assert_eq!(decode_info(&body), Some(info.clone()));
        assert_eq!(decode_layout(&body), None);
        // Cut short, or after a load trailer of another version: none.
        body.clear();
        encode_info(&mut body, Some(&info), LAYOUT);
        assert_eq!(decode_layout(&body[..body.len() - 1]), None);
        let mut other = body.clone();
        let at = 41 + 17; // after the one service address
        assert_eq!(other[at], b'L');
        other[at + 1] = 9;
        assert_eq!(decode_layout(&other), None);
        // No box-table entry: no layout either.
        body.clear();
        encode_info(&mut body, None, LAYOUT);
        assert_eq!(decode_layout(&body), None);
    }

    #[test]
    fn a_box_table_entry_survives_the_heartbeat_body() {
        let info = BoxInfo {
            heartbeat: 42,
            heartbeat_ms: 1_700_000_000_000,
            state: BoxState::Draining,
            epoch: 0,
            mac: [2, 0xba, 0x70, 0, 0, 1],
            service_ips: vec![
                "198.18.0.11".parse().unwrap_or_else(|_| unreachable!()),
                "2001:db8::11".parse().unwrap_or_else(|_| unreachable!()),
            ],
            connections: 12,
            checkpoints: 99,
            load: Some(BoxLoad {
                bytes_per_sec: 1_250_000,
                busy_ppm: 420_000,
            }),
        };
        let mut body = Vec::new();
        encode_info(&mut body, Some(&info), LAYOUT);
        assert_eq!(decode_info(&body), Some(info));
        body.clear();
        encode_info(&mut body, None, LAYOUT);
        assert_eq!(decode_info(&body), None);
    }

    #[test]
    fn the_longest_heartbeat_a_box_sends_fits_what_the_heartbeat_socket_accepts() {
        // Every service-address slot filled with IPv6 (the longest form)
        // and a load: a survivor after a takeover in a dual-stack cluster.
        let info = BoxInfo {
            heartbeat: u64::MAX,
            heartbeat_ms: u64::MAX,
            state: BoxState::Alive,
            epoch: 0,
            mac: [2, 0, 0, 0, 0, 2],
            service_ips: (0..MAX_SERVICE_IPS + 2)
                .map(|i| format!("2001:2:0:18::{}", 11 + i))
                .map(|a| a.parse().unwrap_or_else(|_| unreachable!()))
                .collect(),
            connections: i64::MAX,
            checkpoints: u64::MAX,
            load: Some(BoxLoad {
                bytes_per_sec: u64::MAX,
                busy_ppm: 1_000_000,
            }),
        };
        let mut body = Vec::new();
        encode_info(&mut body, Some(&info), LAYOUT);
        assert!(
            HDR + body.len() + TAG <= MAX_HEARTBEAT,
            "a heartbeat of {} bytes would be refused (limit {MAX_HEARTBEAT})",
            HDR + body.len() + TAG
        );
        assert!(decode_info(&body).is_some_and(|i| i.load.is_some()));
        assert_eq!(decode_layout(&body), None, "no room left for the layout");
    }

    #[test]
    fn a_heartbeat_without_the_load_trailer_reads_as_no_load_and_an_unknown_trailer_is_ignored() {
        let mut info = one_address_info();
        let mut body = Vec::new();
        encode_info(&mut body, Some(&info), LAYOUT);
        assert_eq!(decode_info(&body), Some(info.clone()));
        // An older sender's body is exactly this; a newer one's with a
        // version this build does not know must still parse.
        body.extend_from_slice(&[b'L', 9, 1, 2, 3]);
        assert_eq!(decode_info(&body), Some(info.clone()));
        info.load = Some(BoxLoad {
            bytes_per_sec: 5,
            busy_ppm: 2_000_000,
        });
        body.clear();
        encode_info(&mut body, Some(&info), LAYOUT);
        let back = decode_info(&body).and_then(|i| i.load);
        assert_eq!(back.map(|l| l.busy_ppm), Some(1_000_000), "clamped");
    }

    #[test]
    fn an_entry_with_an_odd_sequence_or_a_short_payload_is_refused() {
        let mut b = Vec::new();
        append_entry(&mut b, 3, 8, b"abc");
        assert_eq!(parse_entry(&b, 0), Some((3, 8, &b"abc"[..], b.len())));
        assert_eq!(parse_entry(&b[..b.len() - 1], 0), None);
        let mut odd = Vec::new();
        append_entry(&mut odd, 3, 9, b"abc");
        assert_eq!(parse_entry(&odd, 0), None, "mid-write sequence");
    }
}
