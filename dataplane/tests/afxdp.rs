//! The AF_XDP port against a real kernel: frames both ways across a veth
//! pair (bursts larger than the kernel's per-call TX budget), an ARP
//! exchange with the client kernel's neighbour table, the XDP program on
//! the interface while the port lives and gone after it is dropped or
//! its process is killed, and the errors a user meets. Needs root
//! (namespaces, bpf); fails loudly otherwise.

mod common;

use baton_dataplane::port::afpacket::{AfPacketConfig, AfPacketPort};
use baton_dataplane::port::afxdp::{AfXdpConfig, AfXdpError, AfXdpPort, AttachMode};
use baton_dataplane::port::{Port, PortError, TxBatch};
use baton_dataplane::wire::ethernet::MacAddr;
use common::wire::{arp_reply, arp_request_for, syn, tcp_frame_between, tcp_of, SERVICE};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FRAMES: u16 = 300;

/// What `ip link show front0` says in the box namespace.
fn link_of(lab: &common::Lab) -> String {
    let o = lab.boxns.exec(&["ip", "link", "show", "dev", "front0"]);
    assert!(o.status.success(), "ip link show front0 failed");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// True when an XDP program is attached to front0 (`prog/xdp id N`).
fn has_xdp(lab: &common::Lab) -> bool {
    link_of(lab).contains("prog/xdp")
}

/// Reads frames from `port` until `want` says it saw enough or 5 s pass.
fn drain<P: Port>(port: &mut P, mut take: impl FnMut(&[u8]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut done = false;
    while !done && Instant::now() < deadline {
        port.wait(Some(Duration::from_millis(10)), None).unwrap();
        port.rx_burst(64, |f, _| done |= take(f)).unwrap();
    }
}

#[test]
fn af_xdp_port_exchanges_frames_with_the_kernel_both_ways() {
    let lab = common::Lab::new("xd");
    let client_ns = lab.client.path();
    let (xdp_mode, zero_copy, box_mac, to_box, to_client) = lab.boxns.run(move || {
        let mut port = AfXdpPort::open(&AfXdpConfig::new("front0")).expect("open AF_XDP port");
        let box_mac = port.mac();
        let mode = port.attach_mode();
        let zc = port.zero_copy();
        let mut sender = common::run_in(client_ns, || {
            AfPacketPort::open(&AfPacketConfig::new("eth0")).expect("open client port")
        });
        // Client → box: one burst of FRAMES SYNs.
        let mut tx = TxBatch::new();
        for p in 0..FRAMES {
            tx.push(&tcp_frame_between(
                sender.mac(),
                box_mac,
                &syn(20000 + p, 1, 1000),
            ));
        }
        assert_eq!(sender.tx_burst(&mut tx).unwrap(), usize::from(FRAMES));
        let mut to_box = BTreeSet::new();
        drain(&mut port, |f| {
            if let Some((_, s)) = tcp_of(f) {
                to_box.insert(s.src_port);
            }
            to_box.len() == usize::from(FRAMES)
        });
        // Box → client: one burst of FRAMES, more than the kernel sends
        // per wake-up in copy mode.
        for p in 0..FRAMES {
            tx.push(&tcp_frame_between(
                box_mac,
                sender.mac(),
                &syn(30000 + p, 1, 1000),
            ));
        }
        let accepted = port.tx_burst(&mut tx).unwrap();
        assert_eq!(
            accepted,
            usize::from(FRAMES),
            "the port took the whole burst"
        );
        let mut to_client = BTreeSet::new();
        drain(&mut sender, |f| {
            if let Some((eh, s)) = tcp_of(f) {
                if eh.src == box_mac {
                    to_client.insert(s.src_port);
                }
            }
            to_client.len() == usize::from(FRAMES)
        });
        (mode, zc, box_mac, to_box.len(), to_client.len())
    });
    assert_eq!(
        to_box,
        usize::from(FRAMES),
        "every client frame reached the XSK"
    );
    assert_eq!(
        to_client,
        usize::from(FRAMES),
        "every XSK frame reached the client"
    );
    assert_eq!(xdp_mode, AttachMode::Driver, "veth has a native XDP hook");
    assert!(!zero_copy, "veth has no zero-copy AF_XDP");
    assert_ne!(box_mac, MacAddr::default());
    assert!(
        !has_xdp(&lab),
        "the program left front0 with the port: {}",
        link_of(&lab)
    );
}

#[test]
fn the_client_kernel_learns_our_mac_over_af_xdp() {
    let lab = common::Lab::new("xa");
    let (tx_ready, rx_ready) = std::sync::mpsc::channel();
    let box_path = lab.boxns.path();
    let server = std::thread::spawn(move || {
        common::enter(&box_path);
        let mut port = AfXdpPort::open(&AfXdpConfig::new("front0")).expect("open AF_XDP port");
        tx_ready.send(port.mac()).unwrap();
        let mut tx = TxBatch::new();
        let mut answered = 0;
        let mut echo = 0;
        let deadline = Instant::now() + Duration::from_secs(8);
        while Instant::now() < deadline && echo == 0 {
            port.wait(Some(Duration::from_millis(10)), None).unwrap();
            let mac = port.mac();
            port.rx_burst(64, |f, _| {
                if let Some(a) = arp_request_for(f, SERVICE) {
                    tx.push(&arp_reply(mac, SERVICE, a.sender_mac, a.sender_ip));
                    answered += 1;
                } else if f.len() > 23 && f[12..14] == [8, 0] && f[23] == 1 {
                    // The ICMP echo the client sends once it knows our MAC.
                    echo += 1;
                }
            })
            .unwrap();
            if !tx.is_empty() {
                port.tx_burst(&mut tx).unwrap();
            }
        }
        (answered, echo)
    });
    let mac = rx_ready.recv().expect("the port opened");
    // The kernel asks who has SERVICE, learns it from our reply, then
    // sends the echo request to our MAC (no echo reply: nobody answers).
    let _ = lab
        .client
        .exec(&["ping", "-c", "2", "-W", "1", &SERVICE.to_string()]);
    let (answered, echo) = server.join().expect("server thread");
    assert!(answered >= 1, "the kernel's ARP request reached the XSK");
    assert!(
        echo >= 1,
        "the kernel sent its echo request to the MAC we told it"
    );
    let neigh = lab.client.neigh(&SERVICE.to_string());
    let want = format!("{mac}").to_lowercase();
    assert!(
        neigh.contains(&want),
        "client neighbour entry {neigh:?} names {want}"
    );
}

#[test]
fn a_second_port_on_the_interface_is_told_it_is_busy_and_no_interface_is_named() {
    let lab = common::Lab::new("xb");
    lab.boxns.run(|| {
        let _first = AfXdpPort::open(&AfXdpConfig::new("front0")).expect("open first port");
        let e = AfXdpPort::open(&AfXdpConfig::new("front0")).unwrap_err();
        assert!(
            matches!(e, PortError::AfXdp(AfXdpError::XdpBusy { .. })),
            "second port: {e}"
        );
        assert!(e.to_string().contains("xdp off"), "{e}");
        let e = AfXdpPort::open(&AfXdpConfig::new("bt-nope0")).unwrap_err();
        assert!(matches!(e, PortError::NoInterface(_)), "{e}");
    });
    assert!(!has_xdp(&lab), "no program left behind: {}", link_of(&lab));
}

/// The helper process of the two tests below: opens a port in the
/// namespace it was started in, says so, and waits to be killed; or,
/// without the privileges, reports the error it got.
#[test]
#[ignore = "a helper process, started by the tests below"]
fn helper_holds_an_af_xdp_port() {
    let what = std::env::var("BATON_AFXDP_HELPER").expect("started by a test");
    match AfXdpPort::open(&AfXdpConfig::new("front0")) {
        Ok(_port) if what == "hold" => {
            println!("READY");
            std::thread::sleep(Duration::from_secs(60));
        }
        Ok(_) => panic!("opened without privilege"),
        Err(e) => {
            println!("ERROR {e}");
            assert!(
                matches!(e, PortError::AfXdp(AfXdpError::NoPermission { .. })),
                "{e}"
            );
            println!("NOPERM");
        }
    }
}

fn helper(lab: &common::Lab, what: &str, prefix: &[&str]) -> std::process::Child {
    let exe = std::env::current_exe().expect("test binary path");
    let mut args: Vec<String> = vec!["netns".into(), "exec".into(), lab.boxns.name.clone()];
    args.extend(prefix.iter().map(|s| s.to_string()));
    args.push(exe.to_string_lossy().into_owned());
    for a in [
        "--exact",
        "helper_holds_an_af_xdp_port",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ] {
        args.push(a.into());
    }
    Command::new("ip")
        .args(&args)
        .env("BATON_AFXDP_HELPER", what)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn helper")
}

fn wait_for_line(child: &mut std::process::Child, want: &str) -> Vec<String> {
    let out = child.stdout.take().expect("piped stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line.expect("helper output");
        let done = line.contains(want);
        lines.push(line);
        if done {
            break;
        }
    }
    lines
}

#[test]
fn a_killed_owner_leaves_no_program_on_the_interface() {
    let lab = common::Lab::new("xk");
    let mut child = helper(&lab, "hold", &[]);
    let lines = wait_for_line(&mut child, "READY");
    assert!(
        lines.iter().any(|l| l.contains("READY")),
        "helper never opened its port: {lines:?}"
    );
    assert!(
        has_xdp(&lab),
        "the program is on front0 while its owner lives"
    );
    // SIGKILL: no destructor runs; only the kernel closing the link's
    // descriptor can take the program away. `ip netns exec` execs the
    // test binary, so this pid is the port's owner.
    // SAFETY: signalling the child we started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while has_xdp(&lab) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !has_xdp(&lab),
        "stale program after SIGKILL: {}",
        link_of(&lab)
    );
}

#[test]
fn without_the_privileges_the_error_says_which_are_needed() {
    let lab = common::Lab::new("xp");
    // Root's capabilities come from its bounding set at exec: drop the
    // ones AF_XDP and bpf(2) need.
    let mut child = helper(
        &lab,
        "noperm",
        &[
            "setpriv",
            "--bounding-set=-bpf,-net_admin,-sys_admin,-net_raw,-ipc_lock",
            "--",
        ],
    );
    // Read to the end: a closed pipe would fail the helper's last print.
    let lines = wait_for_line(&mut child, "\u{0}never");
    let status = child.wait().expect("helper exit");
    assert!(
        status.success() && lines.iter().any(|l| l.contains("NOPERM")),
        "helper: {status} {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("permission denied")),
        "{lines:?}"
    );
}
