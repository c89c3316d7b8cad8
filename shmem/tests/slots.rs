//! Slots: per-worker free lists, writing and reading bundles, the reader
//! API (records, find), and what corrupt slots do to a reader.

mod common;

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use baton_shmem::{
    ConnRecord, Endpoint, Layout, ReadError, Segment, SlotId, Transport, UploadBlock, WriteError,
    SLOT_SIZE,
};
use common::{http_record, TempSeg};

const L: Layout = Layout {
    regions: 2,
    slots_per_region: 100,
    slot_size: baton_shmem::SLOT_SIZE as u32,
};

/// Byte offset of `slot` of `region` in the segment file, where its
/// sequence word starts.
fn slot_offset(region: u16, slot: SlotId) -> u64 {
    L.unit_offset(region, slot.0) as u64
}

/// Opens the segment file behind the writer's back, to corrupt or tear
/// its slots as a crash or a stalled writer would.
fn open_file(path: &Path) -> File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

/// Leaves `slot` of `region` as a writer stopped mid-write does: its
/// sequence one past its settled (even) value, so odd. Returns the settled
/// value, which the writer would store on finishing.
fn tear(file: &File, region: u16, slot: SlotId) -> u64 {
    let mut word = [0u8; 8];
    file.read_exact_at(&mut word, slot_offset(region, slot))
        .unwrap();
    let settled = u64::from_le_bytes(word);
    file.write_all_at(&(settled + 1).to_le_bytes(), slot_offset(region, slot))
        .unwrap();
    settled
}

#[test]
fn written_bundle_reads_back_field_for_field() {
    let t = TempSeg::new("roundtrip");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(1).unwrap();
    let mut slots = r.worker_slots(0, 1).unwrap();
    let mut w = slots.writer();
    let slot = slots.alloc().unwrap();
    let rec = http_record(1, 40_001, "http://198.19.0.2/50M.bin", Some("\"abc123\""));
    w.write(slot, &[rec]).unwrap();

    let v = r.read(slot).unwrap().expect("slot holds a bundle");
    assert_eq!(v.bundle().records.len(), 1);
    assert_eq!(v.bundle().records[0].view(), rec);
    assert_eq!(
        v.bundle().records[0].remote.socket_addr(),
        "198.18.0.100:40001".parse::<SocketAddr>().unwrap()
    );
}

/// An upload in progress: the longest URL and content type still fit a
/// slot, and the block comes back field for field.
#[test]
fn an_upload_record_reads_back_and_fits_a_slot() {
    let t = TempSeg::new("upload");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(1).unwrap();
    let mut slots = r.worker_slots(0, 1).unwrap();
    let mut w = slots.writer();
    let slot = slots.alloc().unwrap();
    let url = format!("/{}", "u".repeat(255));
    let ct = "c".repeat(128);
    let mut rec = http_record(1, 40_002, &url, None);
    let mut app = rec.app.unwrap();
    app.last_modified = None;
    app.method = 3;
    app.upload = Some(UploadBlock {
        body_start_seq: 4_294_967_000,
        content_length: 10 << 30,
        received: 123_456_789,
        forwarded: false,
        content_type: Some(&ct),
    });
    rec.app = Some(app);
    w.write(slot, &[rec]).unwrap();
    let v = r.read(slot).unwrap().expect("slot holds a bundle");
    assert_eq!(v.bundle().records[0].view(), rec);
}

#[test]
fn an_upload_record_breaking_its_rules_is_refused() {
    let t = TempSeg::new("upload-rules");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let mut w = s.region(0).unwrap().writer();
    let upload = UploadBlock {
        body_start_seq: 1,
        content_length: 10,
        received: 11,
        forwarded: false,
        content_type: None,
    };
    let with = |u: UploadBlock<'static>, lm: Option<&'static str>| {
        let mut rec = http_record(0, 1, "/up", None);
        let mut app = rec.app.unwrap();
        app.last_modified = lm;
        app.upload = Some(u);
        rec.app = Some(app);
        rec
    };
    // More received than the body's length.
    assert!(matches!(
        w.write(SlotId(0), &[with(upload, None)]),
        Err(WriteError::Invalid(_))
    ));
    let ok = UploadBlock {
        received: 10,
        ..upload
    };
    // Validators belong to responses, not to uploads.
    assert!(matches!(
        w.write(SlotId(0), &[with(ok, Some("x"))]),
        Err(WriteError::Invalid(_))
    ));
    let long: &'static str = Box::leak(
        "t".repeat(baton_shmem::MAX_VALIDATOR_LEN + 1)
            .into_boxed_str(),
    );
    assert!(matches!(
        w.write(
            SlotId(0),
            &[with(
                UploadBlock {
                    content_type: Some(long),
                    ..ok
                },
                None
            )]
        ),
        Err(WriteError::Invalid(_))
    ));
    w.write(SlotId(0), &[with(ok, None)]).unwrap();
}

