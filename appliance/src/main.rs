//! `baton`: the appliance binary and its tools.
//!
//! This file is the binary's edge: command-line parsing, logging set-up, and
//! errors with context (anyhow). The work lives in the `baton` library:
//! `run` is one box, `status` reads the segment's box table; `lab` (the
//! one-machine test cluster) and `demo` (the whole story in one command)
//! are `baton-lab`'s, dispatched from here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use baton::{admin, logging, run, status, tls_files};
use clap::{Args, Parser, Subcommand};

/// Baton: a kernel-bypass proxy-cache appliance whose TCP connections survive
/// the death of the box that serves them.
#[derive(Parser, Debug)]
#[command(name = "baton", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one appliance box from its configuration file (needs root for the dataplane).
    Run(RunArgs),
    /// Check a configuration file: prints OK, or one line per problem and exits 1.
    CheckConfig {
        /// The configuration file to check.
        file: PathBuf,
    },
    /// Show the boxes of a cluster as the checkpoint segment's box table sees them.
    Status {
        /// Any box's configuration file (names the segment).
        #[arg(long)]
        config: PathBuf,
    },
    /// Drain a box through its admin API: its connections move to the other
    /// boxes with exact final checkpoints; then it can be stopped.
    Drain {
        /// The configuration file of the box to drain (names its admin API).
        #[arg(long)]
        config: PathBuf,
    },
    /// Move connections from one box to another through the source box's
    /// admin API (rebalancing): exact final checkpoints, no reset.
    Migrate {
        /// The configuration file of the box the connections leave.
        #[arg(long)]
        config: PathBuf,
        /// The id of the box that adopts them.
        #[arg(long)]
        to: u16,
        /// How many connections to move.
        #[arg(long)]
        count: usize,
    },
    /// Ask a box's admin API for its status (JSON) or its metrics.
    Admin {
        /// The box's configuration file (names its admin API and token).
        #[arg(long)]
        config: PathBuf,
        /// What to ask: status, metrics, balance, or purge:/URL.
        #[arg(default_value = "status")]
        what: String,
    },
    /// Build, drive and remove the one-machine test cluster (needs root).
    Lab(baton_lab::LabArgs),
    /// The main job in one command: a three-box lab, a real curl download, a
    /// box killed mid-transfer, the result printed, the lab removed (needs root).
    Demo(baton_lab::DemoArgs),
}

