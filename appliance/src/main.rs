//! `baton`: the appliance binary and its tools.
//!
//! The binary's edge: command-line parsing, logging set-up, and errors with
//! context (anyhow). The work lives in the modules: `lab` builds and drives
//! the one-machine test cluster.

mod lab;
mod run;
mod status;

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
    /// Build, drive and remove the one-machine test cluster (needs root).
    Lab(lab::LabArgs),
    /// Run one appliance box from its configuration file.
    Run(run::RunArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Lab(args) => lab::run(args),
        Command::Run(args) => run::run(args),
    }
}
