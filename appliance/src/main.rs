//! `baton`: the appliance binary and its tools.
//!
//! This file is the binary's edge: command-line parsing, logging set-up, and
//! errors with context (anyhow). The work lives in the modules: `run` is one
//! box, `status` reads the segment's box table, `lab` builds and drives the
//! one-machine test cluster, `demo` tells the whole story in one command.

mod admin;
mod demo;
mod cache;
#[cfg(feature = "dpdk")]
mod dpdk_backend;
mod http;
mod lab;
mod logging;
mod run;
mod serve;
mod status;
mod takeover;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    Run(run::RunArgs),
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
    /// Build, drive and remove the one-machine test cluster (needs root).
    Lab(lab::LabArgs),
    /// The main job in one command: a three-box lab, a real curl download, a
    /// box killed mid-transfer, the result printed, the lab removed (needs root).
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<ExitCode> = match cli.command {
        Command::Run(args) => run::run(args).map(|()| ExitCode::SUCCESS),
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::Status { config } => {
            logging::init(None);
            status::print(&config).map(|()| ExitCode::SUCCESS)
        }
        Command::Lab(args) => {
            logging::init(None);
            lab::run(args).map(|()| ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            logging::init(None);
            demo::run(args)
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

/// `baton check-config FILE`: OK on stdout, or every problem on stderr.
fn check_config(file: &std::path::Path) -> ExitCode {
    match baton_config::load(file) {
        Ok(_) => {
            println!("OK");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}
