//! Malformed files: every kind of mistake gives one line naming the file,
//! the line, the key and what was expected.

use baton_config::*;

mod common;

use common::*;

#[test]
fn minimal_file_parses_with_defaults() {
    let c = parse(&minimal(), "box1.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.node.name, "box1");
    assert_eq!(c.node.log_level, "info");
    assert_eq!(c.service.port, 80);
    assert!(c.dataplane.cores.is_empty());
    assert_eq!(c.dataplane.max_connections, 300_000);
    assert_eq!(c.dataplane.syn_backlog, 1024);
    assert_eq!(c.dataplane.max_connections_per_client, 8192);
    assert_eq!(c.dataplane.tcp_idle_timeout_ms, 60_000);
    assert_eq!(c.dataplane.mac, None);
    assert!(
        c.dataplane.tx_offload,
        "TX offload stays on unless turned off"
    );
    assert_eq!(c.dataplane.dpdk, None);
    assert!(c.checkpoint.enabled);
    assert_eq!(c.checkpoint.fast_bytes, 100_000);
    assert_eq!(c.checkpoint.slow_bytes, 10_000);
    assert_eq!(c.checkpoint.interval_ms, 200);
    assert!(!c.checkpoint.ack_after_commit);
    assert_eq!(c.checkpoint.replication_port, 7400);
    assert_eq!(
        c.failure,
        FailureConfig {
            heartbeat_interval_ms: 30,
            missed: 3
        }
    );
    assert_eq!(c.failure.detection_ms(), 90);
    assert_eq!(c.cache.fetchers, 4);
    assert_eq!(c.cache.origin_timeout_ms, 5000);
    assert_eq!(c.cache.disk_dir, None);
    assert_eq!(c.limits, LimitsConfig::default());
    assert_eq!(c.limits.max_header_bytes, 16384);
    assert_eq!(c.limits.max_request_line, 8192);
    assert_eq!(c.peers().map(|m| m.id).collect::<Vec<_>>(), vec![2]);
}

#[test]
fn unknown_key_names_the_key_and_the_expected_ones() {
    let text = edited("id = 1\n", "id = 1\ncolour = \"red\"\n");
    assert_eq!(
        one_line(&text),
        "box1.toml:3: box.colour: unknown key (expected one of: id, name, log_level)"
    );
}

#[test]
fn unknown_table_is_reported() {
    let text = format!("{}\n[colour]\nred = 1\n", minimal());
    let line = line_of(&text, "[colour]");
    let got = one_line(&text);
    assert!(
        got.starts_with(&format!(
            "box1.toml:{line}: colour: unknown table (expected one of: box, cluster,"
        )),
        "{got}"
    );
}

#[test]
fn wrong_type_says_what_was_expected_and_found() {
    let text = edited("workers = 2", "workers = \"two\"");
    let line = line_of(&text, "workers");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: dataplane.workers: expected a positive integer, found string \"two\"")
    );
}

