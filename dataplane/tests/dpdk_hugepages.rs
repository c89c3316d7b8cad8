//! The DPDK port on real 2 MiB hugepages: the test reserves pages, mounts
//! hugetlbfs, runs a port on `net_af_packet` in a namespace lab, sees the
//! client's ARP request and gets its reply learned, and checks the EAL
//! took its memory from the hugepages. Everything it reserves or mounts is
//! given back by a guard, also when it fails. Needs root; fails loudly
//! otherwise.
#![cfg(feature = "dpdk")]

mod common;

use baton_dataplane::port::dpdk::{DpdkOptions, DpdkPort};
use baton_dataplane::port::{Port, TxBatch};
use baton_dataplane::wire::ethernet::MacAddr;
use common::wire::{arp_reply, arp_request_for, CLIENT, SERVICE};
use std::process::Command;
use std::time::{Duration, Instant};

const PAGES: u32 = 256;

/// Reserved pages and a hugetlbfs mount, given back on drop.
struct Hugepages {
    dir: String,
    /// Restored after the unmount (fields drop after `drop`).
    _reserved: common::NrHugepages,
}

impl Hugepages {
    fn reserve(dir: &str) -> Hugepages {
        let g = Hugepages {
            dir: dir.to_string(),
            _reserved: common::NrHugepages::set(PAGES),
        };
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "hugetlbfs", "nodev", dir])
            .status()
            .unwrap();
        assert!(st.success(), "mount hugetlbfs on {dir}");
        g
    }
}

impl Drop for Hugepages {
    fn drop(&mut self) {
        // Lazy: the EAL of this process still maps its pages until exit.
        let _ = Command::new("umount").args(["-l", &self.dir]).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn free_pages() -> u64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap();
    m.lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn port_on_2mib_hugepages_receives_and_sends() {
    let lab = common::Lab::new("dh");
    let dir = format!("/tmp/bthuge{}", std::process::id());
    let _pages = Hugepages::reserve(&dir);
    assert_eq!(free_pages(), u64::from(PAGES), "pages reserved");
    let client_ns = lab.client.name.clone();
    let (seen, box_mac, used) = lab.boxns.run(move || {
        let mut opts = DpdkOptions::af_packet("front0", 1);
        opts.hugepages = true;
        opts.memory_mb = 128;
        opts.mbufs = 4095;
        opts.file_prefix = format!("btdh{}", std::process::id());
        let mut ports = DpdkPort::open_with(&opts).expect("EAL on hugepages");
        let used = u64::from(PAGES) - free_pages();
        let box_mac = ports[0].mac();
        let mut ping = common::spawn_quiet_in(
            &client_ns,
            &["ping", "-c", "2", "-W", "1", &SERVICE.to_string()],
        );
        let mut seen: Option<MacAddr> = None;
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.is_none() && Instant::now() < deadline {
            ports[0].wait(Some(Duration::from_millis(1)), None).unwrap();
            ports[0]
                .rx_burst(32, |frame, _| {
                    if let Some(a) = arp_request_for(frame, SERVICE) {
                        seen = Some(a.sender_mac);
                    }
                })
                .unwrap();
        }
        if let Some(client_mac) = seen {
            let mut tx = TxBatch::new();
            tx.push(&arp_reply(box_mac, SERVICE, client_mac, CLIENT));
            assert_eq!(ports[0].tx_burst(&mut tx).unwrap(), 1);
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = ping.kill();
        let _ = ping.wait();
        (seen, box_mac, used)
    });
    assert!(
        used >= 64,
        "the EAL's 128 MiB came from 2 MiB hugepages ({used} in use)"
    );
    assert!(seen.is_some(), "the client's ARP request arrived");
    let neigh = lab.client.neigh(&SERVICE.to_string());
    assert!(
        neigh.contains(&box_mac.to_string().to_lowercase()),
        "the client learned our ARP reply: {neigh:?}"
    );
}
