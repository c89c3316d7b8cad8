//! The shipped example parses, and configs survive a trip through `to_toml`.

use baton_config::*;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// The example with its published key and token replaced, as an operator
/// must before a box accepts it.
fn with_secrets() -> String {
    EXAMPLE
        .replace(
            EXAMPLE_KEY,
            "5f3a9c0e7b214d86a1c4e0f29b7d3e615f3a9c0e7b214d86a1c4e0f29b7d3e61",
        )
        .replace(&format!("\"{EXAMPLE_TOKEN}\""), "\"a-secret-token\"")
}

#[test]
fn the_example_is_refused_until_its_key_and_token_are_changed() {
    let err = parse(EXAMPLE, "baton.example.toml")
        .unwrap_err()
        .to_string();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cluster.key: this is the example's key")),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("admin.token: this is the example's token")),
        "{err}"
    );
    assert!(!err.contains(EXAMPLE_KEY), "the key is never quoted: {err}");
}

#[test]
fn example_parses_with_the_documented_values() {
    let c = parse(&with_secrets(), "baton.example.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.node.id, 1);
    assert_eq!(c.node.name, "box1");
    assert_eq!(c.cluster.key.len(), 32);
    assert_eq!(c.cluster.members.len(), 3);
    assert_eq!(
        c.member(2).map(|m| m.back_addr),
        Some("198.19.0.12:7400".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(
        c.service.ips,
        vec!["198.18.0.11".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(c.service.port, 80);
    assert_eq!(c.dataplane.backend, Backend::AfPacket);
    assert_eq!(c.dataplane.cores, vec![0, 1]);
    assert_eq!(c.dataplane.poll_mode, PollMode::Adaptive);
    assert_eq!(c.dataplane.mac, Some(MacAddr([0x02, 0xba, 0x70, 0, 0, 1])));
    assert_eq!(c.checkpoint.mode, SegmentMode::Shared);
    assert_eq!(c.checkpoint.segment_path, Path::new("/dev/shm/baton.seg"));
    assert_eq!(c.cache.memory_bytes, 1 << 30);
    assert_eq!(c.cache.origin_host(), "198.19.0.2");
    assert_eq!(c.cache.origin_port(), 80);
    assert_eq!(c.admin.token, "a-secret-token");
    let d = c
        .dataplane
        .dpdk
        .unwrap_or_else(|| panic!("the example has [dataplane.dpdk]"));
    assert!(!d.hugepages);
    assert_eq!(
        d.vdevs,
        vec!["net_af_packet0,iface=front0,qpairs=2".to_string()]
    );
    assert_eq!(d.memory_mb, 256);
    assert_eq!(d.mbufs, 8191);
    assert_eq!(d.main_lcore, Some(0));
    assert_eq!(d.idle_sleep_us, 1000);
    assert_eq!(d.log_level, "notice");
}

#[test]
fn example_round_trips_through_to_toml() {
    let c = parse(&with_secrets(), "baton.example.toml").unwrap_or_else(|e| panic!("{e}"));
    let text = c.to_toml();
    let again = parse(&text, "generated.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, c);
}

/// `(table header, key)` of every `key = value` line of a TOML text.
fn keys_by_table(text: &str) -> Vec<(String, String)> {
    let mut table = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            table = line.to_string();
        } else if let Some((key, _)) = line.split_once('=') {
            if !line.starts_with('#') {
                out.push((table.clone(), key.trim().to_string()));
            }
        }
    }
    out
}

#[test]
fn example_documents_every_key_with_a_comment() {
    let c = parse(&with_secrets(), "baton.example.toml").unwrap_or_else(|e| panic!("{e}"));
    // to_toml writes every key the format has (all optional ones are set
    // in the example), so its key list is the schema's.
    let all = keys_by_table(&c.to_toml());
    assert!(all.len() >= 45, "only {} keys written", all.len());
    let lines: Vec<&str> = EXAMPLE.lines().map(str::trim).collect();
    for (table, key) in all {
        let header = lines
            .iter()
            .position(|l| *l == table)
            .unwrap_or_else(|| panic!("{table} missing from the example"));
        let at = lines[header..]
            .iter()
            .position(|l| l.starts_with(&format!("{key} =")))
            .map(|i| header + i)
            .unwrap_or_else(|| panic!("{table} {key} missing from the example"));
        // Either the key has its own comment right above it, or the
        // comment block above its table header explains it as `key:`.
        let own = lines[at - 1].starts_with('#');
        let in_block = lines[..header]
            .iter()
            .rev()
            .take_while(|l| l.starts_with('#'))
            .any(|l| l.contains(&format!("{key}:")));
        assert!(
            own || in_block,
            "{table} {key} has no comment in the example"
        );
    }
}

fn hand_built() -> Config {
    let mut c = parse(&with_secrets(), "baton.example.toml").unwrap_or_else(|e| panic!("{e}"));
    c.node.name = "böx \"one\"\t#1".to_string();
    c.admin.token = "to'ken\"with\\quotes".to_string();
    c.dataplane.mac = None;
    c.dataplane.dpdk = None;
    c.dataplane.cores = Vec::new();
    c.cache.disk_dir = None;
    c.cache.origin = "http://[2001:db8::2]:8080/objects".to_string();
    c.service
        .ips
        .push("2001:db8::11".parse().unwrap_or_else(|e| panic!("{e}")));
    c.checkpoint.mode = SegmentMode::Replicated;
    // Replicated mode: detection outlasts the Raft's lease.
    c.failure.missed = 30;
    c.raft.port = 7500;
    c.raft.state_path = Some("/var/lib/baton/raft".into());
    c.dataplane.backend = Backend::Dpdk;
    c.dataplane.poll_mode = PollMode::Busy;
    c
}

#[test]
fn hand_built_config_with_tricky_strings_round_trips() {
    let c = hand_built();
    let text = c.to_toml();
    let again = parse(&text, "generated.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, c);
    assert!(!text.contains("mac ="), "{text}");
    assert!(!text.contains("disk_dir"), "{text}");
    assert!(!text.contains("[dataplane.dpdk]"), "{text}");
}

#[test]
fn dpdk_table_round_trips_with_and_without_a_main_lcore() {
    let mut c = hand_built();
    c.dataplane.dpdk = Some(DpdkConfig {
        eal_args: vec!["-d".into(), "/opt/pmd.so".into()],
        hugepages: true,
        vdevs: vec!["net_af_packet0,iface=eth9,qpairs=4".into()],
        memory_mb: 1024,
        mbufs: 65535,
        main_lcore: Some(3),
        idle_sleep_us: 0,
        log_level: "debug".into(),
    });
    let text = c.to_toml();
    let again = parse(&text, "generated.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, c);
    assert!(text.contains("main_lcore = 3"), "{text}");
    if let Some(d) = c.dataplane.dpdk.as_mut() {
        d.main_lcore = None;
    }
    let text = c.to_toml();
    let again = parse(&text, "generated.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, c);
    assert!(!text.contains("main_lcore"), "{text}");
}
