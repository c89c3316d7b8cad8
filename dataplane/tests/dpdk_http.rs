//! The whole dataplane on the DPDK port: two workers, each on its own
//! queue pair of `net_af_packet0` (qpairs=2), serve curl from a client
//! namespace through the userspace TCP stack. Every connection must reach
//! the worker that owns it although the PMD's kernel fanout hashes flows
//! over the queues with its own key, so this is the steering at work with
//! real TCP. Needs root; fails loudly otherwise.
#![cfg(feature = "dpdk")]

mod common;

use baton_dataplane::port::dpdk::{DpdkOptions, DpdkPort};
use baton_dataplane::port::Port;
use baton_dataplane::responder::Responder;
use baton_dataplane::worker::{Worker, WorkerConfig};
use common::objects::objects;
use common::sha256_hex;
use common::wire::SERVICE;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Worker results: (requests answered, connections accepted, frames
/// steered out, frames steered in).
type WorkerResult = (u64, u64, u64, u64);

#[test]
fn two_dpdk_workers_serve_curl_through_the_userspace_stack() {
    let lab = common::Lab::new("dw");
    // net_af_packet does not say when a local sender left the TCP checksum
    // to offload (no TP_STATUS_CSUMNOTREADY in its mbufs): the client must
    // compute it, as the lab does for its client.
    let o = lab.client.exec(&["ethtool", "-K", "eth0", "tx", "off"]);
    assert!(o.status.success(), "ethtool: {o:?}");

    let objs = objects(&[("1K.bin", 1024, 1), ("20M.bin", 20 << 20, 2)]);

    let ports = lab.boxns.run(|| {
        let mut opts = DpdkOptions::af_packet("front0", 2);
        opts.file_prefix = format!("btdw{}", std::process::id());
        let ports = DpdkPort::open_with(&opts).expect("EAL and net_af_packet0 on front0");
        // Tests own the ports on their threads: hand them out.
        ports.into_iter().map(Some).collect::<Vec<_>>()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (i, port) in ports.into_iter().enumerate() {
        let port = port.unwrap();
        let objs = objs.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || -> WorkerResult {
            let mut cfg = WorkerConfig::for_test(vec![IpAddr::V4(SERVICE)]);
            cfg.id = i;
            cfg.n_workers = 2;
            let mut w = Worker::new(port, Responder::new(objs), cfg, Instant::now());
            while !stop.load(Ordering::Relaxed) {
                let worked = w.poll(Instant::now()).expect("worker poll");
                if !worked {
                    w.port_mut()
                        .wait(Some(Duration::from_millis(1)), None)
                        .unwrap();
                }
            }
            let s = w.port_mut().stats();
            (
                w.app().requests,
                w.counters().tcp_accepted,
                s.steered_out,
                s.steered_in,
            )
        }));
    }

    let dir = std::env::temp_dir().join(format!("bt-dpdk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // 16 small downloads, each on a new connection from a new source
    // port: the flows spread over both workers.
    for k in 0..16 {
        let got = lab
            .client
            .curl("1K.bin", &dir.join(format!("small{k}")), 30);
        assert_eq!(got, objs["1K.bin"].as_ref());
    }
    let started = Instant::now();
    let got = lab.client.curl("20M.bin", &dir.join("20M.bin"), 120);
    let took = started.elapsed();
    assert_eq!(
        sha256_hex(&got),
        sha256_hex(&objs["20M.bin"]),
        "20M.bin arrives intact"
    );
    eprintln!(
        "20M.bin over DPDK net_af_packet: {:?}, {:.0} Mbit/s (debug build)",
        took,
        (20u64 << 20) as f64 * 8.0 / took.as_secs_f64() / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);

    stop.store(true, Ordering::Relaxed);
    let results: Vec<WorkerResult> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    eprintln!("per worker (requests, accepted, steered out, steered in): {results:?}");
    let requests: u64 = results.iter().map(|r| r.0).sum();
    assert_eq!(requests, 17, "every request answered once: {results:?}");
    assert!(
        results.iter().all(|r| r.1 > 0),
        "both workers own connections: {results:?}"
    );
    let out: u64 = results.iter().map(|r| r.2).sum();
    let inn: u64 = results.iter().map(|r| r.3).sum();
    assert!(
        out > 0,
        "some frames landed on the other queue and were steered"
    );
    assert_eq!(out, inn, "every steered frame reached its owner");
}
