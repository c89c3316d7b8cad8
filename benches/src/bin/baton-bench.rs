//! `baton-bench`: the benchmark suite of issue 7 in one command. It brings a
//! lab up (prefix `btb…`, always taken down again), runs the suites —
//! concurrency, throughput, checkpoint cost, failover under load, criterion —
//! against Baton and against nginx in a box namespace, prints progress, and
//! writes `results.json`, `results.md`, PNG plots and the raw `baton-load`
//! output into a results folder. Needs root (the lab does).
//!
//! The suites live in `baton_benches::suites`; this file is the binary's
//! edge.

use anyhow::Result;
use baton_benches::suites::{self, BenchArgs};
use clap::Parser;

fn main() -> Result<()> {
    suites::run(BenchArgs::parse())
}
