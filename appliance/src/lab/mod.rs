//! The lab: network namespaces joined by bridges that stand in for a cluster.
use anyhow::Result;
use clap::Args;

/// Arguments of `baton lab`.
#[derive(Args, Debug)]
pub struct LabArgs {}

/// Runs a `baton lab` command.
pub fn run(_args: LabArgs) -> Result<()> {
    Ok(())
}
