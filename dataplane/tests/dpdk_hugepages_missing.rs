//! Asking for hugepages where none are reserved fails with an error that
//! says what to do, not a crash. Takes the 2 MiB reservation to 0 for
//! the test and restores it; needs root; fails loudly otherwise.
#![cfg(feature = "dpdk")]

mod common;

use baton_dataplane::port::dpdk::{DpdkOptions, DpdkPort};

#[test]
fn hugepages_without_reserved_pages_say_how_to_get_them() {
    common::require_root();
    // No 2 MiB pages for the length of the test (given back on drop, also
    // on failure); a machine with 1 GiB pages reserved cannot run it.
    let _none = common::NrHugepages::set(0);
    let gig = "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages";
    let gig = std::fs::read_to_string(gig).unwrap_or_else(|_| "0".into());
    assert_eq!(
        gig.trim(),
        "0",
        "this test needs no 1 GiB hugepages reserved"
    );
    let ns = common::Netns::new(&format!("btdkh{}", std::process::id()));
    let prefix = format!("btdkh{}", std::process::id());
    let r = ns.run(move || {
        let mut opts = DpdkOptions::af_packet("lo", 1);
        opts.hugepages = true;
        opts.file_prefix = prefix;
        DpdkPort::open_with(&opts).map(|p| p.len())
    });
    let e = r
        .expect_err("hugepages without pages must fail")
        .to_string();
    assert!(e.starts_with("EAL init failed: no hugepages"), "{e}");
    assert!(
        e.contains("nr_hugepages") && e.contains("--no-huge"),
        "says what to do: {e}"
    );
}