#[test]
fn workers_get_disjoint_ranges_covering_the_region() {
    let t = TempSeg::new("split");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(0).unwrap();
    let ranges: Vec<_> = (0..3)
        .map(|w| r.worker_slots(w, 3).unwrap().range())
        .collect();
    assert_eq!(ranges, vec![0..34, 34..67, 67..100]);
    assert!(r.worker_slots(3, 3).is_err());
    assert!(r.worker_slots(0, 0).is_err());
}

#[test]
fn allocator_runs_out_then_reuses_freed_slots() {
    let t = TempSeg::new("alloc");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(0).unwrap();
    let mut a = r.worker_slots(1, 4).unwrap(); // slots 25..50
    let got: Vec<_> = std::iter::from_fn(|| a.alloc()).collect();
    assert_eq!(got.len(), 25);
    assert_eq!(got[0], SlotId(25));
    assert_eq!(a.alloc(), None);
    a.free(SlotId(30)).unwrap();
    assert_eq!(
        a.free(SlotId(30)),
        Err(WriteError::NotOwned(30)),
        "double free"
    );
    assert_eq!(
        a.free(SlotId(3)),
        Err(WriteError::NotOwned(3)),
        "another worker's slot"
    );
    assert_eq!(a.alloc(), Some(SlotId(30)));
}

#[test]
fn a_writer_refuses_another_workers_slot() {
    let t = TempSeg::new("notowned");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(0).unwrap();
    let a = r.worker_slots(0, 2).unwrap();
    let mut w = a.writer();
    let rec = http_record(0, 1, "/x", None);
    assert_eq!(w.write(SlotId(50), &[rec]), Err(WriteError::NotOwned(50)));
    assert_eq!(
        w.write(SlotId(10_000), &[rec]),
        Err(WriteError::NotOwned(10_000))
    );
    assert_eq!(r.read(SlotId(50)).unwrap().map(|v| v.slot()), None);
}

#[test]
fn freed_and_never_written_slots_are_skipped_by_readers() {
    let t = TempSeg::new("skip");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(0).unwrap();
    let mut a = r.worker_slots(0, 1).unwrap();
    let mut w = a.writer();
    let urls = ["/a", "/b", "/c"];
    let ids: Vec<_> = urls
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let id = a.alloc().unwrap();
            w.write(id, &[http_record(0, 1000 + i as u16, u, None)])
                .unwrap();
            id
        })
        .collect();
    a.free(ids[1]).unwrap();
    let seen: Vec<String> = r
        .records()
        .map(|v| {
            v.unwrap().bundle().records[0]
                .view()
                .app
                .unwrap()
                .name
                .to_string()
        })
        .collect();
    assert_eq!(seen, vec!["/a", "/c"]);
}

#[test]
fn a_bundle_too_large_for_an_overflow_entry_is_refused_and_the_old_one_kept() {
    let t = TempSeg::new("large");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(0).unwrap();
    let mut w = r.writer();
    w.write(SlotId(0), &[http_record(0, 7, "/small", None)])
        .unwrap();
    let url = "u".repeat(baton_shmem::MAX_NAME_LEN);
    let tag = "e".repeat(baton_shmem::MAX_VALIDATOR_LEN);
    let big = [http_record(0, 1, &url, Some(&tag)); 4];
    assert_eq!(w.write(SlotId(0), &big), Err(WriteError::TooLarge));
    let v = r.read(SlotId(0)).unwrap().unwrap();
    assert_eq!(v.bundle().records[0].view().app.unwrap().name, "/small");
}

