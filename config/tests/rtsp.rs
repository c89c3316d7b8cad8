//! `[rtsp]`: defaults, a round trip, and every mistake of the table giving
//! one line that names the file, the line, the key and what was expected.

use baton_config::*;

mod common;

use common::*;

/// A valid file with `rtsp` appended as its `[rtsp]` table.
fn with_rtsp(rtsp: &str) -> String {
    format!("{}\n[rtsp]\n{rtsp}\n", minimal())
}

#[test]
fn a_file_without_rtsp_has_it_off_on_554_with_fifteen_port_pairs() {
    let c = ok(&with_rtsp("").replace("[rtsp]\n", ""));
    assert!(!c.rtsp.enabled);
    assert_eq!(c.rtsp.port, 554);
    assert_eq!((c.rtsp.udp_port_min, c.rtsp.udp_port_max), (6970, 6999));
    assert_eq!(c.rtsp.port_pairs(), 15);
    assert_eq!(c.rtsp.pacing_lead_ms, 100);
    assert_eq!(c.rtsp.initial_bitrate, 2_000_000);
    assert_eq!(c.rtsp.session_timeout_ms, 60_000);
    assert_eq!(c.rtsp.checkpoint_interval_ms, 200);
    assert_eq!(c.rtsp, RtspConfig::default());
}

#[test]
fn an_enabled_table_round_trips_through_to_toml() {
    let c = ok(&with_rtsp(
        "enabled = true\nport = 8554\nudp_port_min = 20000\nudp_port_max = 20099\npacing_lead_ms = 0\ninitial_bitrate = 8000000\nsession_timeout_ms = 30000\ncheckpoint_interval_ms = 50",
    ));
    assert!(c.rtsp.enabled);
    assert_eq!(c.rtsp.port, 8554);
    assert_eq!(c.rtsp.port_pairs(), 50);
    assert_eq!(c.rtsp.pacing_lead_ms, 0);
    assert_eq!(ok(&c.to_toml()), c);
}

#[test]
fn an_odd_first_udp_port_is_refused() {
    let text = with_rtsp("udp_port_min = 6971");
    assert_eq!(
        one_line(&text),
        format!(
            "box1.toml:{}: rtsp.udp_port_min: expected an even port (RTP on the even port, RTCP on the next), found 6971",
            line_of(&text, "udp_port_min")
        )
    );
}

#[test]
fn a_range_without_a_pair_is_refused() {
    let text = with_rtsp("udp_port_min = 7000\nudp_port_max = 7000");
    assert_eq!(
        one_line(&text),
        format!(
            "box1.toml:{}: rtsp.udp_port_max: expected more than rtsp.udp_port_min (7000), found 7000: the range must hold an RTP/RTCP pair",
            line_of(&text, "udp_port_max")
        )
    );
}

#[test]
fn values_out_of_range_name_the_key() {
    for (kv, key) in [
        ("pacing_lead_ms = 5000", "pacing_lead_ms"),
        ("initial_bitrate = 10", "initial_bitrate"),
        ("session_timeout_ms = 10", "session_timeout_ms"),
        ("checkpoint_interval_ms = 0", "checkpoint_interval_ms"),
        ("udp_port_min = 80", "udp_port_min"),
        ("port = 0", "port"),
        ("enabled = \"yes\"", "enabled"),
    ] {
        let text = with_rtsp(kv);
        let line = one_line(&text);
        assert!(
            line.starts_with(&format!("box1.toml:{}: rtsp.{key}: ", line_of(&text, kv))),
            "{line}"
        );
    }
}

#[test]
fn an_enabled_rtsp_port_must_not_be_another_tcp_port_of_the_box() {
    let text = with_rtsp("enabled = true\nport = 80");
    assert_eq!(
        one_line(&text),
        format!(
            "box1.toml:{}: rtsp.port: port 80 is already service.port's: RTSP needs a port of its own (554 by default)",
            line_of(&text, "port = 80")
        )
    );
    let text = with_rtsp("enabled = true\nport = 9090");
    assert!(one_line(&text).contains("already admin.listen's"));
    // Off, the port is not judged against the others.
    ok(&with_rtsp("enabled = false\nport = 80"));
}
