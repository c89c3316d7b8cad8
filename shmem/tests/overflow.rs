//! Bundles larger than a slot: records with URLs up to 8 KiB and
//! validators up to 1 KiB go through the overflow area and read back
//! exactly; anything beyond is refused before a byte is written; a full
//! area is reported, never a stall; and no bytes a segment may hold make
//! the reader panic.

mod common;

use std::os::unix::fs::FileExt;

use baton_shmem::{
    check_archive, Layout, ReadError, Segment, SlotId, WriteError, MAX_NAME_LEN, MAX_VALIDATOR_LEN,
    SLOT_PAYLOAD,
};
use common::{http_record, TempSeg};
use proptest::prelude::*;

const L: Layout = Layout {
    regions: 2,
    slots_per_region: 64,
    slot_size: baton_shmem::SLOT_SIZE as u32,
};

/// A CDN-signed URL: a path and a query string of `len` bytes in all.
fn signed_url(len: usize) -> String {
    let mut u = String::from("/videos/50M.bin?Expires=1790000000&Signature=");
    while u.len() < len {
        u.push_str("AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_~");
    }
    u.truncate(len);
    u
}

#[test]
fn a_record_at_the_limits_round_trips_through_the_overflow_area() {
    let t = TempSeg::new("ovf-limits");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(1).unwrap();
    let mut slots = r.worker_slots(0, 2).unwrap();
    let mut w = slots.writer();
    let url = signed_url(MAX_NAME_LEN);
    let etag = format!("\"{}\"", "e".repeat(MAX_VALIDATOR_LEN - 2));
    let lm = "L".repeat(MAX_VALIDATOR_LEN);
    let mut rec = http_record(1, 4242, &url, Some(&etag));
    let mut app = rec.app.unwrap();
    app.last_modified = Some(&lm);
    rec.app = Some(app);
    let slot = slots.alloc().unwrap();
    w.write(slot, &[rec]).expect("a record at the limits fits");
    let v = r.read(slot).unwrap().expect("slot holds the bundle");
    assert_eq!(v.bundle().records[0].view(), rec);
    assert!(
        v.bytes().len() > SLOT_PAYLOAD,
        "it went through the overflow area"
    );
    // Readers that scan the region see it too.
    let seen: Vec<_> = r.records().map(|v| v.unwrap().slot()).collect();
    assert_eq!(seen, vec![slot]);

    // Rewritten with a short URL it lives in the slot again, and back.
    let short = http_record(1, 4242, "/short", None);
    w.write(slot, &[short]).unwrap();
    assert_eq!(
        r.read(slot).unwrap().unwrap().bundle().records[0].view(),
        short
    );
    w.write(slot, &[rec]).unwrap();
    assert_eq!(
        r.read(slot).unwrap().unwrap().bundle().records[0].view(),
        rec
    );
}

#[test]
fn one_byte_beyond_a_limit_is_refused_and_the_slot_keeps_its_bundle() {
    let t = TempSeg::new("ovf-beyond");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(0).unwrap();
    let mut w = r.writer();
    let kept = http_record(0, 1, "/kept", None);
    w.write(SlotId(3), &[kept]).unwrap();
    let url = signed_url(MAX_NAME_LEN + 1);
    assert!(matches!(
        w.write(SlotId(3), &[http_record(0, 1, &url, None)]),
        Err(WriteError::Invalid("object name too long"))
    ));
    let tag = "t".repeat(MAX_VALIDATOR_LEN + 1);
    assert!(matches!(
        w.write(SlotId(3), &[http_record(0, 1, "/x", Some(&tag))]),
        Err(WriteError::Invalid("validator too long"))
    ));
    assert_eq!(
        r.read(SlotId(3)).unwrap().unwrap().bundle().records[0].view(),
        kept
    );
}

