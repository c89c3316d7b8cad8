//! Seqlock behaviour under contention: writers and readers hammering the
//! same slots never let a torn record through, and bundles are seen whole.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_shmem::{ArchivedConnRecord, ConnRecord, Layout, ReadError, Segment, SlotId};
use common::{http_record, Hammer, TempSeg};

const SLOTS: u32 = 8;

/// FNV-1a over the fields a torn copy would mix up.
fn checksum(snd_nxt: u32, bytes_sent: u64, port: u16, name: &str, etag: Option<&str>) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= x as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    eat(&snd_nxt.to_le_bytes());
    eat(&bytes_sent.to_le_bytes());
    eat(&port.to_le_bytes());
    eat(name.as_bytes());
    eat(etag.unwrap_or("-").as_bytes());
    h
}

fn sealed<'a>(i: u64, name: &'a str, etag: Option<&'a str>) -> ConnRecord<'a> {
    let mut r = http_record(0, (i % 50_000) as u16, name, etag);
    if let Some(t) = r.tcp.as_mut() {
        t.snd_nxt = i as u32;
    }
    if let Some(a) = r.app.as_mut() {
        a.bytes_sent = i * 1460;
        a.request_count = checksum(i as u32, i * 1460, r.remote.port, name, etag);
    }
    r
}

fn verify(r: &ArchivedConnRecord<'_>) -> bool {
    let v = r.view();
    let (Some(t), Some(a)) = (v.tcp, v.app) else {
        return false;
    };
    a.request_count == checksum(t.snd_nxt, a.bytes_sent, v.remote.port, a.name, a.etag)
}

#[test]
fn hammering_writers_and_readers_never_accept_a_torn_record() {
    let t = TempSeg::new("hammer");
    let seg = Segment::open_or_create(
        t.path(),
        Layout {
            regions: 1,
            slots_per_region: SLOTS,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        },
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let region = seg.region(0).unwrap();
    let writer = {
        let (region, stop, writes) = (region.clone(), stop.clone(), writes.clone());
        std::thread::spawn(move || {
            let mut w = region.writer();
            let mut i = 0u64;
            let mut name = String::new();
            let mut etag = String::new();
            while !stop.load(Ordering::Relaxed) {
                // Lengths vary so a torn copy would mix layouts, not just values.
                name.clear();
                name.push_str("/objects/");
                for _ in 0..(i % 23) {
                    name.push((b'a' + (i % 26) as u8) as char);
                }
                etag.clear();
                etag.push_str(&format!("\"{i:x}\""));
                let e = if i.is_multiple_of(3) {
                    None
                } else {
                    Some(etag.as_str())
                };
                w.write(SlotId((i % SLOTS as u64) as u32), &[sealed(i, &name, e)])
                    .unwrap();
                i += 1;
            }
            writes.store(i, Ordering::Relaxed);
        })
    };
    let reader = {
        let (region, stop) = (region.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut good, mut busy) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                for s in 0..SLOTS {
                    match region.read(SlotId(s)) {
                        Ok(Some(v)) => {
                            assert!(
                                verify(&v.bundle().records[0]),
                                "torn record accepted: {v:?}"
                            );
                            good += 1;
                        }
                        Ok(None) => {}
                        Err(ReadError::Busy) => busy += 1,
                        Err(e) => panic!("slot {s}: {e}"),
                    }
                }
            }
            (good, busy)
        })
    };
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let (good, busy) = reader.join().unwrap();
    let writes = writes.load(Ordering::Relaxed);
    eprintln!(
        "{writes} writes, {good} validated reads, {busy} busy in {:?}",
        start.elapsed()
    );
    assert!(writes > 1000, "writer made too little progress: {writes}");
    assert!(good > 1000, "reader validated too little: {good}");
}

#[test]
fn a_bundle_is_seen_whole_or_not_at_all() {
    // FTP control + data (+ two more) as one bundle, alternating with a
    // two-record bundle in the same slot: a reader must see exactly one of
    // them, never records of both.
    let hammer = Hammer::start("bundle", 1, |w, i| {
        // Even numbers, so a two-bundle's tag (i + 1) is never a four's.
        let i = 2 * i;
        // Only the control connection carries an application block; the
        // others are bare TCP records (see the format doc for what fits a
        // slot).
        let mut bare = sealed(i, "", None);
        bare.app = None;
        let four = [sealed(i, "/ftp/control", None), bare, bare, bare];
        let two = [
            sealed(i + 1, "/pair/tcp", Some("\"t\"")),
            sealed(i + 1, "/pair/udp", None),
        ];
        if i.is_multiple_of(4) {
            w.write(SlotId(0), &four).unwrap();
        } else {
            w.write(SlotId(0), &two).unwrap();
        }
    });
    let (mut fours, mut twos) = (0u64, 0u64);
    hammer.read_for(Duration::from_millis(1500), |region| {
        let v = match region.read(SlotId(0)) {
            Ok(Some(v)) => v,
            Ok(None) | Err(ReadError::Busy) => return,
            Err(e) => panic!("{e}"),
        };
        let recs = &v.bundle().records;
        let first = recs[0].view();
        let tag = first.tcp.unwrap().snd_nxt;
        for r in recs.iter() {
            assert!(
                r.app.as_ref().is_none() || verify(r),
                "torn record accepted"
            );
            assert_eq!(
                r.view().tcp.unwrap().snd_nxt,
                tag,
                "records of two bundles mixed"
            );
        }
        match recs.len() {
            4 => {
                assert!(first.app.unwrap().name.starts_with("/ftp/"));
                fours += 1
            }
            2 => {
                assert!(first.app.unwrap().name.starts_with("/pair/"));
                twos += 1
            }
            n => panic!("bundle of {n} records"),
        }
    });
    hammer.stop();
    assert!(
        fours > 0 && twos > 0,
        "saw {fours} four-bundles and {twos} two-bundles"
    );
}

#[test]
fn records_in_the_overflow_area_are_never_seen_torn_while_rewritten() {
    // URLs from a few bytes to 8 KiB in the same slots: the slot switches
    // between an inline bundle and a link, and linked entries are rewritten
    // in place; a reader must see a whole record of one write, or retry.
    let mut name = String::new();
    let hammer = Hammer::start("hammer-ovf", SLOTS, move |w, i| {
        name.clear();
        name.push_str("/v.bin?sig=");
        let len = (i * 977) % baton_shmem::MAX_NAME_LEN as u64;
        while (name.len() as u64) < len {
            name.push((b'a' + (i % 26) as u8) as char);
        }
        w.write(
            SlotId((i % SLOTS as u64) as u32),
            &[sealed(i, &name, Some("\"v\""))],
        )
        .unwrap();
    });
    let (mut long, mut short, mut retried) = (0u64, 0u64, 0u64);
    hammer.read_for(Duration::from_millis(1500), |region| {
        for s in 0..SLOTS {
            match region.read(SlotId(s)) {
                Ok(Some(v)) => {
                    let r = &v.bundle().records[0];
                    assert!(verify(r), "torn record accepted");
                    if v.bytes().len() > baton_shmem::SLOT_PAYLOAD {
                        long += 1;
                    } else {
                        short += 1;
                    }
                }
                Ok(None) => {}
                Err(ReadError::Busy | ReadError::Overflow(_)) => retried += 1,
                Err(e) => panic!("slot {s}: {e}"),
            }
        }
    });
    let writes = hammer.stop();
    eprintln!("{writes} writes; read {long} long, {short} short, {retried} gave up");
    assert!(long > 100 && short > 10, "{long} long, {short} short reads");
}
