//! `baton run`: one appliance box.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// Arguments of `baton run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The box's configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// A file to create once the box serves (the lab waits for it).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// Runs a box until it is killed.
pub fn run(_args: RunArgs) -> Result<()> {
    Ok(())
}
