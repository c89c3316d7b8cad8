//! `baton lab up --no-offload` (`dataplane.tx_offload = false`): a raw-socket
//! TCP tester in the client namespace, which reads whole frames as a
//! conformance tester or a checksum-verifying capture does, completes a
//! handshake and a download with an AF_PACKET box, and every IPv4 and TCP
//! checksum of every frame the box sent it is correct (issue 13). With
//! offload on, the same tester sees the SYN-ACK's TCP checksum left
//! unfinished: the switch is what makes the difference, and the tester can
//! tell a bad checksum from a good one.
mod common;

use std::collections::HashMap;
use std::fs;

use baton_lab::names::{box_mac, box_service_addr};
use common::*;

/// The tester (`common/raw_tcp.py`), written into the lab's run folder so
/// the client namespace can run it.
const RAW_TCP: &str = include_str!("common/raw_tcp.py");

/// An address on the front LAN that the client namespace's kernel does not
/// own: the kernel would reset a SYN-ACK to its own address, since no
/// socket of its opened that connection. The tester answers ARP for it.
const TESTER_ADDR: &str = "198.18.0.201";

/// The tester's report: `key=value` lines.
struct Report(HashMap<String, String>);

impl Report {
    fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", String::as_str)
    }

    fn number(&self, key: &str) -> u64 {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key} in {self}"))
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<_> = self.0.iter().collect();
        keys.sort();
        for (k, v) in keys {
            writeln!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Runs the tester against box 1 in `mode` and returns its report.
fn raw_tcp(g: &LabGuard, mode: &str, path: &str) -> Report {
    let script = g.file("raw_tcp.py");
    fs::write(&script, RAW_TCP).expect("write raw_tcp.py");
    let script = script.display().to_string();
    let dst = box_service_addr(1).to_string();
    let mac = box_mac(1);
    let o = g.exec(
        "client",
        &[
            "python3",
            &script,
            "eth0",
            TESTER_ADDR,
            &dst,
            &mac,
            mode,
            path,
        ],
    );
    assert!(
        o.status.success(),
        "the raw-socket tester failed (python3 is needed in the client namespace): {}",
        text(&o)
    );
    Report(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn lab_no_offload_box_sends_frames_a_raw_socket_tester_can_verify() {
    let g = LabGuard::up("btof", &["--boxes", "1", "--no-offload"]);
    let config = fs::read_to_string(g.file("box1.toml")).expect("box1.toml");
    assert!(config.contains("tx_offload = false"), "{config}");
    let r = raw_tcp(&g, "fetch", "/1M.bin");
    eprintln!("{r}");
    assert_eq!(r.get("handshake"), "true", "no handshake:\n{r}");
    assert_eq!(r.get("status"), "HTTP/1.1 200 OK", "\n{r}");
    assert_eq!(r.number("body_len"), 1 << 20, "\n{r}");
    assert_eq!(r.get("body_sha256"), g.listed_sha("1M.bin"), "\n{r}");
    assert_eq!(
        r.get("closed"),
        "true",
        "the box did not close cleanly:\n{r}"
    );
    // SYN-ACK, ~720 data segments, FIN, ACK of our FIN: every one checked.
    let frames = r.number("frames");
    assert!(frames > 700, "the tester saw only {frames} frames:\n{r}");
    assert_eq!(
        r.number("bad"),
        0,
        "frames from the box with a wrong IPv4 or TCP checksum:\n{r}"
    );
}

#[test]
fn lab_with_offload_on_the_syn_ack_reaches_a_raw_reader_with_its_checksum_unfinished() {
    // On a veth nothing finishes a CHECKSUM_PARTIAL frame: the box's
    // front0 announces TX checksumming, so the kernel hands the frame on
    // as it is and a raw reader behind the bridge gets the pseudo-header
    // sum only. This is the failure `--no-offload` exists for, and the
    // proof that the tester above can fail.
    let g = LabGuard::up("btoo", &["--boxes", "1"]);
    let config = fs::read_to_string(g.file("box1.toml")).expect("box1.toml");
    assert!(config.contains("tx_offload = true"), "{config}");
    let r = raw_tcp(&g, "syn-only", "/");
    eprintln!("{r}");
    assert_eq!(
        r.get("synack_ip_ok"),
        "true",
        "no SYN-ACK, or a bad IPv4 header:\n{r}"
    );
    assert_eq!(
        r.get("synack_tcp_ok"),
        "false",
        "with TX offload on, the SYN-ACK's TCP checksum was complete:\n{r}"
    );
}