/// Arguments of `baton run`.
#[derive(Args, Debug)]
struct RunArgs {
    /// The box's configuration file.
    #[arg(long)]
    config: PathBuf,
    /// A file to create once the box serves (the lab waits for it).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<ExitCode> = match cli.command {
        Command::Run(args) => run_box(&args).map(|()| ExitCode::SUCCESS),
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Status { config } => {
            logging::init(None);
            print_status(&config).map(|()| ExitCode::SUCCESS)
        }
        Command::Drain { config } => admin_call(&config, "POST", "/drain"),
        Command::Migrate { config, to, count } => {
            admin_call(&config, "POST", &format!("/migrate?to={to}&count={count}"))
        }
        Command::Admin { config, what } => match what.strip_prefix("purge:") {
            Some(url) => admin_call(&config, "POST", &format!("/purge?url={url}")),
            None => admin_call(&config, "GET", &format!("/{what}")),
        },
        Command::Lab(args) => {
            logging::init(None);
            baton_lab::run(args, lab_box_table)
                .map(|()| ExitCode::SUCCESS)
                .map_err(anyhow::Error::from)
        }
        Command::Demo(args) => {
            logging::init(None);
            baton_lab::demo::run(args).map_err(anyhow::Error::from)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("baton: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `baton run`: the box's configuration, its log level, then the box.
fn run_box(args: &RunArgs) -> Result<()> {
    let config = baton_config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    logging::init(Some(&config.node.log_level));
    tls_files::at_start(&config)?;
    Ok(run::run(&config, args.ready_file.as_deref())?)
}

/// The box table as `baton lab status` and `lab drain` read it: the lab
/// links no appliance code, so the segment reader is handed in.
fn lab_box_table(
    config: &std::path::Path,
) -> Result<Vec<baton_lab::BoxRow>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(status::box_summaries(config)?
        .into_iter()
        .map(|s| baton_lab::BoxRow {
            id: s.id,
            heartbeat_age_ms: s.heartbeat_age_ms,
            state: s.state,
            connections: s.connections,
            checkpoints: s.checkpoints,
        })
        .collect())
}

/// One request to the admin API of the box `config` describes; prints the
/// answer, fails on a non-2xx status.
fn admin_call(config: &std::path::Path, method: &str, path: &str) -> Result<ExitCode> {
    let config = baton_config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (status, body) = admin::request(config.admin.listen, &config.admin.token, method, path)
        .map_err(|e| anyhow::anyhow!("admin API at {}: {e}", config.admin.listen))?;
    println!("{}", body.trim_end());
    if (200..300).contains(&status) {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("baton: the admin API answered {status}");
        Ok(ExitCode::FAILURE)
    }
}

/// `baton check-config FILE`: OK on stdout, or every problem on stderr:
/// the file's own (baton-config), then, if it is sound and HTTPS is on,
/// its certificate and key files' (`tls_files`), one line each.
fn check_config(file: &std::path::Path) -> ExitCode {
    let config = match baton_config::load(file) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    match tls_files::load(&config) {
        Ok(_) => {
            println!("OK");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in problems {
                eprintln!("{}: {p}", file.display());
            }
            ExitCode::FAILURE
        }
    }
}

/// The `"key":{…}` object of a JSON text, as written (balanced braces;
/// the admin API's strings hold no braces of their own in that member).
fn json_object<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(&format!("\"{key}\":{{"))? + key.len() + 3;
    let mut depth = 0usize;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[start..=start + i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// In replicated mode the view lives in the boxes' Raft, not in the
/// segment: the box's own admin API says what it reads, and its Raft.
fn print_replicated_view(config: &std::path::Path) {
    let Ok(config) = baton_config::load(config) else {
        return;
    };
    if config.checkpoint.mode != baton_config::SegmentMode::Replicated {
        return;
    }
    match admin::request(config.admin.listen, &config.admin.token, "GET", "/status") {
        Ok((200, body)) => match json_object(&body, "view") {
            Some(view) => println!("view (box {}, its Raft included): {view}", config.node.id),
            None => println!("view: box {} shows none yet", config.node.id),
        },
        Ok((status, _)) => println!("view: the admin API answered {status}"),
        Err(e) => println!(
            "view: unknown (replicated mode: the view is in the boxes' Raft, and this box's admin API at {} does not answer: {e})",
            config.admin.listen
        ),
    }
}

/// `baton status`: the agreed view (from the segment, or in replicated
/// mode from the box's admin API), then one line per box.
fn print_status(config: &std::path::Path) -> Result<()> {
    print_replicated_view(config);
    if let Some((view, reason)) = status::agreed_view(config)? {
        let members: Vec<String> = view
            .members
            .iter()
            .map(|m| format!("{}/{}", m.id, m.epoch))
            .collect();
        println!(
            "view {}: members [{}] (committed by box {}{})",
            view.number,
            members.join(", "),
            view.proposer,
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        );
    }
    let boxes = status::box_summaries(config)?;
    println!(
        "{:<6} {:<10} {:<8} {:>14} {:>12} {:>12}",
        "box", "state", "phase", "heartbeat age", "connections", "checkpoints"
    );
    for b in boxes {
        let age = b
            .heartbeat_age_ms
            .map(|ms| format!("{ms} ms"))
            .unwrap_or_else(|| "never".into());
        println!(
            "{:<6} {:<10} {:<8} {:>14} {:>12} {:>12}",
            b.id,
            b.state,
            b.phase.as_deref().unwrap_or("-"),
            age,
            b.connections,
            b.checkpoints
        );
    }
    Ok(())
}
