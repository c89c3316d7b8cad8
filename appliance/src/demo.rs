//! `baton demo`: LAB.md's canonical check, narrated. A three-box lab, a real
//! curl download from box 1 through the userspace stack, box 1 killed
//! mid-transfer, the outcome printed (curl's exit code, sha256 against the
//! origin's list), and the lab removed whatever happened.
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use sha2::{Digest, Sha256};

/// Arguments of `baton demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Lab prefix for the demo's namespaces (a lab with this prefix must not exist).
    #[arg(long, default_value = "batondemo")]
    prefix: String,
    /// Object to download (one of the lab's objects).
    #[arg(long, default_value = "50M.bin")]
    object: String,
    /// curl's --limit-rate, so the kill lands mid-transfer.
    #[arg(long, default_value = "5M")]
    rate: String,
    /// Seconds into the transfer at which box 1 is killed.
    #[arg(long, default_value_t = 4)]
    kill_after: u64,
}

/// Removes the demo's lab when the demo ends, however it ends.
struct LabGuard {
    prefix: String,
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        println!("==> removing the lab");
        let _ = lab_command(&self.prefix, &["down"]).status();
    }
}

fn lab_command(prefix: &str, args: &[&str]) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("baton"));
    let mut cmd = Command::new(exe);
    cmd.arg("lab").args(args).arg("--prefix").arg(prefix);
    cmd
}

fn run_lab(prefix: &str, args: &[&str]) -> Result<()> {
    let status = lab_command(prefix, args)
        .status()
        .with_context(|| format!("running baton lab {}", args.join(" ")))?;
    if !status.success() {
        bail!("baton lab {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs the demo; the exit code says whether the download survived.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    println!("==> building a three-box lab (prefix {})", args.prefix);
    run_lab(&args.prefix, &["up", "--boxes", "3"])?;
    let _guard = LabGuard {
        prefix: args.prefix.clone(),
    };
    run_lab(&args.prefix, &["status"])?;

    let run_dir = PathBuf::from("/run/baton-lab").join(&args.prefix);
    let expected = expected_sha256(&run_dir, &args.object)?;
    let out = run_dir.join(format!("demo-{}", args.object));
    let url = format!("http://198.18.0.11/{}", args.object);
    println!("==> client: curl --limit-rate {} {url}", args.rate);
    let out_str = out.to_string_lossy().into_owned();
    let mut curl = Command::new("ip")
        .args(["netns", "exec", &format!("{}-client", args.prefix)])
        .args([
            "curl",
            "-sS",
            "--max-time",
            "120",
            "--limit-rate",
            &args.rate,
        ])
        .args(["-o", &out_str, &url])
        .stdin(Stdio::null())
        .spawn()
        .context("starting curl in the client namespace")?;
    let started = Instant::now();
    thread::sleep(Duration::from_secs(args.kill_after));
    println!(
        "==> {:.1} s into the transfer: killing box1 (SIGKILL, no goodbye)",
        started.elapsed().as_secs_f64()
    );
    run_lab(&args.prefix, &["kill", "box1"])?;
    let status = curl.wait().context("waiting for curl")?;
    let elapsed = started.elapsed();
    run_lab(&args.prefix, &["status"])?;

    let got = std::fs::read(&out).map(|bytes| hex(&Sha256::digest(&bytes)));
    println!("==> result after {:.1} s", elapsed.as_secs_f64());
    println!("    curl exit code: {}", status.code().unwrap_or(-1));
    match &got {
        Ok(sum) => println!(
            "    sha256 {sum} {}",
            if *sum == expected {
                "matches the origin's"
            } else {
                "DIFFERS from the origin's"
            }
        ),
        Err(err) => println!("    no output file: {err}"),
    }
    let survived = status.success() && got.as_deref().ok() == Some(expected.as_str());
    if survived {
        println!("==> the download survived the death of its box");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "==> the download did NOT survive (see the box logs under {})",
            run_dir.display()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// The sha256 the lab recorded for `object` in objects.sha256.
fn expected_sha256(run_dir: &std::path::Path, object: &str) -> Result<String> {
    let list = run_dir.join("objects.sha256");
    let text =
        std::fs::read_to_string(&list).with_context(|| format!("reading {}", list.display()))?;
    text.lines()
        .filter_map(|line| line.split_once(char::is_whitespace))
        .find(|(_, name)| name.trim().trim_start_matches('*').rsplit('/').next() == Some(object))
        .map(|(sum, _)| sum.to_string())
        .with_context(|| format!("{object} is not listed in {}", list.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
