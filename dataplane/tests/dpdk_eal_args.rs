//! An EAL that cannot start reports the EAL's own reason and keeps
//! reporting it: bad arguments fail with EINVAL and the EAL's log line,
//! and a later init in the same process returns the same error instead of
//! calling `rte_eal_init` again. Needs root; fails loudly otherwise.
#![cfg(feature = "dpdk")]

mod common;

use baton_dataplane::port::dpdk::{DpdkEal, DpdkError};

#[test]
fn bad_eal_arguments_fail_with_the_eal_reason_and_stay_failed() {
    common::require_root();
    let args: Vec<String> = [
        "-l",
        "0",
        "--no-huge",
        "--no-shconf",
        "--no-pci",
        "--bogus-option",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let first = DpdkEal::init(&args).map(|e| e.args().len());
    match &first {
        Err(e @ DpdkError::EalInit { errno, log, .. }) => {
            assert_eq!(*errno, libc::EINVAL);
            assert!(
                log.contains("Invalid 'command line' arguments"),
                "EAL log kept: {log}"
            );
            assert!(
                e.to_string()
                    .starts_with("EAL init failed: invalid EAL arguments"),
                "{e}"
            );
        }
        other => panic!("bad arguments must fail EAL init, got {other:?}"),
    }
    let good: Vec<String> = ["-l", "0", "--no-huge", "--no-shconf", "--no-pci"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let second = DpdkEal::init(&good).map(|e| e.args().len());
    assert_eq!(
        second, first,
        "a failed EAL stays failed with the same error"
    );
    assert!(DpdkEal::running().is_none());
}
