//! `[ftp]`: defaults, and each mistake of the table giving one line that
//! names the file, the line, the key and what was expected.

use baton_config::*;

mod common;

use common::*;

/// A valid file with `ftp` appended as its `[ftp]` table.
fn with_ftp(ftp: &str) -> String {
    format!("{}\n[ftp]\n{ftp}\n", minimal())
}

#[test]
fn a_file_without_ftp_has_it_off_with_the_defaults() {
    let c = ok(&with_ftp("").replace("[ftp]\n", ""));
    assert_eq!(c.ftp, FtpConfig::default());
    assert!(!c.ftp.enabled);
    assert_eq!(c.ftp.port, 21);
    assert_eq!(
        (c.ftp.passive_port_min, c.ftp.passive_port_max),
        (40000, 40999)
    );
    assert_eq!(c.ftp.max_command_bytes, 512);
    assert_eq!(c.ftp.idle_timeout_ms, 300_000);
}

#[test]
fn an_enabled_table_round_trips_through_to_toml() {
    let c = ok(&with_ftp(
        "enabled = true\nport = 2121\npassive_port_min = 50000\npassive_port_max = 50000\nmax_command_bytes = 1024\nidle_timeout_ms = 60000\n",
    ));
    assert!(c.ftp.enabled);
    assert_eq!(c.ftp.port, 2121);
    assert!(c.ftp.is_passive_port(50000) && !c.ftp.is_passive_port(50001));
    assert_eq!(ok(&c.to_toml()), c);
}

#[test]
fn an_empty_passive_range_is_refused() {
    let text = with_ftp("passive_port_min = 50000\npassive_port_max = 49999\n");
    assert_eq!(
        one_line(&text),
        format!(
            "box1.toml:{}: ftp.passive_port_max: 49999 is below ftp.passive_port_min (50000): the passive range would be empty",
            line_of(&text, "passive_port_max")
        )
    );
}

#[test]
fn values_out_of_range_are_refused() {
    let text = with_ftp("passive_port_min = 80\n");
    let line = one_line(&text);
    assert!(
        line.starts_with(&format!(
            "box1.toml:{}: ftp.passive_port_min: ",
            line_of(&text, "passive_port_min")
        )),
        "{line}"
    );
    let text = with_ftp("max_command_bytes = 8\n");
    assert!(one_line(&text).contains("ftp.max_command_bytes"));
    let text = with_ftp("idle_timeout_ms = 0\n");
    assert!(one_line(&text).contains("ftp.idle_timeout_ms"));
    let text = with_ftp("bounce = true\n");
    assert!(one_line(&text).contains("ftp.bounce"));
}

#[test]
fn an_enabled_ftp_takes_no_other_services_port() {
    let text = with_ftp("enabled = true\nport = 80\n");
    assert_eq!(
        one_line(&text),
        format!(
            "box1.toml:{}: ftp.port: port 80 is already service.port's: FTP needs a port of its own (21 by default)",
            line_of(&text, "port = 80")
        )
    );
    let text = with_ftp("enabled = true\npassive_port_min = 9000\npassive_port_max = 9100\n");
    assert_eq!(
        one_line(&text),
        format!(
            "box1.toml:{}: ftp.passive_port_min: the passive range 9000-9100 holds admin.listen (9090)",
            line_of(&text, "passive_port_min")
        )
    );
    // Disabled, the same ports are only kept for later.
    ok(&with_ftp("enabled = false\nport = 80\n"));
}

#[test]
fn ftp_and_rtsp_do_not_share_a_port() {
    // Each service's rule once listed the taken ports on its own and did
    // not see the other: an FTP on RTSP's port was accepted.
    let text = format!(
        "{}\n[rtsp]\nenabled = true\nport = 2121\n",
        with_ftp("enabled = true\nport = 2121\n")
    );
    assert_eq!(
        one_line(&text),
        format!(
            "box1.toml:{}: ftp.port: port 2121 is already rtsp.port's: FTP needs a port of its own (21 by default)",
            line_of(&text, "port = 2121")
        )
    );
    let text = format!(
        "{}\n[rtsp]\nenabled = true\nport = 40500\n",
        with_ftp("enabled = true\n")
    );
    assert_eq!(
        one_line(&text),
        format!(
            "box1.toml:{}: ftp.passive_port_min: the passive range 40000-40999 holds rtsp.port (40500)",
            line_of(&text, "enabled = true")
        )
    );
}