#[test]
fn a_full_overflow_area_is_reported_and_freed_entries_are_reused() {
    let t = TempSeg::new("ovf-full");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(0).unwrap();
    let entries = L.overflow_entries();
    let mut slots = r.worker_slots(0, 1).unwrap();
    let mut w = slots.writer();
    let url = signed_url(2_000);
    let held: Vec<_> = (0..entries)
        .map(|i| {
            let slot = slots.alloc().unwrap();
            w.write(slot, &[http_record(0, i as u16, &url, None)])
                .expect("an entry is free");
            slot
        })
        .collect();
    let one_more = slots.alloc().unwrap();
    let long = http_record(0, 999, &url, None);
    assert_eq!(w.write(one_more, &[long]), Err(WriteError::OverflowFull));
    // A short record still fits its slot.
    w.write(one_more, &[http_record(0, 999, "/s", None)])
        .unwrap();
    // Freeing a slot, or shrinking its record, frees its entry.
    slots.free(held[0]).unwrap();
    w.write(one_more, &[long])
        .expect("the freed entry is reused");
    assert_eq!(w.write(held[1], &[http_record(0, 1, "/s", None)]), Ok(()));
    let again = slots.alloc().unwrap();
    w.write(again, &[long])
        .expect("the shrunk slot's entry is reused");
    for slot in held[2..].iter().chain([&one_more, &again]) {
        let v = r.read(*slot).unwrap().unwrap();
        assert!(v.bundle().records[0].view().app.unwrap().name.len() == url.len());
    }
}

#[test]
fn workers_use_disjoint_shares_of_the_overflow_area() {
    let t = TempSeg::new("ovf-share");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(0).unwrap();
    let url = signed_url(3_000);
    let mut a = r.worker_slots(0, 2).unwrap();
    let mut b = r.worker_slots(1, 2).unwrap();
    let (mut wa, mut wb) = (a.writer(), b.writer());
    let per = L.overflow_entries() / 2;
    let mut written = vec![];
    for i in 0..per {
        let (sa, sb) = (a.alloc().unwrap(), b.alloc().unwrap());
        wa.write(sa, &[http_record(0, i as u16, &url, None)])
            .unwrap();
        wb.write(sb, &[http_record(0, 1000 + i as u16, &url, None)])
            .unwrap();
        written.extend([(sa, i as u16), (sb, 1000 + i as u16)]);
    }
    // Neither writer overwrote the other's entries.
    for (slot, port) in written {
        let v = r.read(slot).unwrap().unwrap();
        assert_eq!(v.bundle().records[0].view().remote.port, port);
    }
}

/// Byte offset of unit `u` (a slot, or an overflow piece after the slots)
/// of region `id` in the segment file.
fn unit_offset(id: u16, u: u32) -> u64 {
    L.unit_offset(id, u) as u64
}

/// Publishes `payload` into unit `u` of region `id` behind the writer's
/// back, as a corrupted segment or a hostile replica could.
fn poke(file: &std::fs::File, id: u16, u: u32, seq: u64, payload: &[u8]) {
    let off = unit_offset(id, u);
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&seq.to_le_bytes());
    head[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    head[12..16].copy_from_slice(&baton_shmem::LAYOUT_VERSION.to_le_bytes());
    file.write_all_at(payload, off + 16).unwrap();
    file.write_all_at(&head, off).unwrap();
}

fn link(entry: u32, len: u32, gen: u64) -> Vec<u8> {
    let mut b = b"BTNOVFL1".to_vec();
    b.extend_from_slice(&entry.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&gen.to_le_bytes());
    b
}