#[test]
fn tx_offload_is_read_and_only_a_boolean_is_accepted() {
    let text = edited(
        "poll_mode = \"adaptive\"",
        "poll_mode = \"adaptive\"\ntx_offload = false",
    );
    let c = parse(&text, "box1.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.dataplane.tx_offload);
    let again = parse(&c.to_toml(), "generated.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(!again.dataplane.tx_offload, "to_toml keeps the switch off");
    // "off", 0 and "no" read as on to a careless eye: refuse them.
    for bad in ["\"off\"", "0", "\"false\""] {
        let text = edited(
            "poll_mode = \"adaptive\"",
            &format!("poll_mode = \"adaptive\"\ntx_offload = {bad}"),
        );
        let line = line_of(&text, "tx_offload");
        let got = one_line(&text);
        assert!(
            got.starts_with(&format!(
                "box1.toml:{line}: dataplane.tx_offload: expected true or false, found"
            )),
            "{got}"
        );
    }
}

#[test]
fn tcp_idle_timeout_is_read_and_zero_is_refused() {
    let text = edited(
        "poll_mode = \"adaptive\"",
        "poll_mode = \"adaptive\"\ntcp_idle_timeout_ms = 120000",
    );
    let c = parse(&text, "box1.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.dataplane.tcp_idle_timeout_ms, 120_000);
    // Zero would close every connection at once.
    let text = edited(
        "poll_mode = \"adaptive\"",
        "poll_mode = \"adaptive\"\ntcp_idle_timeout_ms = 0",
    );
    let line = line_of(&text, "tcp_idle_timeout_ms");
    assert!(
        one_line(&text).starts_with(&format!(
            "box1.toml:{line}: dataplane.tcp_idle_timeout_ms: expected a positive integer"
        )),
        "{}",
        one_line(&text)
    );
}

#[test]
fn max_connections_per_client_is_a_positive_integer() {
    let text = edited(
        "poll_mode = \"adaptive\"",
        "poll_mode = \"adaptive\"\nmax_connections_per_client = 100",
    );
    let c = parse(&text, "box1.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.dataplane.max_connections_per_client, 100);
    // Zero would refuse every client.
    let text = edited(
        "poll_mode = \"adaptive\"",
        "poll_mode = \"adaptive\"\nmax_connections_per_client = 0",
    );
    let line = line_of(&text, "max_connections_per_client");
    assert!(
        one_line(&text).starts_with(&format!(
            "box1.toml:{line}: dataplane.max_connections_per_client: expected a positive integer"
        )),
        "{}",
        one_line(&text)
    );
}

#[test]
fn table_where_a_value_belongs_is_a_wrong_type() {
    let text = edited("token = \"secret\"", "token = { value = \"secret\" }");
    let line = line_of(&text, "token");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: admin.token: expected a non-empty string, found table")
    );
}

#[test]
fn missing_key_points_at_its_table() {
    let text = edited("origin = \"http://198.19.0.2:80\"\n", "");
    let line = line_of(&text, "[cache]");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: cache.origin: missing key")
    );
}

#[test]
fn missing_table_is_named() {
    let text = minimal();
    let start = text.find("[cache]").unwrap_or(0);
    let end = text.find("[admin]").unwrap_or(0);
    let text = format!("{}{}", &text[..start], &text[end..]);
    assert_eq!(one_line(&text), "box1.toml: cache: missing table");
}

#[test]
fn failure_and_limits_tables_may_be_omitted_but_others_not() {
    let lines = error_lines("");
    assert_eq!(
        lines,
        [
            "box1.toml: box: missing table",
            "box1.toml: cluster: missing table",
            "box1.toml: service: missing table",
            "box1.toml: dataplane: missing table",
            "box1.toml: checkpoint: missing table",
            "box1.toml: cache: missing table",
            "box1.toml: admin: missing table",
        ]
    );
}

#[test]
fn bad_ip_names_the_element() {
    let text = edited(
        r#"ips = ["198.18.0.11"]"#,
        r#"ips = ["198.18.0.11", "198.18.0.300"]"#,
    );
    let line = line_of(&text, "ips =");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: service.ips[1]: expected an IP address like 198.18.0.11, found string \"198.18.0.300\"")
    );
}

#[test]
fn ipv6_service_address_is_accepted() {
    let text = edited(
        r#"ips = ["198.18.0.11"]"#,
        r#"ips = ["198.18.0.11", "2001:db8::11"]"#,
    );
    let c = parse(&text, "box1.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.service.ips.len(), 2);
    assert!(c.service.ips[1].is_ipv6());
}

#[test]
fn empty_service_ip_list_is_refused() {
    let text = edited(r#"ips = ["198.18.0.11"]"#, "ips = []");
    let line = line_of(&text, "ips =");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: service.ips: expected at least one IP address")
    );
}

#[test]
fn bad_socket_addresses_are_named() {
    let text = edited("198.19.0.12:7400", "198.19.0.12");
    let text = text.replacen("198.19.0.11:9090", "198.19.0.11:99999", 1);
    let member_line = line_of(&text, "\"198.19.0.12\"");
    let admin_line = line_of(&text, "listen");
    assert_eq!(
        error_lines(&text),
        [
            format!("box1.toml:{member_line}: cluster.members[1].back_addr: expected a socket address like 198.19.0.11:7400, found string \"198.19.0.12\""),
            format!("box1.toml:{admin_line}: admin.listen: expected a socket address like 198.19.0.11:9090, found string \"198.19.0.11:99999\""),
        ]
    );
}

#[test]
fn bad_mac_is_refused() {
    let text = edited("poll_mode", "mac = \"02:ba:70:00:00\"\npoll_mode");
    let line = line_of(&text, "mac =");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: dataplane.mac: expected a MAC address like 02:ba:70:00:00:01, found string \"02:ba:70:00:00\"")
    );
}

#[test]
fn multicast_mac_cannot_be_a_source() {
    let text = edited("poll_mode", "mac = \"01:00:5e:00:00:01\"\npoll_mode");
    let got = one_line(&text);
    assert!(
        got.contains("dataplane.mac: expected a unicast MAC address"),
        "{got}"
    );
}