#[test]
fn bundle_rules_are_checked_before_writing() {
    let t = TempSeg::new("rules");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let mut w = s.region(0).unwrap().writer();
    let long = "x".repeat(baton_shmem::MAX_NAME_LEN + 1);
    assert!(matches!(
        w.write(SlotId(0), &[http_record(0, 1, &long, None)]),
        Err(WriteError::Invalid(_))
    ));
    assert!(matches!(
        w.write(SlotId(0), &[]),
        Err(WriteError::Invalid(_))
    ));
    let r = http_record(0, 1, "/", None);
    assert!(matches!(
        w.write(SlotId(0), &[r; 5]),
        Err(WriteError::Invalid(_))
    ));
    assert_eq!(
        w.write(SlotId(0), &[http_record(1, 1, "/", None)]),
        Err(WriteError::WrongOwner {
            found: 1,
            region: 0
        })
    );
    let mut udp = r;
    udp.transport = Transport::Udp;
    assert!(matches!(
        w.write(SlotId(0), &[udp]),
        Err(WriteError::Invalid(_))
    ));
    udp.tcp = None;
    udp.app = None;
    w.write(SlotId(0), &[r, udp]).unwrap();
}

#[test]
fn find_locates_a_connection_by_its_four_tuple_v4_and_v6() {
    let t = TempSeg::new("find");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(1).unwrap();
    let mut w = r.writer();
    for i in 0..20u16 {
        w.write(
            SlotId(i as u32 * 3),
            &[http_record(1, 5000 + i, "/obj", None)],
        )
        .unwrap();
    }
    let mut ctl = http_record(1, 21, "/ftp-control", None);
    let mut data = http_record(1, 20, "/ftp-data", None);
    ctl.local = Endpoint::from("[2001:2::11]:21".parse::<SocketAddr>().unwrap());
    ctl.remote = Endpoint::from("[2001:2::100]:50000".parse::<SocketAddr>().unwrap());
    data.local = Endpoint::from("[2001:2::11]:20".parse::<SocketAddr>().unwrap());
    data.remote = Endpoint::from("[2001:2::100]:50001".parse::<SocketAddr>().unwrap());
    w.write(SlotId(99), &[ctl, data]).unwrap();

    let (v, i) = r
        .find(
            "198.18.0.11:80".parse().unwrap(),
            "198.18.0.100:5013".parse().unwrap(),
        )
        .expect("connection 13 is checkpointed");
    assert_eq!((v.slot(), i), (SlotId(39), 0));
    let (v, i) = r
        .find(
            "[2001:2::11]:20".parse().unwrap(),
            "[2001:2::100]:50001".parse().unwrap(),
        )
        .expect("FTP data connection is checkpointed");
    assert_eq!((v.slot(), i), (SlotId(99), 1));
    assert_eq!(
        v.bundle().records[0].view().app.unwrap().name,
        "/ftp-control"
    );
    assert!(r
        .find(
            "198.18.0.11:80".parse().unwrap(),
            "198.18.0.100:4999".parse().unwrap()
        )
        .is_none());
}

#[test]
fn index_maps_every_four_tuple_of_a_region_to_its_slot() {
    let t = TempSeg::new("index");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(1).unwrap();
    let mut w = r.writer();
    for i in 0..30u16 {
        w.write(
            SlotId(i as u32 * 2),
            &[http_record(1, 6000 + i, "/o", None)],
        )
        .unwrap();
    }
    let mut bare = http_record(1, 7000, "/", None);
    bare.app = None;
    w.write(SlotId(1), &[http_record(1, 6999, "/ctl", None), bare])
        .unwrap();
    let idx = r.index();
    assert_eq!(idx.len(), 32);
    let local: SocketAddr = "198.18.0.11:80".parse().unwrap();
    assert_eq!(
        idx.get(&(local, "198.18.0.100:6029".parse().unwrap())),
        Some(&(SlotId(58), 0))
    );
    assert_eq!(
        idx.get(&(local, "198.18.0.100:7000".parse().unwrap())),
        Some(&(SlotId(1), 1))
    );
}

#[test]
fn a_corrupt_slot_is_reported_and_the_rest_of_the_region_still_read() {
    let t = TempSeg::new("corrupt");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(1).unwrap();
    let mut w = r.writer();
    for i in 0..10u32 {
        w.write(SlotId(i), &[http_record(1, 100 + i as u16, "/k", None)])
            .unwrap();
    }
    let f = open_file(t.path());
    // Slot 3: garbage payload. Slot 6: length beyond the slot.
    f.write_all_at(&[0xa5; 200], slot_offset(1, SlotId(3)) + 16)
        .unwrap();
    f.write_all_at(&5000u32.to_le_bytes(), slot_offset(1, SlotId(6)) + 8)
        .unwrap();
    let mut ok = vec![];
    let mut bad = vec![];
    for item in r.records() {
        match item {
            Ok(v) => ok.push(v.slot().0),
            Err(e) => bad.push((e.slot.0, e.error)),
        }
    }
    assert_eq!(ok, vec![0, 1, 2, 4, 5, 7, 8, 9]);
    assert_eq!(bad.len(), 2);
    assert_eq!(bad[0].0, 3);
    assert!(matches!(
        bad[0].1,
        ReadError::Invalid(_) | ReadError::Rule(_)
    ));
    assert_eq!(bad[1], (6, ReadError::BadLength(5000)));
}

