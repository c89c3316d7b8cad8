//! Asking for hugepages where none are reserved fails with an error that
//! says what to do, not a crash. Reserves nothing; needs root (the EAL
//! reads hugepage state as root); fails loudly otherwise.
#![cfg(feature = "dpdk")]

mod common;

use baton_dataplane::port::dpdk::{DpdkOptions, DpdkPort};

#[test]
fn hugepages_without_reserved_pages_say_how_to_get_them() {
    common::require_root();
    let reserved = std::fs::read_to_string("/proc/sys/vm/nr_hugepages").unwrap();
    assert_eq!(
        reserved.trim(),
        "0",
        "this test needs a machine with no 2 MiB hugepages reserved"
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