#[test]
fn mac_parses_and_prints_back() {
    let mac: MacAddr = "02:BA:70:00:00:01"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mac, MacAddr([2, 0xba, 0x70, 0, 0, 1]));
    assert_eq!(mac.to_string(), "02:ba:70:00:00:01");
    assert!("02:ba:70:00:00:01:02".parse::<MacAddr>().is_err());
    assert!("02:ba:70:00:00:1".parse::<MacAddr>().is_err());
    assert!("02:ba:70:00:00:+1".parse::<MacAddr>().is_err());
}

#[test]
fn bad_origin_urls_are_refused() {
    for (origin, want) in [
        (
            "https://198.19.0.2",
            "expected an http://host[:port][/path] URL",
        ),
        ("198.19.0.2:80", "expected an http://host[:port][/path] URL"),
        ("http://:80/", "has no host"),
        ("http://198.19.0.2:0", "bad port"),
        ("http://198.19.0.2:http", "bad port"),
        ("http://user@198.19.0.2", "user info"),
        ("http://198.19.0.2/?q=1", "query"),
        ("http://[::1/", "unclosed"),
        ("http://bad_host!/", "bad host"),
    ] {
        let text = edited("http://198.19.0.2:80", origin);
        let line = line_of(&text, "origin =");
        let got = one_line(&text);
        assert!(
            got.starts_with(&format!("box1.toml:{line}: cache.origin: ")) && got.contains(want),
            "{origin}: {got}"
        );
    }
}

#[test]
fn origin_accessors_split_the_url() {
    let text = edited("http://198.19.0.2:80", "http://[2001:db8::2]:8080/objects");
    let c = parse(&text, "box1.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.cache.origin_host(), "2001:db8::2");
    assert_eq!(c.cache.origin_port(), 8080);
    assert_eq!(c.cache.origin_path(), "/objects");
    assert_eq!(
        c.cache.origin_socket_addr(),
        Some(
            "[2001:db8::2]:8080"
                .parse()
                .unwrap_or_else(|e| panic!("{e}"))
        )
    );

    let text = edited("http://198.19.0.2:80", "http://origin.lab");
    let c = parse(&text, "box1.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.cache.origin_host(), "origin.lab");
    assert_eq!(c.cache.origin_port(), 80);
    assert_eq!(c.cache.origin_path(), "/");
    assert_eq!(c.cache.origin_socket_addr(), None);
}

#[test]
fn workers_and_cores_must_match() {
    let text = edited("poll_mode", "cores = [0, 1, 2]\npoll_mode");
    let line = line_of(&text, "cores =");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: dataplane.cores: expected 2 cores (one per worker, dataplane.workers = 2) or none, found 3")
    );
}

#[test]
fn a_core_is_pinned_once() {
    let text = edited("poll_mode", "cores = [1, 1]\npoll_mode");
    let got = one_line(&text);
    assert!(
        got.contains("dataplane.cores: core 1 is listed twice"),
        "{got}"
    );
}

#[test]
fn duplicate_member_ids_are_refused() {
    let text = edited("id = 2\n", "id = 1\n");
    let first = line_of(&text, "198.19.0.11:7400") - 1;
    let dup = line_of(&text, "198.19.0.12:7400") - 1;
    assert_eq!(
        one_line(&text),
        format!(
            "box1.toml:{dup}: cluster.members[1].id: duplicate member id 1 (first at line {first})"
        )
    );
}

#[test]
fn own_id_must_be_a_member() {
    let text = edited("[box]\nid = 1", "[box]\nid = 3");
    assert_eq!(
        one_line(&text),
        "box1.toml:2: box.id: box 3 is not one of cluster.members (ids: 1, 2)"
    );
}

#[test]
fn in_shared_mode_a_member_id_must_fit_the_membership_view() {
    let text = edited("id = 2\n", "id = 16\n");
    let line = line_of(&text, "198.19.0.12:7400") - 1;
    assert_eq!(
        one_line(&text),
        format!(
            "box1.toml:{line}: cluster.members[1].id: member id 16 does not fit the shared segment's membership view (ids 0..16; use checkpoint.mode = \"replicated\" or smaller ids)"
        )
    );
    let replicated = text.replace(
        "mode = \"shared\"",
        "mode = \"replicated\"\n\n[failure]\nmissed = 30",
    );
    assert!(
        parse(&replicated, "box1.toml").is_ok(),
        "replicated segments keep no view cell: any id"
    );
    assert_eq!(baton_config::SHARED_MAX_MEMBERS, 16);
}

/// `minimal()` in replicated mode, with `more` after `[checkpoint]`'s keys.
fn replicated(more: &str) -> String {
    edited(
        "mode = \"shared\"",
        &format!("mode = \"replicated\"\n\n{more}"),
    )
}

#[test]
fn in_replicated_mode_detection_must_outlast_the_quorum_lease() {
    // Defaults: detection 30 ms * 3 = 90 ms, lease 800 ms.
    let text = replicated("");
    let line = line_of(&text, "mode = \"replicated\"");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: failure.missed: failure detection (90 ms = heartbeat_interval_ms 30 * missed 3) must be at least raft.lease_ms (800) + 3 * heartbeat_interval_ms in replicated mode, so that a box cut off from the quorum has stopped before its survivors take it over: set missed = 30 or more")
    );
    let text = replicated("[failure]\nmissed = 21\n\n[raft]\nlease_ms = 500");
    assert!(
        parse(&text, "box1.toml").is_ok(),
        "630 ms outlasts a 500 ms lease by three intervals"
    );
    let text = replicated("[failure]\nmissed = 10\n");
    let line = line_of(&text, "missed = 10");
    assert!(
        one_line(&text).starts_with(&format!(
            "box1.toml:{line}: failure.missed: failure detection (300 ms"
        )),
        "the problem points at the missed key"
    );
    let c = parse(&replicated("[failure]\nmissed = 30"), "box1.toml").expect("900 ms is enough");
    assert_eq!(c.raft.port, 7402);
    assert_eq!(
        c.raft.state_path(&c.checkpoint.segment_path),
        std::path::PathBuf::from("/dev/shm/baton.seg.raft")
    );
    assert!(
        parse(&minimal(), "box1.toml").is_ok(),
        "shared mode keeps no Raft: its rules do not apply"
    );
}

