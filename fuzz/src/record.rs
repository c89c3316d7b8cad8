//! Target `record`: checkpoint slot validation on the restore side
//! (bytecheck and the record rules), then what a survivor reads out of a
//! valid record: its addresses, TCP block and application block.
//!
//! Kept thin on purpose: it reaches the slot only through
//! `baton_shmem::fuzzing::publish_and_read` and the records' public views,
//! so a change of the record layout only changes the seeds.

use baton_shmem::{Layout, Region, Segment};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The region whose slot the input lands in (records must name it as
/// their owner to pass).
pub const REGION: u16 = 1;

/// A two-region segment for the whole process, its file unlinked at once
/// (the mapping stays), so nothing is left behind.
pub fn scratch_segment(name: &str, layout: Layout) -> Segment {
    let path = std::env::temp_dir().join(format!("baton-fuzz-{name}-{}.seg", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let seg = match Segment::open_or_create(&path, layout) {
        Ok(s) => s,
        Err(e) => panic!("cannot create the scratch segment {}: {e}", path.display()),
    };
    let _ = std::fs::remove_file(&path);
    seg
}

fn region() -> &'static Region {
    static REGION_CELL: OnceLock<Region> = OnceLock::new();
    REGION_CELL.get_or_init(|| {
        let seg = scratch_segment(
            "record",
            Layout {
                regions: 2,
                slots_per_region: 1,
                slot_size: baton_shmem::SLOT_SIZE as u32,
            },
        );
        match seg.region(REGION) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    })
}

/// `data` is the slot's payload.
pub fn run(data: &[u8]) {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(2, Ordering::Relaxed) + 2;
    let Ok(Some(slot)) = baton_shmem::fuzzing::publish_and_read(region(), 0, seq, data) else {
        return;
    };
    for r in slot.bundle().records.iter() {
        let rec = r.view();
        let _ = (rec.local.socket_addr(), rec.remote.socket_addr(), rec.tcp);
        if let Some(app) = &rec.app {
            // What the survivor copies out to rebuild the response.
            let _ = (app.name.to_owned(), app.etag.map(str::to_owned), app.upload);
        }
    }
}
