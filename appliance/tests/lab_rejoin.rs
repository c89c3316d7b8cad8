//! A killed box that comes back (`baton lab start`, issue 6 item 7) is a
//! new member: its address is its own again at once. What a user checks,
//! from the lab's client namespace: a new connection to the restarted box
//! connects on its first SYN (no SYN retransmission in a tcpdump of the
//! client's interface), it is served by that box (its own accept counter),
//! and keep-alive requests to it run about as fast as to a box that never
//! died. Before the fix, the survivor that had inherited the address went
//! on announcing it (gratuitous ARP up to 1.4 s after the takeover, so
//! after the restarted box's own announcement) and the client's frames
//! went to a box that no longer answered for it: SYNs were retransmitted
//! after 1 s and 3 s (docs/BENCHMARKS.md, Open findings).
mod common;

use std::thread::sleep;
use std::time::Duration;

use common::*;

/// A dataplane counter of box `n` from its admin API (asked from box 3,
/// on the back LAN).
fn box_counter(g: &LabGuard, n: u8, name: &str) -> u64 {
    let config = g.file(&format!("box{n}.toml")).display().to_string();
    let metrics = ok(g.exec("box3", &[BATON, "admin", "--config", &config, "metrics"]));
    let key = format!("baton_dataplane_{name}_total ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} counter for box{n}:\n{metrics}"))
}

/// Keep-alive requests per second on one connection (`ab -k -c 1`).
fn keepalive_rate(g: &LabGuard, ip: &str) -> f64 {
    let url = format!("http://{ip}/1K.bin");
    let out = ok(g.exec(
        "client",
        &["ab", "-q", "-k", "-c", "1", "-n", "3000", "-s", "10", &url],
    ));
    assert!(
        out.contains("Failed requests:        0"),
        "ab against {ip} had failures:\n{out}"
    );
    out.lines()
        .find_map(|l| l.strip_prefix("Requests per second:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rate in ab's output:\n{out}"))
}

#[test]
fn lab_restarted_box_connects_on_the_first_syn_and_serves_at_full_rate() {
    let g = LabGuard::up("btrj1", &["--boxes", "3"]);
    // The client knows box 1's MAC, as any client that used it does.
    download_identical(&g, 1, "1K.bin");
    ok(g.lab(&["kill", "box1"]));
    // Box 2 inherits the address (detection is 3 x 30 ms), then box 1
    // comes back while box 2 is still announcing it, as in the benchmark's
    // checkpoint suite (kill, then start at once).
    sleep(Duration::from_millis(300));
    ok(g.lab(&["start", "box1"]));

    // SYNs the client sends to box 1's address.
    let syns = Capture::start(
        &g,
        "syn.pcap",
        "dst host 198.18.0.11 and (tcp[tcpflags] & (tcp-syn|tcp-ack)) == tcp-syn",
    );
    let mut connect_times = Vec::new();
    for _ in 0..5 {
        let out = ok(g.exec(
            "client",
            &[
                "curl",
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{time_connect}",
                "http://198.18.0.11/1K.bin",
            ],
        ));
        let (code, secs) = out.trim().split_once(' ').expect("curl -w output");
        assert_eq!(code, "200", "GET /1K.bin from the restarted box1");
        connect_times.push(secs.parse::<f64>().expect("time_connect"));
        // Let box 2's last announcement (1 s after the takeover) pass
        // between the connections.
        sleep(Duration::from_millis(300));
    }
    let seen = syns.finish(Duration::from_millis(200));
    assert!(
        connect_times.iter().all(|&t| t < 0.5),
        "a connection to the restarted box waited for a SYN retransmission: connect times {connect_times:?} s\n{}",
        seen.join("\n")
    );
    assert_eq!(
        seen.len(),
        5,
        "one SYN per connection, none retransmitted:\n{}",
        seen.join("\n")
    );
    assert_eq!(
        box_counter(&g, 1, "tcp_accepted"),
        5,
        "the restarted box1 itself accepted the five connections"
    );

    // Its request rate on one keep-alive connection is that of a box
    // that never died (was ~15x lower: every frame went the long way).
    let restarted = keepalive_rate(&g, "198.18.0.11");
    let never_died = keepalive_rate(&g, "198.18.0.13");
    assert!(
        restarted > never_died / 3.0,
        "restarted box1: {restarted:.0} req/s, box3: {never_died:.0} req/s"
    );
}
