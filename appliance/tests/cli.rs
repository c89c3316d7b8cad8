//! The command line as an operator meets it: `check-config` exit codes and
//! messages, `--help` on every subcommand.
use std::process::Command;

fn baton() -> Command {
    Command::new(env!("CARGO_BIN_EXE_baton"))
}

fn example_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/baton.example.toml")
}

/// The example with its published key and token replaced by secret ones,
/// as an operator must.
fn example_with_secrets() -> String {
    std::fs::read_to_string(example_path())
        .unwrap()
        .replace(baton_config::EXAMPLE_KEY, &"5a".repeat(32))
        .replace(baton_config::EXAMPLE_TOKEN, "a-secret-token")
}

#[test]
fn check_config_accepts_the_documented_example_once_its_secrets_are_changed() {
    let refused = baton()
        .arg("check-config")
        .arg(example_path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("cluster.key: this is the example's key"),
        "{stderr}"
    );
    assert!(
        stderr.contains("admin.token: this is the example's token"),
        "{stderr}"
    );
    let dir = std::env::temp_dir().join(format!("baton-cli-ok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("box1.toml");
    std::fs::write(&file, example_with_secrets()).unwrap();
    let out = baton().arg("check-config").arg(&file).output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
}

#[test]
fn check_config_names_every_problem_with_its_line_and_exits_nonzero() {
    let example = example_with_secrets();
    // Three problems: an unknown key, a wrong type, a bad address.
    let broken = example
        .replacen("[box]\n", "[box]\ncolour = \"blue\"\n", 1)
        .replacen("workers = ", "workers = \"two\" # was ", 1)
        .replacen("ips = [\"", "ips = [\"not-an-ip\", \"", 1);
    let dir = std::env::temp_dir().join(format!("baton-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.toml");
    std::fs::write(&file, broken).unwrap();
    let out = baton().arg("check-config").arg(&file).output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "one line per problem, got:\n{stderr}");
    for (needle, line) in [
        ("box.colour", &lines),
        ("dataplane.workers", &lines),
        ("service.ips", &lines),
    ] {
        let hit = line
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line names {needle}:\n{stderr}"));
        assert!(
            hit.starts_with(&format!("{}:", file.display())),
            "line names the file: {hit}"
        );
        let line_no = hit.split(':').nth(1).unwrap_or("");
        assert!(
            line_no.parse::<usize>().is_ok(),
            "line carries a line number: {hit}"
        );
    }
}

#[test]
fn check_config_on_a_missing_file_fails_clearly() {
    let out = baton()
        .arg("check-config")
        .arg("/nonexistent/box.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/box.toml"));
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["run", "check-config", "status", "lab", "demo"] {
        let out = baton().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "baton {sub} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "baton {sub} --help:\n{text}");
    }
}