#[test]
fn a_slot_whose_writer_died_mid_write_is_busy_not_misread() {
    let t = TempSeg::new("busy");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(0).unwrap();
    r.writer()
        .write(SlotId(2), &[http_record(0, 1, "/", None)])
        .unwrap();
    tear(&open_file(t.path()), 0, SlotId(2));
    assert_eq!(r.read(SlotId(2)).unwrap_err(), ReadError::Busy);
    // The next write moves past the dead writer's odd sequence.
    r.writer()
        .write(SlotId(2), &[http_record(0, 2, "/again", None)])
        .unwrap();
    assert!(r.read(SlotId(2)).unwrap().is_some());
}

#[test]
fn a_slot_whose_writer_finishes_late_is_read_by_the_deadline_and_a_dead_ones_is_not() {
    let t = TempSeg::new("busy-late");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(0).unwrap();
    r.writer()
        .write(SlotId(2), &[http_record(0, 1, "/", None)])
        .unwrap();
    let f = open_file(t.path());

    // A writer descheduled mid-write: a plain read's own re-reads give up
    // on the slot while it is torn...
    let settled = tear(&f, 0, SlotId(2));
    let plain = Instant::now();
    assert_eq!(r.read(SlotId(2)).unwrap_err(), ReadError::Busy);
    // ...and the writer finishes four times that long after read_by starts,
    // so a read_by that gave up as the plain read did would fail here: its
    // success is its patience.
    let finishes_after = plain.elapsed() * 4 + Duration::from_millis(5);
    let started = Instant::now();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            std::thread::sleep(finishes_after);
            f.write_all_at(&settled.to_le_bytes(), slot_offset(0, SlotId(2)))
                .unwrap();
        });
        let deadline = started + Duration::from_secs(10);
        let read = r
            .read_by(SlotId(2), deadline)
            .expect("settled before the deadline");
        assert!(read.is_some(), "the settled slot holds its bundle");
    });
    assert!(started.elapsed() >= finishes_after);

    // A writer that died mid-write: still busy at the deadline, not before.
    tear(&f, 0, SlotId(2));
    let started = Instant::now();
    let deadline = started + Duration::from_millis(50);
    assert_eq!(r.read_by(SlotId(2), deadline).unwrap_err(), ReadError::Busy);
    assert!(started.elapsed() >= Duration::from_millis(50));
}

fn record_with(tag: u64, url: &str) -> ConnRecord<'_> {
    let mut r = http_record(0, (tag % 60000) as u16, url, None);
    if let Some(app) = r.app.as_mut() {
        app.bytes_sent = tag;
    }
    r
}

mod slot_fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Arbitrary bytes over one slot (header and payload): reading it
        /// never panics, gives an error or a bundle that passed
        /// validation, and every other slot still reads back exactly.
        #[test]
        fn arbitrary_slot_bytes_never_panic_and_spare_other_slots(
            victim in 0u32..8,
            at in 0usize..SLOT_SIZE,
            bytes in proptest::collection::vec(any::<u8>(), 1..SLOT_SIZE),
        ) {
            let t = TempSeg::new("slotfuzz");
            let s = Segment::open_or_create(t.path(), L).unwrap();
            let r = s.region(0).unwrap();
            let mut w = r.writer();
            let urls: Vec<String> = (0..8).map(|i| format!("/obj/{i}")).collect();
            for (i, u) in urls.iter().enumerate() {
                w.write(SlotId(i as u32), &[record_with(i as u64, u)]).unwrap();
            }
            let n = bytes.len().min(SLOT_SIZE - at);
            let f = open_file(t.path());
            f.write_all_at(&bytes[..n], slot_offset(0, SlotId(victim)) + at as u64).unwrap();
            for i in 0..8u32 {
                let got = r.read(SlotId(i));
                if i == victim {
                    if let Ok(Some(v)) = got {
                        // Whatever survived validation is a well-formed bundle.
                        prop_assert!(!v.bundle().records.is_empty());
                    }
                } else {
                    let v = got.unwrap().unwrap();
                    prop_assert_eq!(v.bundle().records[0].view().app.unwrap().bytes_sent, i as u64);
                }
            }
            prop_assert_eq!(r.records().filter(|x| x.is_ok()).count() >= 7, true);
        }
    }
}

