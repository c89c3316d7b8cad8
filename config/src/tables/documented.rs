//! Every declared key is documented in the example file and in
//! `docs/CONFIG.md`, and neither documents a key that is not declared: a
//! key cannot be added (or renamed) in one place only.

use std::collections::BTreeSet;

use super::Config;
use crate::schema::{flatten, Table};

/// The documented example (what `baton_config::EXAMPLE` holds).
const EXAMPLE: &str = include_str!("../../baton.example.toml");

/// `(table path, key)` of every declared key; the root table's path is "".
fn declared() -> BTreeSet<(String, String)> {
    let mut keys = Vec::new();
    flatten("", &Config::keys(), &mut keys);
    keys.into_iter()
        .map(|(path, doc)| {
            assert!(!doc.trim().is_empty(), "{path} has no doc line");
            match path.rsplit_once('.') {
                Some((table, key)) => (table.to_string(), key.to_string()),
                None => (String::new(), path),
            }
        })
        .collect()
}

/// A header `[a.b]` or `[[a.b]]` as the key `b` of table `a`.
fn header_key(header: &str) -> Option<(String, String)> {
    let name = header.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
    {
        return None;
    }
    Some(match name.rsplit_once('.') {
        Some((table, key)) => (table.to_string(), key.to_string()),
        None => (String::new(), name.to_string()),
    })
}

fn is_key(word: &str) -> bool {
    word.starts_with(|c: char| c.is_ascii_lowercase())
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `(table, key)` of every key the example mentions: table headers, and
/// `key = value` lines, commented out or not (an optional key without a
/// sensible example value is shown commented out).
fn in_example() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut table = String::new();
    for line in EXAMPLE.lines().map(str::trim) {
        if line.starts_with('[') {
            if let Some((parent, key)) = header_key(line) {
                table = if parent.is_empty() {
                    key.clone()
                } else {
                    format!("{parent}.{key}")
                };
                out.insert((parent, key));
            }
            continue;
        }
        let code = line.trim_start_matches('#').trim_start();
        if let Some((key, _)) = code.split_once(" = ") {
            if is_key(key) {
                out.insert((table.clone(), key.to_string()));
            }
        }
    }
    out
}

/// `(table, key)` of every key the tables of `docs/CONFIG.md` mention: a
/// row's first cell names the table; in its last cell each `` `key` `` is
/// a key of that table, and after a `` `[[sub]]` `` of that sub-table.
fn in_config_md(text: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for row in text.lines().filter(|l| l.starts_with("| `[")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (Some(first), Some(last)) = (cells.get(1), cells.get(cells.len().saturating_sub(2)))
        else {
            continue;
        };
        let Some((parent, key)) = header_key(first.trim_matches('`')) else {
            continue;
        };
        let mut table = if parent.is_empty() {
            key.clone()
        } else {
            format!("{parent}.{key}")
        };
        out.insert((parent, key));
        for (i, code) in last.split('`').enumerate() {
            if i % 2 == 0 {
                continue;
            }
            if code.starts_with('[') {
                if let Some((parent, key)) = header_key(code) {
                    table = format!("{parent}.{key}");
                    out.insert((parent, key));
                }
            } else if is_key(code) {
                out.insert((table.clone(), code.to_string()));
            }
        }
    }
    out
}

fn assert_same(what: &str, documented: &BTreeSet<(String, String)>) {
    let declared = declared();
    let missing: Vec<_> = declared.difference(documented).collect();
    let unknown: Vec<_> = documented.difference(&declared).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{what}: declared but not documented: {missing:?}; documented but not declared: {unknown:?}"
    );
}

#[test]
fn the_example_mentions_every_declared_key_and_no_other() {
    assert_same("config/baton.example.toml", &in_example());
}

#[test]
fn config_md_lists_every_declared_key_and_no_other() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIG.md");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_same("docs/CONFIG.md", &in_config_md(&text));
}

#[test]
fn the_declarations_hold_every_key_of_every_table() {
    let declared = declared();
    assert!(
        declared.len() >= 55,
        "only {} keys declared",
        declared.len()
    );
    for (table, key) in [
        ("", "box"),
        ("cluster.members", "back_addr"),
        ("dataplane.dpdk", "idle_sleep_us"),
        ("limits", "max_upload_bytes"),
    ] {
        assert!(
            declared.contains(&(table.to_string(), key.to_string())),
            "{table} {key}"
        );
    }
}
