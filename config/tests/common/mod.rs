//! What the config tests share: the smallest valid file and the ways to
//! read the one problem line `baton check-config` prints for a bad one.

#![allow(dead_code)]

use baton_config::*;

pub const KEY: &str = "5f3a9c0e7b214d86a1c4e0f29b7d3e615f3a9c0e7b214d86a1c4e0f29b7d3e61";

/// The smallest valid file: required keys only.
pub fn minimal() -> String {
    format!(
        r#"[box]
id = 1

[cluster]
key = "{KEY}"

[[cluster.members]]
id = 1
back_addr = "198.19.0.11:7400"

[[cluster.members]]
id = 2
back_addr = "198.19.0.12:7400"

[service]
ips = ["198.18.0.11"]

[dataplane]
backend = "afpacket"
interface = "front0"
workers = 2
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
"#
    )
}

/// `minimal()` with the first occurrence of `from` replaced by `to`.
pub fn edited(from: &str, to: &str) -> String {
    let text = minimal();
    assert!(text.contains(from), "test bug: {from:?} not in the file");
    text.replacen(from, to, 1)
}

/// 1-based line of the first line containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("test bug: {needle:?} not in the file"))
}

/// The lines `baton check-config box1.toml` would print.
pub fn error_lines(text: &str) -> Vec<String> {
    match parse(text, "box1.toml") {
        Ok(c) => panic!("expected an error, parsed {c:?}"),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

/// Asserts exactly one problem line, and returns it.
pub fn one_line(text: &str) -> String {
    let lines = error_lines(text);
    assert_eq!(lines.len(), 1, "expected one problem, got {lines:#?}");
    lines.into_iter().next().unwrap_or_default()
}

/// Parses `text`, which the test expects to be valid.
pub fn ok(text: &str) -> Config {
    parse(text, "box1.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}
