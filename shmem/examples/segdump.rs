//! Prints what a checkpoint segment holds: each box's table entry and its
//! checkpointed connections (or the error of each corrupt slot).
//!
//! `cargo run -p baton-shmem --example segdump -- /dev/shm/baton.seg [-v]`

use std::path::PathBuf;
use std::process::ExitCode;

use baton_shmem::Segment;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: segdump SEGMENT [-v]");
        return ExitCode::from(2);
    };
    let verbose = args.any(|a| a == "-v");
    let seg = match Segment::open_existing(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let l = seg.layout();
    println!(
        "{}: {} regions x {} slots",
        path.display(),
        l.regions,
        l.slots_per_region
    );
    for id in 0..l.regions {
        match seg.box_info(id) {
            Ok(i) => println!(
                "box {id}: {:?} epoch {} heartbeat #{} at {} ms, {} connections, {} checkpoints, ips {:?}",
                i.state, i.epoch, i.heartbeat, i.heartbeat_ms, i.connections, i.checkpoints, i.service_ips
            ),
            Err(e) => println!("box {id}: {e}"),
        }
        let Ok(region) = seg.region(id) else { continue };
        let (mut ok, mut bad) = (0u64, 0u64);
        for item in region.records() {
            match item {
                Ok(v) => {
                    ok += 1;
                    if verbose {
                        for r in v.bundle().records.iter() {
                            let r = r.view();
                            println!(
                                "  slot {:>7} {} <- {} {:?} {}",
                                v.slot().0,
                                r.local.socket_addr(),
                                r.remote.socket_addr(),
                                r.transport,
                                r.app.map(|a| a.name).unwrap_or("-")
                            );
                        }
                    }
                }
                Err(e) => {
                    bad += 1;
                    println!("  {e}");
                }
            }
        }
        println!("  {ok} bundles, {bad} unreadable slots");
    }
    ExitCode::SUCCESS
}
