//! `baton demo`: LAB.md's canonical check, narrated. A three-box lab, a real
//! curl download from box 1 through the userspace stack, box 1 killed
//! mid-transfer, the outcome printed (curl's exit code, sha256 against the
//! origin's list), and the lab removed whatever happened. It drives the lab
//! only through [`crate::driver`], as a user would.
use std::process::{ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::bail;
use crate::error::{Context, Result};
use clap::Args;
use sha2::{Digest, Sha256};

use crate::curl::{box_url, Download};
use crate::driver::Lab;

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

/// Runs `baton lab ARGS…` on the demo's lab, failing on a non-zero exit.
fn run_lab(lab: &Lab, args: &[&str]) -> Result<()> {
    let status = lab
        .command(args)
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
    // The demo's own binary runs the lab; `up` refuses an existing lab, so
    // the handle owns (and removes) the lab only once it is built.
    let mut lab = Lab::attach(&crate::driver::baton_exe(), &args.prefix);
    run_lab(&lab, &["up", "--boxes", "3"])?;
    lab.own();
    let lab = RemovedOnDrop(lab);
    run_lab(&lab.0, &["status"])?;

    let run_dir = lab.0.state_dir();
    let expected = lab.0.listed_sha256(&args.object)?;
    let out = run_dir.join(format!("demo-{}", args.object));
    let url = box_url(1, &format!("/{}", args.object));
    println!("==> client: curl --limit-rate {} {url}", args.rate);
    let out_str = out.to_string_lossy().into_owned();
    let mut curl = lab
        .0
        .client_download(&Download::new(&url, &out_str).limit_rate(&args.rate))
        .stdin(Stdio::null())
        .spawn()
        .context("starting curl in the client namespace")?;
    let started = Instant::now();
    thread::sleep(Duration::from_secs(args.kill_after));
    println!(
        "==> {:.1} s into the transfer: killing box1 (SIGKILL, no goodbye)",
        started.elapsed().as_secs_f64()
    );
    run_lab(&lab.0, &["kill", "box1"])?;
    let status = curl.wait().context("waiting for curl")?;
    let elapsed = started.elapsed();
    run_lab(&lab.0, &["status"])?;

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

/// The demo's lab, removed when the demo ends, however it ends.
struct RemovedOnDrop(Lab);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        println!("==> removing the lab");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
