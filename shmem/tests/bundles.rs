//! Bundles as FTP uses them (issue 17): a control and a data connection
//! published in one write. Under a concurrent writer a reader sees all of
//! a bundle's records from one write or retries, also when the bundle is
//! large enough to live in the overflow area behind a link, and when the
//! slot alternates between a bundle and a single record.

mod common;

use std::time::Duration;

use baton_shmem::{ConnRecord, Layout, ReadError, Segment, SlotId};
use common::{http_record, Hammer, TempSeg};

/// A member of write `i`: its TCP block and URL both carry `i`, so a
/// record mixing two writes, or a bundle mixing records of two writes,
/// shows.
fn member<'a>(i: u64, port: u16, url: &'a str) -> ConnRecord<'a> {
    let mut r = http_record(0, port, url, None);
    if let Some(t) = r.tcp.as_mut() {
        t.snd_nxt = i as u32;
    }
    if let Some(a) = r.app.as_mut() {
        a.bytes_sent = i;
    }
    r
}

fn url_of(i: u64, kind: &str, long: bool) -> String {
    // 3 KiB of padding sends a two-record bundle to the overflow area.
    let pad = if long { 3 * 1024 } else { 8 };
    format!("/{kind}/{i}/{}", "x".repeat(pad + (i % 97) as usize))
}

#[test]
fn an_ftp_bundle_is_read_whole_inline_and_through_the_overflow_area() {
    let hammer = Hammer::start("ftp-bundle", 2, |w, i| {
        // Writes cycle: inline bundle, linked bundle, single record.
        let long = i % 3 == 1;
        let control = url_of(i, "control", long);
        let data = url_of(i, "data", long);
        if i % 3 == 2 {
            w.write(SlotId(0), &[member(i, 21, &control)]).unwrap();
        } else {
            w.write(
                SlotId(0),
                &[member(i, 21, &control), member(i, 40_000, &data)],
            )
            .unwrap();
        }
    });
    let (mut inline, mut linked, mut single) = (0u64, 0u64, 0u64);
    hammer.read_for(Duration::from_millis(1500), |region| {
        let v = match region.read(SlotId(0)) {
            Ok(Some(v)) => v,
            Ok(None) | Err(ReadError::Busy) | Err(ReadError::Overflow(_)) => return,
            Err(e) => panic!("{e}"),
        };
        let recs = &v.bundle().records;
        let first = recs[0].view();
        let i = u64::from(first.tcp.unwrap().snd_nxt);
        let long = i % 3 == 1;
        for (r, (port, kind)) in recs.iter().zip([(21, "control"), (40_000, "data")]) {
            let r = r.view();
            assert_eq!(
                r.tcp.unwrap().snd_nxt as u64,
                i,
                "records of two writes in one bundle"
            );
            assert_eq!(r.remote.port, port);
            let app = r.app.unwrap();
            assert_eq!(app.bytes_sent, i, "torn record");
            assert_eq!(app.name, url_of(i, kind, long), "torn URL");
        }
        match (recs.len(), i % 3) {
            (2, 1) => linked += 1,
            (2, 0) => inline += 1,
            (1, 2) => single += 1,
            (n, k) => panic!("write {i} (kind {k}) read back as {n} records"),
        }
    });
    let writes = hammer.stop();
    eprintln!("{writes} writes; read {inline} inline bundles, {linked} linked, {single} single");
    assert!(
        inline > 0 && linked > 0 && single > 0,
        "every kind of write must be seen: {inline} inline, {linked} linked, {single} single"
    );
}

#[test]
fn a_bundle_replaced_by_a_smaller_one_leaves_no_member_behind() {
    let t = TempSeg::new("ftp-shrink");
    let seg = Segment::open_or_create(
        t.path(),
        Layout {
            regions: 1,
            slots_per_region: 1,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        },
    )
    .unwrap();
    let region = seg.region(0).unwrap();
    let mut w = region.writer();
    let (c, d) = (url_of(1, "control", true), url_of(1, "data", true));
    w.write(SlotId(0), &[member(1, 21, &c), member(1, 40_000, &d)])
        .unwrap();
    assert_eq!(
        region
            .read(SlotId(0))
            .unwrap()
            .unwrap()
            .bundle()
            .records
            .len(),
        2
    );
    // The transfer ended: the box writes the control connection alone.
    let c2 = url_of(2, "control", false);
    w.write(SlotId(0), &[member(2, 21, &c2)]).unwrap();
    let v = region.read(SlotId(0)).unwrap().unwrap();
    assert_eq!(v.bundle().records.len(), 1);
    assert_eq!(v.bundle().records[0].view().app.unwrap().name, c2);
}
