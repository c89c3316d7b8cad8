//! A DPDK device that cannot start gives a clear error, never a panic or
//! an abort: a vdev on an interface that does not exist (given to the EAL
//! or hot-plugged later), and a device name nobody configured. One EAL per
//! process, so the cases run in order in one test. Needs root; fails loudly
//! otherwise.
#![cfg(feature = "dpdk")]

mod common;

use baton_dataplane::port::dpdk::{DpdkEal, DpdkError, DpdkOptions, DpdkPort};

#[test]
fn vdev_on_a_missing_interface_is_a_clear_error_not_an_abort() {
    common::require_root();
    let ns = common::Netns::new(&format!("btdke{}", std::process::id()));
    let prefix = format!("btdke{}", std::process::id());
    let (first, again, hotplug, unknown, fewer, more) = ns.run(move || {
        let mut opts = DpdkOptions::af_packet("nosuch0", 1);
        opts.file_prefix = prefix;
        let first = DpdkPort::open_with(&opts).map(|p| p.len());
        // The EAL itself is up (a bad vdev does not stop the bus); the
        // second attempt must fail the same clear way, not crash.
        let again = DpdkPort::open_with(&opts).map(|p| p.len());
        let eal = DpdkEal::running().expect("the EAL runs despite the bad vdev");
        let hotplug = eal.hotplug_vdev("net_af_packet7,iface=nosuch7");
        let unknown = DpdkPort::open_group(&eal, "net_af_packet9", 1, 1023).map(|p| p.len());
        // A good vdev with two queue pairs: one worker would leave the
        // queue the kernel fills for the other unread, three have no queue.
        eal.hotplug_vdev("net_af_packet3,iface=lo,qpairs=2")
            .expect("net_af_packet on lo");
        let fewer = DpdkPort::open_group(&eal, "net_af_packet3", 1, 1023).map(|p| p.len());
        let more = DpdkPort::open_group(&eal, "net_af_packet3", 3, 1023).map(|p| p.len());
        (first, again, hotplug, unknown, fewer, more)
    });

    for r in [&first, &again] {
        match r {
            Err(e @ DpdkError::Vdev { spec, .. }) => {
                assert_eq!(spec, "net_af_packet0,iface=nosuch0,qpairs=1");
                let msg = e.to_string();
                assert!(
                    msg.contains("nosuch0") && msg.contains("failed to start"),
                    "{msg}"
                );
                assert!(
                    msg.contains("No such device"),
                    "the driver's reason is in the error: {msg}"
                );
            }
            other => panic!("a vdev on a missing interface must be a Vdev error, got {other:?}"),
        }
    }
    match &hotplug {
        Err(DpdkError::Vdev { spec, log, .. }) => {
            assert_eq!(spec, "net_af_packet7,iface=nosuch7");
            assert!(log.contains("No such device"), "driver log kept: {log}");
        }
        other => panic!("hot-plugging a bad vdev must fail with Vdev, got {other:?}"),
    }
    match &unknown {
        Err(e @ DpdkError::NoDevice { name, .. }) => {
            assert_eq!(name, "net_af_packet9");
            assert!(e.to_string().contains("no --vdev of that name"), "{e}");
        }
        other => panic!("an unknown device must be NoDevice, got {other:?}"),
    }
    match &fewer {
        Err(
            e @ DpdkError::QueuesUnpolled {
                qpairs: 2,
                asked: 1,
                ..
            },
        ) => {
            assert!(e.to_string().contains("set qpairs=1"), "{e}")
        }
        other => panic!("fewer workers than qpairs must be refused, got {other:?}"),
    }
    match &more {
        Err(
            e @ DpdkError::Queues {
                max: 2, asked: 3, ..
            },
        ) => {
            assert!(e.to_string().contains("qpairs=3"), "{e}")
        }
        other => panic!("more workers than qpairs must be refused, got {other:?}"),
    }
}
