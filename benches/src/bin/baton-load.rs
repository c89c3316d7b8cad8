//! `baton-load`: a load client on the kernel's TCP, for the lab's client
//! namespace. It opens many HTTP/1.1 connections to one URL, runs keep-alive
//! requests on each, checks every response (status, length, optionally the
//! body's sha256) and reports latency percentiles (hdrhistogram) and errors.
//! One thread, one epoll (mio): the box under test gets the other core.
//!
//! Exit code 0 only when every request succeeded: tests rely on it.
//!
//! For the benchmark suite (`baton-bench`) it also holds connections for a
//! while (`--hold-secs`), reads at a bounded rate per connection (`--rate`, a
//! token bucket, so that downloads last across a box kill), and writes a
//! receive timeline (`--timeline`): per connection the longest gap between two
//! reads that returned data and the gap around a mark (the moment the harness
//! touched `--mark-file`, i.e. killed a box), plus goodput in 100 ms buckets.
//!
//! With a mark file, every socket also gets kernel receive timestamps
//! (`SO_TIMESTAMPNS`, socket(7)): each read says when the kernel received
//! the newest data it returned. A connection has *resumed* when a read
//! returns data the kernel received after the kill. Reads alone cannot
//! tell: a rate-limited reader first drains what was buffered before the
//! kill, so the longest gap after the kill often starts after the kill and
//! ends long after the survivor resumed sending. The mark file may hold
//! the kill's wall-clock time (Unix microseconds), written once the kill
//! has returned; otherwise the moment the file is seen is the kill.
//! Progress goes to stderr once a second; the line `ALL CONNECTED` on stdout
//! tells a driving harness that every connection is established.
//!
//! The client lives in `baton_benches::load`; this file is the binary's
//! edge.

use anyhow::Result;
use baton_benches::load::{self, LoadArgs};
use clap::Parser;

fn main() -> Result<()> {
    load::run(LoadArgs::parse())
}
