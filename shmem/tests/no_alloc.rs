//! The checkpoint hot path does not allocate: a worker writes a record on
//! every ~100 KB of a fast connection, and a malloc there would put the
//! allocator's locks and page faults on the data path.

mod common;

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;

use baton_shmem::{Layout, Segment};
use common::{http_record, TempSeg};

struct Counting;

thread_local! {
    // Per thread: the test harness's own threads may allocate meanwhile.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: AllocLayout) -> *mut u8 {
        count();
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: AllocLayout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: AllocLayout, n: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn writing_and_reading_checkpoints_does_not_allocate() {
    let t = TempSeg::new("noalloc");
    let s = Segment::open_or_create(
        t.path(),
        Layout {
            regions: 1,
            slots_per_region: 64,
            slot_size: baton_shmem::SLOT_SIZE as u32,
        },
    )
    .unwrap();
    let region = s.region(0).unwrap();
    let mut slots = region.worker_slots(0, 1).unwrap();
    let mut w = slots.writer();
    let url = String::from("http://198.19.0.2/50M.bin");
    let ids: Vec<_> = (0..32).map(|_| slots.alloc().unwrap()).collect();

    let base = http_record(0, 0, &url, Some("\"etag\""));

    let before = allocs();
    for round in 0..100u16 {
        for (i, id) in ids.iter().enumerate() {
            let mut rec = base;
            rec.remote.port = round * 32 + i as u16;
            if let Some(a) = rec.app.as_mut() {
                a.bytes_sent = round as u64 * 100_000;
            }
            w.write(*id, &[rec]).unwrap();
            let v = region.read(*id).unwrap().unwrap();
            assert_eq!(v.bundle().records[0].remote.port, round * 32 + i as u16);
        }
    }
    let after = allocs();
    assert_eq!(
        after - before,
        0,
        "3,200 writes and validated reads allocated"
    );

    // A record with a CDN-signed URL goes to the overflow area: writing it
    // does not allocate either (reading it back copies into a boxed buffer,
    // which is the takeover's cost, not the worker's).
    let signed = format!("{url}?Signature={}", "s".repeat(2_000));
    let long = http_record(0, 0, &signed, Some("\"etag\""));
    let before = allocs();
    for round in 0..100u16 {
        let mut rec = long;
        rec.remote.port = round;
        w.write(ids[(round % 8) as usize], &[rec]).unwrap();
    }
    assert_eq!(allocs() - before, 0, "100 overflow writes allocated");
    let v = region.read(ids[3]).unwrap().unwrap();
    assert_eq!(v.bundle().records[0].view().app.unwrap().name, signed);
}
