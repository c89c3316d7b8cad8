//! The shipped example parses, and configs survive a trip through `to_toml`.

use baton_config::*;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

#[test]
fn example_parses_with_the_documented_values() {
    let c = parse(EXAMPLE, "baton.example.toml").unwrap_or_else(|e| panic!("{e}"));
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
    assert_eq!(c.admin.token, "change-me");
}

#[test]
fn example_round_trips_through_to_toml() {
    let c = parse(EXAMPLE, "baton.example.toml").unwrap_or_else(|e| panic!("{e}"));
    let text = c.to_toml();
    let again = parse(&text, "generated.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again, c);
}
