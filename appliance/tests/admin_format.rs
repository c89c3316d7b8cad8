//! The admin API's formats as values, without sockets: the Prometheus text
//! exposition (escaping, families, special floats), JSON string escaping,
//! the bearer check and percent-decoding of targets.

use baton::admin::auth::{self, Auth};
use baton::admin::{json, prometheus, route, Metric, MetricKind};

#[test]
fn samples_of_one_name_share_one_help_and_type_in_first_seen_order() {
    let text = prometheus::render(&[
        Metric::error("bad_request", 2),
        Metric::gauge("baton_connections", "Client connections.", 7.0),
        Metric::error("header_too_large", 1),
    ]);
    assert_eq!(
        text,
        "# HELP baton_errors_total Errors of the box, by kind.\n\
         # TYPE baton_errors_total counter\n\
         baton_errors_total{kind=\"bad_request\"} 2\n\
         baton_errors_total{kind=\"header_too_large\"} 1\n\
         # HELP baton_connections Client connections.\n\
         # TYPE baton_connections gauge\n\
         baton_connections 7\n"
    );
}

#[test]
fn label_values_and_help_are_escaped_as_the_text_format_says() {
    // Exposition formats: label values escape \, " and line feed; HELP
    // escapes \ and line feed.
    let m = Metric::counter("x_total", "two\nlines \\ here", 1).with_label("url", "/a\"b\\c\nd");
    assert_eq!(
        prometheus::render(&[m]),
        "# HELP x_total two\\nlines \\\\ here\n# TYPE x_total counter\nx_total{url=\"/a\\\"b\\\\c\\nd\"} 1\n"
    );
}

#[test]
fn invalid_metric_or_label_names_are_left_out_not_rendered() {
    let text = prometheus::render(&[
        Metric::counter("9starts_with_digit", "h", 1),
        Metric::counter("has-dash_total", "h", 1),
        Metric::counter("ok_total", "h", 1).with_label("bad label", "v"),
        Metric::counter("fine:total", "h", 5),
    ]);
    assert_eq!(
        text,
        "# HELP fine:total h\n# TYPE fine:total counter\nfine:total 5\n"
    );
}

#[test]
fn special_and_fractional_values_use_the_formats_spelling() {
    let text = prometheus::render(&[
        Metric::gauge("a", "h", f64::NAN),
        Metric::gauge("b", "h", f64::INFINITY),
        Metric::gauge("c", "h", f64::NEG_INFINITY),
        Metric::gauge("d", "h", 0.25),
        Metric::gauge("e", "h", -3.0),
    ]);
    let values: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(values, ["a NaN", "b +Inf", "c -Inf", "d 0.25", "e -3"]);
}

#[test]
fn dataplane_counters_get_the_baton_dataplane_prefix_and_total_suffix() {
    let m = Metric::dataplane("drop_ipv4_bad_checksum", 3);
    assert_eq!(m.name, "baton_dataplane_drop_ipv4_bad_checksum_total");
    assert_eq!(m.kind, MetricKind::Counter);
    assert_eq!(m.value, 3.0);
}

#[test]
fn json_strings_escape_quotes_backslashes_and_control_characters() {
    // RFC 8259 §7.
    assert_eq!(json::string("a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(
        json::string("line\nnext\ttab\u{1}"),
        r#""line\nnext\ttab\u0001""#
    );
    assert_eq!(json::string("café /x"), "\"café /x\"");
}

#[test]
fn bearer_check_grants_only_the_exact_token() {
    let t = "tok3n";
    assert_eq!(auth::check(Some(b"Bearer tok3n"), t), Auth::Granted);
    assert_eq!(auth::check(Some(b"BEARER   tok3n  "), t), Auth::Granted);
    assert_eq!(auth::check(Some(b"Bearer tok3"), t), Auth::Invalid);
    assert_eq!(auth::check(Some(b"Bearer tok3nn"), t), Auth::Invalid);
    // A scheme without a token carries no credentials at all.
    assert_eq!(auth::check(Some(b"Bearer "), t), Auth::Missing);
    assert_eq!(auth::check(Some(b"Basic dG9rM24="), t), Auth::Missing);
    assert_eq!(auth::check(Some(b"tok3n"), t), Auth::Missing);
    assert_eq!(auth::check(None, t), Auth::Missing);
}

#[test]
fn constant_time_eq_is_plain_equality_in_its_answers() {
    assert!(auth::constant_time_eq(b"", b""));
    assert!(auth::constant_time_eq(b"abc", b"abc"));
    assert!(!auth::constant_time_eq(b"abc", b"abd"));
    assert!(!auth::constant_time_eq(b"abc", b"abcd"));
}

#[test]
fn percent_decoding_accepts_rfc3986_escapes_and_rejects_broken_ones() {
    assert_eq!(
        route::percent_decode("%2F1M.bin").as_deref(),
        Some("/1M.bin")
    );
    assert_eq!(route::percent_decode("a+b%20c").as_deref(), Some("a+b c"));
    assert_eq!(route::percent_decode("%e2%82%ac").as_deref(), Some("€"));
    assert_eq!(route::percent_decode("%2"), None);
    assert_eq!(route::percent_decode("%zz"), None);
    assert_eq!(route::percent_decode("%ff"), None, "not UTF-8");
}

#[test]
fn every_answer_closes_the_connection_and_states_its_length() {
    let bytes = route::Response::error(404, "no")
        .with_header("X-Test", "1")
        .to_bytes();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: close"), "{head}");
    assert!(
        head.contains(&format!("\r\nContent-Length: {}", body.len())),
        "{head}"
    );
    assert!(head.contains("\r\nX-Test: 1"), "{head}");
    assert_eq!(body, r#"{"error":"no"}"#);
}

#[test]
fn status_shows_the_agreed_view_only_for_a_box_that_keeps_one() {
    use baton::admin::{StatusReport, ViewReport};
    let without = json::status(&StatusReport::default());
    assert!(!without.contains("\"view\""), "{without}");
    let report = StatusReport {
        view: Some(ViewReport {
            number: 5,
            members: vec![(1, 1), (2, 3)],
            proposer: 1,
            reason: Some("box 3 (epoch 1) silent for 95 ms".into()),
            phases: vec![
                (1, "member".into()),
                (2, "member".into()),
                (3, "out".into()),
            ],
            changes: 4,
            claims_lost: 0,
            last_commit_us: None,
            raft: None,
        }),
        ..StatusReport::default()
    };
    let with = json::status(&report);
    assert!(
        with.ends_with(
            r#","view":{"number":5,"members":[{"id":1,"epoch":1},{"id":2,"epoch":3}],"proposer":1,"reason":"box 3 (epoch 1) silent for 95 ms","phases":[{"id":1,"phase":"member"},{"id":2,"phase":"member"},{"id":3,"phase":"out"}],"changes":4,"claims_lost":0,"last_commit_us":null,"raft":null}}"#
        ),
        "{with}"
    );
    let replicated = StatusReport {
        view: report.view.clone().map(|v| ViewReport {
            raft: Some(baton::admin::RaftReport {
                leader: Some(2),
                term: 7,
                lease_age_ms: Some(40),
                lease_ms: 600,
            }),
            ..v
        }),
        ..StatusReport::default()
    };
    let with = json::status(&replicated);
    assert!(
        with.ends_with(
            r#""last_commit_us":null,"raft":{"leader":2,"term":7,"lease_age_ms":40,"lease_ms":600}}}"#
        ),
        "{with}"
    );
}