#[test]
fn raft_timings_must_be_in_order_and_the_lease_outlast_an_election() {
    let text = replicated("[failure]\nmissed = 40\n\n[raft]\nheartbeat_ms = 50\nelection_min_ms = 50\nelection_max_ms = 40\nlease_ms = 100");
    let lines = error_lines(&text);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0]
            .contains("raft.election_min_ms: expected more than raft.heartbeat_ms (50), found 50"),
        "{lines:#?}"
    );
    assert!(
        lines[1].contains(
            "raft.election_max_ms: expected more than raft.election_min_ms (50), found 40"
        ),
        "{lines:#?}"
    );
    assert!(lines[2].contains("raft.lease_ms: expected at least 2 * raft.election_max_ms + 2 * raft.heartbeat_ms (180), found 100"), "{lines:#?}");
}

#[test]
fn the_raft_port_must_not_be_a_members_replication_port() {
    let text = replicated("[failure]\nmissed = 30\n\n[raft]\nport = 7400");
    let line = line_of(&text, "port = 7400");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: raft.port: member 1's Raft address 198.19.0.11:7400 is cluster.members[0].back_addr or the port after it, the replication's and its heartbeats': pick another port (cluster.members[0])")
    );
    // The port after it carries the heartbeats.
    let text = replicated("[failure]\nmissed = 30\n\n[raft]\nport = 7401");
    let line = line_of(&text, "port = 7401");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: raft.port: member 1's Raft address 198.19.0.11:7401 is cluster.members[0].back_addr or the port after it, the replication's and its heartbeats': pick another port (cluster.members[0])")
    );
}

#[test]
fn box_id_out_of_range_is_refused() {
    let text = edited("[box]\nid = 1", "[box]\nid = 255");
    assert_eq!(
        one_line(&text),
        "box1.toml:2: box.id: expected an integer in 1..=254, found integer 255"
    );
}

#[test]
fn slow_bytes_above_fast_bytes_is_refused() {
    let text = edited(
        "mode = \"shared\"",
        "mode = \"shared\"\nfast_bytes = 1000\nslow_bytes = 2000",
    );
    let line = line_of(&text, "slow_bytes");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: checkpoint.slow_bytes: expected at most checkpoint.fast_bytes (1000), found 2000")
    );
}

#[test]
fn short_cluster_key_is_refused_without_quoting_it() {
    let text = edited(KEY, "0011223344556677");
    let got = one_line(&text);
    assert_eq!(
        got,
        "box1.toml:5: cluster.key: expected at least 64 hex digits (32 bytes), found 16 hex digits"
    );
    let text = edited(KEY, &KEY.replacen('a', "z", 1));
    let got = one_line(&text);
    assert!(
        got.contains(
            "cluster.key: expected at least 64 hex digits (32 bytes), found a non-hex character"
        ),
        "{got}"
    );
    assert!(!got.contains("00112233"), "the key leaked: {got}");
}

