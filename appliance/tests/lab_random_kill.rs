//! Random kills under mixed traffic and loss (issue 13): several rounds on
//! one three-box lab, each killing a box drawn at random at a random
//! moment and starting it again, while full downloads, range downloads and
//! keep-alive series run through every box with 0.5 % loss on the client's
//! link. What a user checks: every transfer byte-exact, every keep-alive
//! series on the one connection it opened, no RST on the wire (the capture
//! proven by the clients' FINs), and the survivors' logs proving that
//! connections were taken over.
//!
//! The trial prints its seed; `BATON_KILL_SEED=N` replays its draws.
mod common;
#[path = "common/trial.rs"]
mod trial;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use common::*;
use trial::Rng;

/// Rounds of kill-and-restart in one trial.
const ROUNDS: usize = 3;
/// How long each range download is (bytes of 50M.bin, from a drawn start).
const RANGE_LEN: u64 = 8 << 20;

/// One curl in the client namespace and the files it must leave behind,
/// each with the sha256 it must have.
struct Transfer {
    child: Child,
    what: String,
    expected: Vec<(PathBuf, String)>,
}

fn curl(g: &LabGuard, args: &[String]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &g.driver.ns("client"), "curl", "-sS"])
        .args(["--max-time", "150"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl")
}

/// `RANGE_LEN` bytes of 50M.bin from `start`, at `rate`, through box `n`.
fn range_download(g: &LabGuard, i: usize, n: u8, start: u64, reference: &[u8]) -> Transfer {
    let out = g.file(&format!("dl/range{i}"));
    let end = start + RANGE_LEN - 1;
    let url = baton_lab::curl::box_url(n, "/50M.bin");
    let child = curl(
        g,
        &[
            "--limit-rate".into(),
            "1M".into(),
            "-r".into(),
            format!("{start}-{end}"),
            "-o".into(),
            out.display().to_string(),
            url.clone(),
        ],
    );
    let slice = &reference[start as usize..=end as usize];
    Transfer {
        child,
        what: format!("{url} bytes {start}-{end}"),
        expected: vec![(out, sha256_hex(slice))],
    }
}

/// Four 1M.bin requests on one keep-alive connection through box `n`:
/// curl prints how many connections each needed (`num_connects`).
fn keep_alive_series(g: &LabGuard, i: usize, n: u8) -> Transfer {
    let url = baton_lab::curl::box_url(n, "/1M.bin");
    let sha = g.listed_sha("1M.bin");
    let mut args: Vec<String> = vec![
        "--limit-rate".into(),
        "400K".into(),
        "-w".into(),
        "%{num_connects}\\n".into(),
    ];
    let mut expected = Vec::new();
    for k in 0..4 {
        let out = g.file(&format!("dl/series{i}-{k}"));
        args.extend(["-o".into(), out.display().to_string(), url.clone()]);
        expected.push((out, sha.clone()));
    }
    Transfer {
        child: curl(g, &args),
        what: format!("keep-alive series {i} on {url}"),
        expected,
    }
}

/// Waits for every transfer; collects what went wrong.
fn finish(transfers: Vec<Transfer>) -> Vec<String> {
    let mut failures = Vec::new();
    for t in transfers {
        let out = t.child.wait_with_output().expect("curl wait");
        if !out.status.success() {
            failures.push(format!(
                "{}: curl {} {}",
                t.what,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        }
        if t.what.starts_with("keep-alive") {
            let connects: u64 = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.trim().parse::<u64>().ok())
                .sum();
            if connects != 1 {
                failures.push(format!(
                    "{}: {connects} connections for four requests",
                    t.what
                ));
            }
        }
        for (path, want) in t.expected {
            let got = sha256_file(&path);
            if got != want {
                failures.push(format!("{}: {} sha256 {got}", t.what, path.display()));
            }
        }
    }
    failures
}

#[test]
fn lab_random_kills_under_mixed_traffic_and_loss_lose_no_byte_and_send_no_rst() {
    let (mut draw, seed) = Rng::seeded("BATON_KILL_SEED");
    eprintln!("random kill trial: seed {seed} (replay with BATON_KILL_SEED={seed})");
    let g = LabGuard::up("btrk", &["--boxes", "3"]);
    // The reference copy the ranges are checked against, and every box's
    // cache warm, before the loss and the kills.
    for n in 1..=3u8 {
        download_identical(&g, n, "50M.bin");
        download_identical(&g, n, "1M.bin");
    }
    std::fs::create_dir_all(g.file("dl")).expect("download dir");
    let reference = {
        let out = g.file("dl/reference");
        let got = curl(
            &g,
            &[
                "-o".into(),
                out.display().to_string(),
                baton_lab::curl::box_url(1, "/50M.bin"),
            ],
        )
        .wait_with_output()
        .expect("curl");
        assert!(
            got.status.success(),
            "the reference download failed: {}",
            String::from_utf8_lossy(&got.stderr)
        );
        std::fs::read(&out).expect("reference copy")
    };
    assert_eq!(sha256_hex(&reference), g.listed_sha("50M.bin"));
    ok(g.lab(&["impair", "client", "--loss", "0.5"]));
    let rst = RstCapture::start(&g);

    // Full downloads last ~25 s, ranges ~8 s, series ~10 s: all under way
    // through the first kills.
    let mut downloads = Vec::new();
    let mut others = Vec::new();
    for n in 1..=3usize {
        downloads.push(start_download(&g, 10 + n, n, "50M.bin", "2M"));
        let start = draw.between(0, (50 << 20) - RANGE_LEN - 1);
        others.push(range_download(&g, n, n as u8, start, &reference));
        others.push(keep_alive_series(&g, n, n as u8));
    }
    sleep(Duration::from_millis(1500));
    let mut kills = Vec::new();
    for round in 0..ROUNDS {
        let victim = draw.between(1, 3);
        let down_ms = draw.between(300, 1500);
        let next_ms = draw.between(800, 2500);
        eprintln!("round {round}: kill box{victim}, start it {down_ms} ms later, next round {next_ms} ms after");
        ok(g.lab(&["kill", &format!("box{victim}")]));
        kills.push(victim);
        sleep(Duration::from_millis(down_ms));
        ok(g.lab(&["start", &format!("box{victim}")]));
        sleep(Duration::from_millis(next_ms));
    }

    let full = g.listed_sha("50M.bin");
    others.extend(downloads.into_iter().map(|d| Transfer {
        child: d.child,
        what: d.url,
        expected: vec![(d.out, full.clone())],
    }));
    let failures = finish(others);
    assert!(
        failures.is_empty(),
        "seed {seed}, kills {kills:?}: {} transfer(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Three downloads, three ranges and three series closed their
    // connections: nine client FINs at least prove the capture worked.
    rst.assert_none_with_fins(9);
    let restored = restored_by(&g, &[1, 2, 3], 1);
    assert!(
        restored >= 1,
        "seed {seed}, kills {kills:?}: no survivor logged a restored connection"
    );
}
