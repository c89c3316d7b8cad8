//! Suite criterion: the micro-benchmarks (`cargo bench -p baton-benches`),
//! run as a child process and read back from their output. No lab.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::harness::report::md_table;
use crate::suites::bench::*;

/// Runs the criterion benches (`cargo bench -p baton-benches`) and reads
/// their `time: [low mid high]` lines.
pub(crate) fn criterion(quick: bool, out: &Path) -> Result<(Value, String)> {
    progress("suite criterion: cargo bench -p baton-benches");
    let mut cmd = Command::new("cargo");
    cmd.args(["bench", "-p", "baton-benches", "--benches", "--"]);
    if quick {
        cmd.args([
            "--quick",
            "--warm-up-time",
            "0.2",
            "--measurement-time",
            "0.5",
        ]);
    }
    let output = cmd.output().context("running cargo bench")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    std::fs::write(out.join("raw").join("criterion.txt"), &text)?;
    if !output.status.success() {
        progress(format!(
            "cargo bench failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    let parsed = parse_criterion(&text);
    let rows: Vec<Vec<String>> = parsed
        .iter()
        .map(|(n, t)| vec![n.clone(), t.clone()])
        .collect();
    progress(format!("  {} criterion benchmarks", rows.len()));
    let md = format!(
        "## Micro-benchmarks (criterion)\n\n`cargo bench -p baton-benches{}`\n\n{}\n",
        if quick { " -- --quick" } else { "" },
        md_table(&["benchmark", "time [low mid high]"], &rows)
    );
    Ok((json!(parsed.into_iter().collect::<BTreeMap<_, _>>()), md))
}

/// `name   time:   [1.0 µs 1.1 µs 1.2 µs]`, the name possibly on the line
/// before when it is long.
fn parse_criterion(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut last_name = String::new();
    for line in text.lines() {
        // Only `time:` lines with a duration ([1.0 ns ...]); criterion's
        // `change:` lines carry percentages.
        if let Some(pos) = line.find("time:").filter(|_| !line.contains('%')) {
            let name = line[..pos].trim();
            let name = if name.is_empty() {
                last_name.clone()
            } else {
                name.to_string()
            };
            let value = line[pos + 5..]
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            if !name.is_empty() {
                out.push((name, value));
            }
        } else if !line.starts_with(' ') && !line.trim().is_empty() {
            // Benchmark ids have no spaces; "Found 3 outliers ..." is no name.
            last_name = if line.trim().contains(' ') {
                String::new()
            } else {
                line.trim().to_string()
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criterion_names_on_their_own_line_are_kept() {
        let text = "Benchmarking x\nshmem/commit   time:   [1.0 µs 1.1 µs 1.2 µs]\ntcp/a_very_long_benchmark_name_here\n                        time:   [5.0 ns 5.1 ns 5.2 ns]\n                 change:\n                        time:   [+10.2% +11.8% +13.6%] (p = 0.00 < 0.05)\nFound 11 outliers among 100 measurements (11.00%)\n                        time:   [1 ns 2 ns 3 ns]\n";
        let p = parse_criterion(text);
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0],
            (
                "shmem/commit".to_string(),
                "1.0 µs 1.1 µs 1.2 µs".to_string()
            )
        );
        assert_eq!(p[1].0, "tcp/a_very_long_benchmark_name_here");
    }
}