#[test]
fn the_examples_published_key_and_token_are_refused() {
    let got = one_line(&edited(KEY, EXAMPLE_KEY));
    assert_eq!(
        got,
        "box1.toml:5: cluster.key: this is the example's key, published with Baton: generate a secret one (openssl rand -hex 32)"
    );
    let got = one_line(&edited(KEY, &EXAMPLE_KEY.to_uppercase()));
    assert!(
        got.contains("cluster.key: this is the example's key"),
        "{got}"
    );
    let text = edited(
        "token = \"secret\"",
        &format!("token = \"{EXAMPLE_TOKEN}\""),
    );
    let got = one_line(&text);
    let line = line_of(&text, EXAMPLE_TOKEN);
    assert_eq!(
        got,
        format!("box1.toml:{line}: admin.token: this is the example's token, published with Baton: choose a secret one (openssl rand -hex 16)")
    );
}

#[test]
fn debug_output_never_shows_secrets() {
    let c = parse(&minimal(), "box1.toml").unwrap_or_else(|e| panic!("{e}"));
    let shown = format!("{c:?}");
    assert!(!shown.contains("secret"), "token leaked: {shown}");
    assert!(!shown.contains("[0, 17, 34"), "key bytes leaked: {shown}");
    assert!(shown.contains("32 bytes redacted"), "{shown}");
}

#[test]
fn syntax_error_gives_one_line_with_its_line_number() {
    let text = edited("workers = 2", "workers = = 2");
    let line = line_of(&text, "workers");
    let got = one_line(&text);
    assert!(
        got.starts_with(&format!("box1.toml:{line}: syntax: invalid TOML")),
        "{got}"
    );
}

#[test]
fn duplicate_key_is_a_syntax_error_on_its_line() {
    let text = edited("workers = 2", "workers = 2\nworkers = 3");
    let line = line_of(&text, "workers = 3");
    let got = one_line(&text);
    assert!(
        got.starts_with(&format!("box1.toml:{line}: syntax:")),
        "{got}"
    );
}

#[test]
fn three_problems_give_three_lines_in_file_order() {
    let text = edited("id = 1\n", "id = 1\ncolour = \"red\"\n");
    let text = text.replacen("workers = 2", "workers = \"two\"", 1);
    let text = text.replacen("198.19.0.11:9090", "nowhere", 1);
    let lines = error_lines(&text);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with("box1.toml:3: box.colour: unknown key"),
        "{lines:#?}"
    );
    assert!(
        lines[1].contains("dataplane.workers: expected a positive integer"),
        "{lines:#?}"
    );
    assert!(
        lines[2].contains("admin.listen: expected a socket address"),
        "{lines:#?}"
    );
    match parse(&text, "box1.toml") {
        Err(e) => assert_eq!(e.problems.len(), 3),
        Ok(_) => panic!("parsed"),
    }
}

#[test]
fn memory_bytes_takes_integers_and_units() {
    for (given, bytes) in [
        ("1048576", 1_048_576u64),
        ("\"1GiB\"", 1 << 30),
        ("\"512MiB\"", 512 << 20),
        ("\"64 KiB\"", 64 << 10),
        ("\"2G\"", 2_000_000_000),
        ("\"10MB\"", 10_000_000),
        ("\"1_000K\"", 1_000_000),
    ] {
        let text = edited("memory_bytes = 1048576", &format!("memory_bytes = {given}"));
        let c = parse(&text, "box1.toml").unwrap_or_else(|e| panic!("{given}: {e}"));
        assert_eq!(c.cache.memory_bytes, bytes, "{given}");
    }
    for bad in [
        "0",
        "-5",
        "\"1 parsec\"",
        "\"GiB\"",
        "\"99999999999TiB\"",
        "1.5",
    ] {
        let text = edited("memory_bytes = 1048576", &format!("memory_bytes = {bad}"));
        let got = one_line(&text);
        assert!(
            got.contains("cache.memory_bytes: expected a positive byte count"),
            "{bad}: {got}"
        );
    }
}

#[test]
fn bad_enum_value_lists_the_choices() {
    let text = edited("backend = \"afpacket\"", "backend = \"xdp\"");
    let line = line_of(&text, "backend");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: dataplane.backend: expected one of \"afpacket\", \"dpdk\", \"afxdp\", found string \"xdp\"")
    );
}

