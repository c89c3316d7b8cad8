//! `[ftp]`: defaults, and each mistake of the table giving one line that
//! names the file, the line, the key and what was expected.

use baton_config::*;

const KEY: &str = "5f3a9c0e7b214d86a1c4e0f29b7d3e615f3a9c0e7b214d86a1c4e0f29b7d3e61";

/// A valid file with `ftp` appended as its `[ftp]` table.
fn with_ftp(ftp: &str) -> String {
    format!(
        r#"[box]
id = 1

[cluster]
key = "{KEY}"

[[cluster.members]]
id = 1
back_addr = "198.19.0.11:7400"

[service]
ips = ["198.18.0.11"]

[dataplane]
backend = "afpacket"
interface = "front0"
workers = 1
poll_mode = "adaptive"

[checkpoint]
segment_path = "/dev/shm/baton.seg"
slots = 1000
mode = "shared"

[cache]
origin = "http://198.19.0.2:80"
memory_bytes = 1048576

[admin]
listen = "198.19.0.11:9090"
token = "secret"

[ftp]
{ftp}
"#
    )
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("test bug: {needle:?} not in the file"))
}

fn one_line(text: &str) -> String {
    match parse(text, "box1.toml") {
        Ok(c) => panic!("expected an error, parsed {c:?}"),
        Err(e) => {
            let lines: Vec<String> = e.to_string().lines().map(str::to_string).collect();
            assert_eq!(lines.len(), 1, "expected one problem, got {lines:#?}");
            lines.into_iter().next().unwrap_or_default()
        }
    }
}

fn ok(text: &str) -> Config {
    parse(text, "box1.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
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