#[test]
fn links_that_do_not_match_their_entry_are_errors_for_their_slot_alone() {
    let t = TempSeg::new("ovf-badlink");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(0).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(t.path())
        .unwrap();
    let mut w = r.writer();
    w.write(SlotId(9), &[http_record(0, 9, "/fine", None)])
        .unwrap();
    // An entry beyond the area, an absurd length, a never-written entry.
    poke(&file, 0, 1, 2, &link(L.overflow_entries(), 900, 2));
    poke(&file, 0, 2, 2, &link(0, u32::MAX, 2));
    poke(&file, 0, 3, 2, &link(1, 900, 2));
    assert!(matches!(r.read(SlotId(1)), Err(ReadError::Overflow(_))));
    assert!(matches!(r.read(SlotId(2)), Err(ReadError::Overflow(_))));
    assert!(matches!(r.read(SlotId(3)), Err(ReadError::Overflow(_))));
    // A piece that names the slot and generation but lies about the length.
    let piece_unit = L.slots_per_region + 2 * L.overflow_pieces();
    let mut piece = 2u64.to_le_bytes().to_vec();
    piece.extend_from_slice(&4u32.to_le_bytes());
    piece.extend_from_slice(&800u32.to_le_bytes());
    piece.extend_from_slice(&[0xAB; 100]);
    poke(&file, 0, piece_unit, 2, &piece);
    poke(&file, 0, 4, 2, &link(2, 900, 2));
    assert!(matches!(r.read(SlotId(4)), Err(ReadError::Overflow(_))));
    let results: Vec<_> = r.records().collect();
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 4);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_bytes_make_archive_validation_panic(b in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let mut buf = rkyv::util::AlignedVec::<16>::new();
        buf.extend_from_slice(&b);
        let _ = check_archive(&buf, 0);
    }

    #[test]
    fn no_slot_or_piece_contents_make_the_reader_panic(
        slot_payload in proptest::collection::vec(any::<u8>(), 0..SLOT_PAYLOAD),
        as_link in any::<bool>(),
        entry in 0u32..20, len in 0u32..20_000, gen in any::<u64>(),
        piece in proptest::collection::vec(any::<u8>(), 0..SLOT_PAYLOAD),
    ) {
        let t = TempSeg::new("ovf-prop");
        let s = Segment::open_or_create(t.path(), L).unwrap();
        let r = s.region(0).unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(t.path()).unwrap();
        let payload = if as_link { link(entry, len, gen) } else { slot_payload };
        poke(&file, 0, 0, 2, &payload);
        poke(&file, 0, L.slots_per_region + entry.min(L.overflow_entries() - 1) * L.overflow_pieces(), 2, &piece);
        let _ = r.read(SlotId(0));
        let _ = r.records().count();
    }
}

/// Whatever the slot size: a record at the limits goes through the overflow
/// area and reads back exactly; a plain HTTP connection's record while it
/// rests (its finished response kept without URL or validators) stays in
/// its slot even at the smallest size, and one with a response in flight
/// from 384 bytes up.
#[test]
fn every_slot_size_holds_a_resting_record_and_carries_one_at_the_limits() {
    let url = signed_url(MAX_NAME_LEN);
    let etag = format!("\"{}\"", "e".repeat(MAX_VALIDATOR_LEN - 2));
    let in_flight = http_record(0, 7, "http://198.19.0.2/50M.bin", Some("\"5f3a-1c2b\""));
    let mut resting = in_flight;
    let mut app = resting.app.unwrap();
    (app.name, app.etag, app.last_modified) = ("", None, None);
    (app.range_start, app.range_end) = (None, None);
    resting.app = Some(app);
    for size in
        (baton_shmem::MIN_SLOT_SIZE..=baton_shmem::SLOT_SIZE).step_by(baton_shmem::SLOT_SIZE_STEP)
    {
        let layout = Layout {
            slot_size: size as u32,
            ..L
        };
        let t = TempSeg::new("ovf-sizes");
        let s = Segment::open_or_create(t.path(), layout).unwrap();
        let r = s.region(0).unwrap();
        assert_eq!(r.slot_size(), size);
        let mut w = r.writer();
        let big = http_record(0, 8, &url, Some(&etag));
        for (slot, rec) in [(0, resting), (1, in_flight), (2, big)] {
            w.write(SlotId(slot), &[rec]).unwrap();
            let v = r.read(SlotId(slot)).unwrap().unwrap();
            assert_eq!(v.bundle().records[0].view(), rec, "slot size {size}");
        }
        let mut fits =
            |slot| w.serialize(&[[resting, in_flight][slot]]).unwrap() <= r.slot_payload();
        assert!(fits(0), "a resting record fits a {size}-byte slot");
        assert_eq!(
            fits(1),
            size >= 384,
            "a record in flight in a {size}-byte slot"
        );
        // The file is what the layout says, and smaller slots make it smaller.
        assert_eq!(
            std::fs::metadata(t.path()).unwrap().len(),
            layout.file_len()
        );
    }
}
