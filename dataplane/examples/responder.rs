//! Runs the dataplane with the tiny HTTP responder on an interface, for
//! manual checks and measurements in a lab namespace:
//!
//! ```text
//! ip netns exec BOXNS target/release/examples/responder front0 198.18.0.11 [workers] [busy|adaptive] [v3|v2]
//! ```
//!
//! Serves `1K.bin`, `1M.bin`, `50M.bin` and `100M.bin` (deterministic
//! pseudo-random bytes), prints worker counters every 5 s, stops on EOF of
//! standard input, or after `BATON_RESPONDER_SECS` seconds when that is set.

// The lab's objects, the same the dataplane's lab tests download.
#[path = "../tests/common/objects.rs"]
mod objects;

use baton_dataplane::port::afpacket::{AfPacketConfig, RxRing};
use baton_dataplane::responder::Responder;
use baton_dataplane::{start, DataplaneOptions, PollMode, PortConfig};
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: responder IFACE SERVICE_IP [WORKERS] [busy|adaptive] [v3|v2]");
        std::process::exit(2);
    }
    let ip: IpAddr = args[2].parse()?;
    let mut port = AfPacketConfig::new(&args[1]);
    let mut opts = DataplaneOptions::new(vec![ip]);
    opts.workers = args.get(3).map(|w| w.parse()).transpose()?.unwrap_or(1);
    if args.get(4).map(String::as_str) == Some("busy") {
        opts.poll_mode = PollMode::Busy;
    }
    if args.get(5).map(String::as_str) == Some("v2") {
        port.ring = RxRing::V2;
    }
    let objs = objects::objects(objects::LAB_OBJECTS);
    let handle = start(PortConfig::AfPacket(port), opts, move |_| {
        Responder::new(objs.clone())
    })?;
    eprintln!(
        "serving on {} ({}) with {} workers",
        args[1],
        handle.mac(),
        handle.n_workers()
    );
    let limit = std::env::var("BATON_RESPONDER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs);
    let (eof_tx, eof_rx) = crossbeam_channel::bounded::<()>(1);
    if limit.is_none() {
        std::thread::spawn(move || {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
            let _ = eof_tx.send(());
        });
    }
    let t0 = Instant::now();
    loop {
        if eof_rx.recv_timeout(Duration::from_secs(5)).is_ok()
            || limit.is_some_and(|l| t0.elapsed() >= l)
        {
            break;
        }
        for s in handle.stats() {
            let nonzero: Vec<String> = s
                .counters
                .named()
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            eprintln!(
                "worker {}: conns={} {}",
                s.worker,
                s.connections,
                nonzero.join(" ")
            );
        }
    }
    handle.shutdown();
    handle.join()?;
    Ok(())
}