#[test]
fn a_typical_http_record_and_two_per_slot_fit() {
    let t = TempSeg::new("sizes");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let mut w = s.region(0).unwrap().writer();
    let r = http_record(0, 1, "http://198.19.0.2/50M.bin", Some("\"5f3a-1c2b\""));
    let one = w.serialize(&[r]).unwrap();
    assert!(one <= 320, "typical HTTP record takes {one} bytes");
    let mut bare = r;
    bare.app = None;
    // FTP-like: two full records and a bare one fit one slot; so do four bare ones.
    assert!(w.serialize(&[r, r, bare]).is_ok());
    assert!(w.serialize(&[bare; 4]).is_ok());
}

/// An HTTPS connection's record carries its sealed TLS block (314 bytes,
/// up to 1,018 with pending input) beside its HTTP block and reads back byte for byte; a block over
/// `MAX_TLS_BLOCK_LEN` is refused before the slot is touched.
#[test]
fn a_tls_block_reads_back_and_an_oversized_one_is_refused() {
    let t = TempSeg::new("tls");
    let s = Segment::open_or_create(t.path(), L).unwrap();
    let r = s.region(1).unwrap();
    let mut slots = r.worker_slots(0, 1).unwrap();
    let mut w = slots.writer();
    let slot = slots.alloc().unwrap();
    let block: Vec<u8> = (0..312u32).map(|i| (i * 7 + 3) as u8).collect();
    let rec = ConnRecord {
        tls: Some(&block),
        ..http_record(1, 40_443, "/50M.bin", Some("\"e\""))
    };
    w.write(slot, &[rec]).unwrap();
    let v = r.read(slot).unwrap().expect("slot holds a bundle");
    assert_eq!(v.bundle().records[0].view(), rec);
    assert_eq!(v.bundle().records[0].view().tls, Some(&block[..]));

    // The largest block baton-tls seals (314 bytes and 704 of pending
    // pipelined requests) fits a record too, beside a long URL.
    let big_slot = slots.alloc().unwrap();
    let biggest: Vec<u8> = (0..1018u32).map(|i| (i * 13 + 1) as u8).collect();
    let url = format!("/{}", "u".repeat(900));
    let big = ConnRecord {
        tls: Some(&biggest),
        ..http_record(1, 40_446, &url, Some("\"e\""))
    };
    w.write(big_slot, &[big]).unwrap();
    let v = r.read(big_slot).unwrap().expect("slot holds a bundle");
    assert_eq!(v.bundle().records[0].view(), big);

    let long = vec![0u8; baton_shmem::MAX_TLS_BLOCK_LEN + 1];
    let too_long = ConnRecord {
        tls: Some(&long),
        ..http_record(1, 40_444, "/", None)
    };
    assert!(matches!(
        w.write(slot, &[too_long]),
        Err(WriteError::Invalid(_))
    ));
    let v = r.read(slot).unwrap().expect("the old bundle stays");
    assert_eq!(v.bundle().records[0].view(), rec);

    // Another protocol's opaque state round-trips, and one byte over its
    // limit is refused the same way.
    let state: Vec<u8> = (0..288u32).map(|i| (i * 11 + 5) as u8).collect();
    let ftp = ConnRecord {
        app_protocol: baton_shmem::APP_PROTOCOL_FTP,
        app: None,
        app_state: Some(&state),
        ..http_record(1, 40_445, "/", None)
    };
    w.write(slot, &[ftp]).unwrap();
    let v = r.read(slot).unwrap().expect("slot holds a bundle");
    assert_eq!(v.bundle().records[0].view().app_state, Some(&state[..]));
    let long = vec![0u8; baton_shmem::MAX_APP_STATE_LEN + 1];
    let too_long = ConnRecord {
        app_state: Some(&long),
        ..ftp
    };
    assert!(matches!(
        w.write(slot, &[too_long]),
        Err(WriteError::Invalid(_))
    ));
}