#[test]
fn afxdp_backend_takes_one_worker() {
    let text = edited("backend = \"afpacket\"", "backend = \"afxdp\"");
    let line = line_of(&text, "workers");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: dataplane.workers: expected 1 with dataplane.backend = \"afxdp\" (one queue, one worker today), found 2")
    );
    let one = text.replace("workers = 2", "workers = 1");
    assert_eq!(ok(&one).dataplane.backend, Backend::AfXdp);
}

#[test]
fn interface_name_longer_than_ifnamsiz_is_refused() {
    let text = edited("\"front0\"", "\"a-very-long-interface0\"");
    let got = one_line(&text);
    assert!(
        got.contains("dataplane.interface: expected an interface name of 1 to 15 characters"),
        "{got}"
    );
}

#[test]
fn relative_segment_path_is_refused() {
    let text = edited("/dev/shm/baton.seg", "baton.seg");
    let got = one_line(&text);
    assert!(
        got.contains("checkpoint.segment_path: expected an absolute path"),
        "{got}"
    );
}

#[test]
fn members_as_inline_array_are_accepted() {
    let text = minimal();
    let start = text.find("[[cluster.members]]").unwrap_or(0);
    let end = text.find("[service]").unwrap_or(0);
    let text = format!(
        "{}members = [{{ id = 1, back_addr = \"198.19.0.11:7400\" }}]\n\n{}",
        &text[..start],
        &text[end..]
    );
    let c = parse(&text, "box1.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(c.cluster.members.len(), 1);
}

#[test]
fn unknown_key_in_a_member_and_in_dpdk_are_reported() {
    let text = edited("id = 2\n", "id = 2\nweight = 3\n");
    let text = format!("{text}\n[dataplane.dpdk]\nhugepage = true\n");
    let lines = error_lines(&text);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0]
            .contains("cluster.members[1].weight: unknown key (expected one of: id, back_addr)"),
        "{lines:#?}"
    );
    assert!(
        lines[1].contains(
            "dataplane.dpdk.hugepage: unknown key (expected one of: eal_args, hugepages, vdevs, memory_mb, mbufs, main_lcore, idle_sleep_us, log_level)"
        ),
        "{lines:#?}"
    );
}

#[test]
fn load_names_an_unreadable_path() {
    let path = std::path::Path::new("/nonexistent/baton/box9.toml");
    match load(path) {
        Ok(_) => panic!("loaded a missing file"),
        Err(e) => {
            let shown = e.to_string();
            assert!(
                shown.starts_with("/nonexistent/baton/box9.toml: file: cannot read:"),
                "{shown}"
            );
            assert_eq!(shown.lines().count(), 1);
        }
    }
}

