//! `[tls]`: defaults, and every mistake of the table giving one line that
//! names the file, the line, the key and what was expected.

use baton_config::*;

mod common;

use common::*;

/// A valid file with `tls` appended as its `[tls]` table.
fn with_tls(tls: &str) -> String {
    format!("{}\n[tls]\n{tls}\n", minimal())
}

const PAIR: &str = "certificate = \"/etc/baton/cert.pem\"\nkey = \"/etc/baton/key.pem\"";

#[test]
fn a_file_without_tls_has_it_off_with_every_version_and_suite() {
    let text = with_tls("").replace("[tls]\n", "");
    let c = ok(&text);
    assert!(!c.tls.enabled);
    assert_eq!(c.tls.port, 443);
    assert_eq!(c.tls.certificate, None);
    assert!(c.tls.sni.is_empty());
    assert_eq!(c.tls.versions, vec![TlsVersion::Tls12, TlsVersion::Tls13]);
    assert_eq!(c.tls.suites.len(), 9);
    assert_eq!(
        c.tls.suite_ids(),
        vec![0x1301, 0x1302, 0x1303, 0xc02b, 0xc02c, 0xcca9, 0xc02f, 0xc030, 0xcca8]
    );
    assert_eq!(c.tls, TlsConfig::default());
}

#[test]
fn an_enabled_table_round_trips_through_to_toml() {
    let text = with_tls(&format!(
        "enabled = true\nport = 8443\n{PAIR}\nversions = [\"1.3\"]\nsuites = [\"TLS13_CHACHA20_POLY1305_SHA256\"]\n\n[[tls.sni]]\nname = \"WWW.Example.com\"\ncertificate = \"/etc/baton/www.pem\"\nkey = \"/etc/baton/www-key.pem\"\n"
    ));
    let c = ok(&text);
    assert!(c.tls.enabled);
    assert_eq!(c.tls.port, 8443);
    assert_eq!(c.tls.versions, vec![TlsVersion::Tls13]);
    assert_eq!(c.tls.suite_ids(), vec![0x1303]);
    assert_eq!(c.tls.sni.len(), 1);
    assert_eq!(
        c.tls.sni[0].name, "www.example.com",
        "names are lower-cased"
    );
    let pairs = c.tls.key_pairs();
    assert_eq!(pairs.len(), 2);
    assert_eq!(pairs[0].0, "tls");
    assert_eq!(pairs[1].0, "tls.sni[0]");
    assert_eq!(ok(&c.to_toml()), c);
}

#[test]
fn enabled_without_certificate_or_key_names_both() {
    let text = with_tls("enabled = true");
    let err = parse(&text, "box1.toml").expect_err("no files");
    let line = line_of(&text, "[tls]");
    assert_eq!(
        err.to_string(),
        format!(
            "box1.toml:{line}: tls.certificate: missing key (required when tls.enabled = true)\n\
             box1.toml:{line}: tls.key: missing key (required when tls.enabled = true)"
        )
    );
}

#[test]
fn a_certificate_without_its_key_is_refused_even_when_disabled() {
    let text = with_tls("certificate = \"/etc/baton/cert.pem\"");
    let line = line_of(&text, "[tls]");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: tls.key: missing key (tls.certificate is given: give both or neither)")
    );
}

#[test]
fn a_relative_path_is_refused() {
    let text = with_tls("enabled = true\ncertificate = \"cert.pem\"\nkey = \"/k.pem\"");
    let line = line_of(&text, "cert.pem");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: tls.certificate: expected an absolute path, found string \"cert.pem\"")
    );
}

#[test]
fn an_unknown_version_lists_the_known_ones() {
    let text = with_tls("versions = [\"1.3\", \"1.1\"]");
    let line = line_of(&text, "versions");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: tls.versions[1]: expected one of \"1.2\", \"1.3\", found string \"1.1\"")
    );
}

#[test]
fn empty_or_repeated_versions_and_suites_are_refused() {
    for (tls, key, msg) in [
        ("versions = []", "tls.versions", "expected at least one".to_string()),
        ("versions = [\"1.2\", \"1.2\"]", "tls.versions", "\"1.2\" is listed twice".to_string()),
        ("suites = []", "tls.suites", "expected at least one".to_string()),
        (
            "suites = [\"TLS13_AES_128_GCM_SHA256\", \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\", \"TLS13_AES_128_GCM_SHA256\"]",
            "tls.suites",
            "\"TLS13_AES_128_GCM_SHA256\" is listed twice".to_string(),
        ),
    ] {
        let text = with_tls(tls);
        let line = line_of(&text, tls);
        assert_eq!(one_line(&text), format!("box1.toml:{line}: {key}: {msg}"), "{tls}");
    }
}

