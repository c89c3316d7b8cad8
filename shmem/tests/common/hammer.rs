//! The scaffold of the seqlock tests: a fresh one-region segment and a
//! writer thread rewriting its slots while the test reads them. What is
//! written and what a read must show are the test's; this only runs the
//! two sides and stops the writer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use baton_shmem::{Layout, Region, Segment, SlotWriter};

use super::TempSeg;

/// A writer thread hammering one region; stopped by [`Hammer::stop`] (or
/// on drop, so a failed assertion does not leave it spinning).
pub struct Hammer {
    pub region: Region,
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<u64>>,
    _seg: Segment,
    _file: TempSeg,
}

impl Hammer {
    /// A segment of one region of `slots` slots, and a thread calling
    /// `write(writer, i)` for i = 0, 1, 2, … until stopped.
    pub fn start(
        tag: &str,
        slots: u32,
        mut write: impl FnMut(&mut SlotWriter, u64) + Send + 'static,
    ) -> Hammer {
        let file = TempSeg::new(tag);
        let seg = Segment::open_or_create(
            file.path(),
            Layout {
                regions: 1,
                slots_per_region: slots,
                slot_size: baton_shmem::SLOT_SIZE as u32,
            },
        )
        .unwrap();
        let region = seg.region(0).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (region, stop) = (region.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut w = region.writer();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    write(&mut w, i);
                    i += 1;
                }
                i
            })
        };
        Hammer {
            region,
            stop,
            writer: Some(writer),
            _seg: seg,
            _file: file,
        }
    }

    /// Calls `read` with the region, over and over, for `how_long`.
    pub fn read_for(&self, how_long: Duration, mut read: impl FnMut(&Region)) {
        let deadline = Instant::now() + how_long;
        while Instant::now() < deadline {
            read(&self.region);
        }
    }

    /// Stops the writer; returns how many writes it made.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let writer = self.writer.take().expect("the writer runs until stop");
        writer.join().expect("the writer thread panicked")
    }
}

impl Drop for Hammer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}
