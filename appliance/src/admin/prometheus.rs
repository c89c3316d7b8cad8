//! The Prometheus text exposition format, version 0.0.4: one `# HELP` and one
//! `# TYPE` line per metric family, then its samples as
//! `name{label="value",...} value`, families contiguous, lines ended by `\n`.
//! (Reference: prometheus.io "Exposition formats", text-based format.)

use std::fmt::Write;

use super::source::Metric;

/// The Content-Type a scraper expects for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `metrics`: samples sharing a name are gathered under one
/// HELP/TYPE pair (the first sample's) in order of first appearance,
/// because the format forbids a family to appear twice. Samples with an
/// invalid metric or label name are left out rather than breaking the whole
/// scrape.
pub fn render(metrics: &[Metric]) -> String {
    let mut families: Vec<(&str, Vec<&Metric>)> = Vec::new();
    for m in metrics {
        if !valid_metric_name(&m.name) || !m.labels.iter().all(|(k, _)| valid_label_name(k)) {
            tracing::debug!(name = %m.name, "metric with an invalid name left out of /metrics");
            continue;
        }
        match families.iter_mut().find(|(name, _)| *name == m.name) {
            Some((_, samples)) => samples.push(m),
            None => families.push((&m.name, vec![m])),
        }
    }
    let mut out = String::new();
    for (name, samples) in families {
        let Some(first) = samples.first() else {
            continue;
        };
        let _ = writeln!(out, "# HELP {name} {}", escape_help(&first.help));
        let _ = writeln!(out, "# TYPE {name} {}", first.kind.as_str());
        for s in samples {
            out.push_str(name);
            if !s.labels.is_empty() {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", labels.join(","));
            }
            let _ = writeln!(out, " {}", value(s.value));
        }
    }
    out
}

/// The format's float: Go's ParseFloat syntax, with `NaN`, `+Inf`, `-Inf`.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust prints integral floats without a fraction ("42"), which the
        // format accepts.
        format!("{v}")
    }
}

/// HELP text escapes backslash and line feed.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
