//! `baton-rtp`: RTSP players for the lab's client namespace. It plays N
//! streams of one object over RTP/UDP from one server, receives them all in
//! one process with kernel receive timestamps, and writes per-stream loss,
//! repeats, longest gap and lateness as JSON (`--json`). The line
//! `ALL PLAYING` on stdout tells a driving harness that every PLAY was
//! answered. The players live in `baton_benches::players`; this file is
//! the binary's edge.
use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = baton_benches::players::PlayerArgs::parse();
    baton_benches::players::run(&args)
}