#[test]
fn an_unknown_suite_is_refused() {
    let text = with_tls("suites = [\"TLS_RSA_WITH_AES_128_CBC_SHA\"]");
    let got = one_line(&text);
    let line = line_of(&text, "suites");
    assert!(
        got.starts_with(&format!(
            "box1.toml:{line}: tls.suites[0]: expected one of \"TLS13_AES_128_GCM_SHA256\", "
        )),
        "{got}"
    );
    assert!(
        got.ends_with("found string \"TLS_RSA_WITH_AES_128_CBC_SHA\""),
        "{got}"
    );
}

#[test]
fn a_version_without_a_suite_of_its_own_is_refused() {
    let text = with_tls("suites = [\"TLS13_AES_128_GCM_SHA256\"]");
    let line = line_of(&text, "suites");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: tls.suites: no suite for TLS 1.2 (listed in tls.versions): add one of its suites (TLS_ECDHE_…) or remove the version")
    );
    ok(&with_tls(
        "versions = [\"1.3\"]\nsuites = [\"TLS13_AES_128_GCM_SHA256\"]",
    ));
}

#[test]
fn the_https_port_must_be_free_when_enabled() {
    for (port, owner) in [
        (80, "service.port"),
        (9090, "admin.listen"),
        (7400, "checkpoint.replication_port"),
        (
            7401,
            "the heartbeat port after cluster.members[0].back_addr",
        ),
    ] {
        let text = with_tls(&format!("enabled = true\nport = {port}\n{PAIR}"));
        let line = line_of(&text, "port = ");
        assert_eq!(
            one_line(&text),
            format!("box1.toml:{line}: tls.port: port {port} is already {owner}'s: HTTPS needs a port of its own (443 by default)"),
        );
        // Off, the port is not taken and not judged.
        ok(&with_tls(&format!("port = {port}\n{PAIR}")));
    }
}

#[test]
fn the_raft_port_is_taken_in_replicated_mode_only() {
    let text = with_tls(&format!("enabled = true\nport = 7402\n{PAIR}"));
    ok(&text);
    let text = text
        .replace("mode = \"shared\"", "mode = \"replicated\"")
        .replace("[cache]", "[failure]\nmissed = 30\n\n[cache]");
    let line = line_of(&text, "port = 7402");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: tls.port: port 7402 is already raft.port's: HTTPS needs a port of its own (443 by default)"),
    );
}

#[test]
fn sni_entries_need_a_valid_unique_name_and_both_files() {
    let sni = |name: &str| {
        format!("\n[[tls.sni]]\nname = \"{name}\"\ncertificate = \"/c.pem\"\nkey = \"/k.pem\"\n")
    };
    let text = with_tls(&format!("{}{}", sni("a.example"), sni("A.example")));
    let line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("name = "))
        .map(|(i, _)| i + 1)
        .collect::<Vec<_>>();
    assert_eq!(
        one_line(&text),
        format!(
            "box1.toml:{}: tls.sni[1].name: duplicate SNI name \"a.example\" (first at line {})",
            line[1], line[0]
        )
    );
    for bad in [
        "198.18.0.11",
        "a..b",
        "-a.example",
        "a.example.",
        "",
        "a_b.example",
    ] {
        let text = with_tls(&sni(bad));
        let got = one_line(&text);
        assert!(
            got.ends_with(&format!(
                "tls.sni[0].name: expected a DNS name like www.example.com, found string {bad:?}"
            )),
            "{bad:?}: {got}"
        );
    }
    let text = with_tls("\n[[tls.sni]]\nname = \"a.example\"\ncertificate = \"/c.pem\"\n");
    let got = one_line(&text);
    assert!(got.ends_with("tls.sni[0].key: missing key"), "{got}");
}

#[test]
fn sni_must_be_an_array_of_tables() {
    let text = with_tls("sni = \"a.example\"");
    let line = line_of(&text, "sni =");
    assert_eq!(
        one_line(&text),
        format!("box1.toml:{line}: tls.sni: expected an array of tables ([[tls.sni]]), found string \"a.example\"")
    );
}