#[test]
fn load_reads_a_file_and_reports_with_its_path() {
    let dir = std::env::temp_dir().join(format!("baton-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let good = dir.join("good.toml");
    std::fs::write(&good, minimal()).unwrap_or_else(|e| panic!("{e}"));
    let c = load(&good).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.node.id, 1);

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, b"[box]\nid = \xff\n").unwrap_or_else(|e| panic!("{e}"));
    let shown = load(&bad).err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        shown,
        format!(
            "{}:2: file: not UTF-8 text (TOML files are UTF-8, TOML 1.0 §Spec)",
            bad.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn log_level_with_an_unknown_level_is_refused() {
    let text = edited(
        "[box]\nid = 1",
        "[box]\nid = 1\nlog_level = \"warn,baton=verbose\"",
    );
    assert_eq!(
        one_line(&text),
        "box1.toml:3: box.log_level: expected a log filter like \"info\" or \"warn,baton=debug\" (levels: trace, debug, info, warn, error, off), found level \"verbose\" in \"warn,baton=verbose\""
    );
    let text = edited(
        "[box]\nid = 1",
        "[box]\nid = 1\nlog_level = \"warn,baton::tcp=TRACE\"",
    );
    let c = parse(&text, "box1.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.node.log_level, "warn,baton::tcp=TRACE");
}

#[test]
fn line_numbers_count_lines_not_characters() {
    // Multi-byte characters before the mistake must not shift its line.
    let comment = format!("# {}\n", "é".repeat(50));
    let text = format!(
        "{comment}{comment}{}",
        edited("workers = 2", "workers = \"two\"")
    );
    let line = line_of(&text, "workers");
    assert!(one_line(&text).starts_with(&format!("box1.toml:{line}: dataplane.workers:")));

    let text = format!(
        "{comment}{comment}{}",
        edited("workers = 2", "workers = = 2")
    );
    let line = line_of(&text, "workers");
    let got = one_line(&text);
    assert!(
        got.starts_with(&format!("box1.toml:{line}: syntax:")),
        "{got}"
    );
}

#[test]
fn dpdk_keys_left_out_take_their_defaults() {
    let text = format!("{}\n[dataplane.dpdk]\nhugepages = true\n", minimal());
    let c = parse(&text, "box1.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let d = c
        .dataplane
        .dpdk
        .unwrap_or_else(|| panic!("the table was given"));
    assert!(d.hugepages);
    assert!(
        d.vdevs.is_empty(),
        "no vdev: the box derives net_af_packet0 from the interface"
    );
    assert!(d.eal_args.is_empty());
    assert_eq!(d.memory_mb, 256);
    assert_eq!(d.mbufs, 8191);
    assert_eq!(d.main_lcore, None);
    assert_eq!(d.idle_sleep_us, 1000);
    assert_eq!(d.log_level, "notice");
    assert_eq!(
        DpdkConfig::default(),
        DpdkConfig {
            hugepages: false,
            ..d
        }
    );
}

#[test]
fn dpdk_keys_out_of_range_are_refused_on_their_lines() {
    let text = format!(
        "{}\n[dataplane.dpdk]\nmemory_mb = 32\nmbufs = 100\nmain_lcore = -1\nidle_sleep_us = 2000000\nlog_level = \"loud\"\n",
        minimal()
    );
    let lines = error_lines(&text);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    let expect = [
        ("memory_mb = 32", "dataplane.dpdk.memory_mb: expected an integer in 64..=1048576, found integer 32"),
        ("mbufs = 100", "dataplane.dpdk.mbufs: expected an integer in 1023..=16777215, found integer 100"),
        ("main_lcore = -1", "dataplane.dpdk.main_lcore: expected an integer in 0..=1023, found integer -1"),
        ("idle_sleep_us = ", "dataplane.dpdk.idle_sleep_us: expected an integer in 0..=1000000, found integer 2000000"),
        ("log_level = \"loud\"", "dataplane.dpdk.log_level: expected one of \"emergency\", \"alert\", \"critical\", \"error\", \"warning\", \"notice\", \"info\", \"debug\", found string \"loud\""),
    ];
    for (line, (needle, msg)) in lines.iter().zip(expect) {
        let want = format!("box1.toml:{}: {msg}", line_of(&text, needle));
        assert_eq!(line, &want);
    }
}

#[test]
fn dpdk_log_level_must_be_a_level_name_not_a_number() {
    let text = format!("{}\n[dataplane.dpdk]\nlog_level = 7\n", minimal());
    let line = one_line(&text);
    assert!(
        line.contains("dataplane.dpdk.log_level: expected one of"),
        "{line}"
    );
    assert!(line.ends_with("found integer 7"), "{line}");
}

#[test]
fn takeover_assignment_defaults_to_round_robin_and_a_wrong_word_names_the_choices() {
    let c = parse(&minimal(), "box1.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.takeover.assignment, Assignment::RoundRobin);
    assert_eq!(c.takeover.capacity, 100_000);
    let text = format!(
        "{}\n[takeover]\nassignment = \"least_loaded\"\ncapacity = 500\n",
        minimal()
    );
    let c = parse(&text, "box1.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.takeover.assignment, Assignment::LeastLoaded);
    assert_eq!(c.takeover.capacity, 500);
    let text = format!("{}\n[takeover]\nassignment = \"random\"\n", minimal());
    let line = one_line(&text);
    assert!(
        line.starts_with(&format!(
            "box1.toml:{}: takeover.assignment: ",
            line_of(&text, "random")
        )) && line.contains("round_robin")
            && line.contains("least_loaded"),
        "{line}"
    );
    let text = format!("{}\n[takeover]\ncapacity = 0\n", minimal());
    let line = one_line(&text);
    assert!(line.contains("takeover.capacity"), "{line}");
}

#[test]
fn balance_is_off_by_default_and_bad_values_name_the_key_and_range() {
    let c = parse(&minimal(), "box1.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.balance.enabled);
    assert_eq!(
        (c.balance.threshold, c.balance.rate, c.balance.interval_ms),
        (1000, 100, 1000)
    );
    let text = format!(
        "{}\n[balance]\nenabled = true\nthreshold = 50\nrate = 20\ninterval_ms = 250\n",
        minimal()
    );
    let c = parse(&text, "box1.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(c.balance.enabled);
    assert_eq!(
        (c.balance.threshold, c.balance.rate, c.balance.interval_ms),
        (50, 20, 250)
    );
    for (bad, key, says) in [
        ("threshold = 0", "balance.threshold", "positive"),
        ("rate = 0", "balance.rate", "1..=100000"),
        ("interval_ms = 5", "balance.interval_ms", "10..=600000"),
        ("enabled = \"yes\"", "balance.enabled", "true or false"),
    ] {
        let text = format!("{}\n[balance]\n{bad}\n", minimal());
        let line = one_line(&text);
        assert!(
            line.starts_with(&format!("box1.toml:{}: {key}: ", line_of(&text, bad)))
                && line.contains(says),
            "{line}"
        );
    }
}

#[test]
fn a_pci_device_segment_is_its_sysfs_bar() {
    let text = edited(
        "segment_path = \"/dev/shm/baton.seg\"",
        "segment_path = \"pci:0000:00:05.0\"\nupload_dir = \"/dev/shm/baton.uploads\"",
    ) + "\n[raft]\nstate_path = \"/var/lib/baton/raft\"\n";
    let c = parse(&text, "box1.toml").expect("a PCI segment parses");
    assert_eq!(
        c.checkpoint.segment_path,
        std::path::PathBuf::from("/sys/bus/pci/devices/0000:00:05.0/resource2")
    );
}

#[test]
fn a_malformed_pci_device_is_refused() {
    let text = edited("/dev/shm/baton.seg", "pci:00:05.0");
    let got = one_line(&text);
    assert!(
        got.contains("checkpoint.segment_path: expected an absolute path or a PCI device like \"pci:0000:00:05.0\", found string \"00:05.0\""),
        "{got}"
    );
}

#[test]
fn a_pci_device_segment_needs_an_upload_dir() {
    let text = edited("/dev/shm/baton.seg", "pci:0000:00:05.0")
        + "\n[raft]\nstate_path = \"/var/lib/baton/raft\"\n";
    let line = line_of(&text, "segment_path");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: checkpoint.upload_dir: required when segment_path is a PCI device (the default lies beside the segment)")
    );
}

#[test]
fn a_pci_device_segment_needs_a_raft_state_path() {
    let text = edited(
        "segment_path = \"/dev/shm/baton.seg\"",
        "segment_path = \"pci:0000:00:05.0\"\nupload_dir = \"/dev/shm/baton.uploads\"",
    );
    let line = line_of(&text, "segment_path");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: raft.state_path: required when checkpoint.segment_path is a PCI device: the box's epoch file lies beside it (e.g. /var/lib/baton/raft)")
    );
}

#[test]
fn slot_bytes_defaults_to_768_and_takes_the_steps_from_320() {
    assert_eq!(ok(&minimal()).checkpoint.slot_bytes, 768);
    let text = edited("slots = 1000", "slots = 1000\nslot_bytes = 384");
    assert_eq!(ok(&text).checkpoint.slot_bytes, 384);
    for (bad, why) in [
        ("256", "expected an integer in 320..=768, found integer 256"),
        (
            "1024",
            "expected an integer in 320..=768, found integer 1024",
        ),
        (
            "400",
            "expected a multiple of 64, found 400 (e.g. 384 or 448)",
        ),
    ] {
        let text = edited("slots = 1000", &format!("slots = 1000\nslot_bytes = {bad}"));
        let line = line_of(&text, "slot_bytes");
        assert_eq!(
            one_line(&text),
            format!("box1.toml:{line}: checkpoint.slot_bytes: {why}")
        );
    }
}

/// An HTTPS record (its sealed TLS state) or an FTP or RTSP bundle needs the
/// whole 768 bytes: smaller slots are refused beside them, naming the table.
#[test]
fn slots_below_768_are_refused_with_tls_ftp_or_rtsp() {
    let small = edited("slots = 1000", "slots = 1000\nslot_bytes = 512");
    let line = line_of(&small, "slot_bytes");
    for table in ["ftp", "rtsp"] {
        let text = format!("{small}\n[{table}]\nenabled = true\n");
        assert_eq!(
            one_line(&text),
            format!("box1.toml:{line}: checkpoint.slot_bytes: 512 is for plain HTTP; with {table}.enabled = true every record must fit its slot: set 768 or leave it out")
        );
        // Present but off: nothing to say.
        ok(&format!("{small}\n[{table}]\nenabled = false\n"));
    }
}
