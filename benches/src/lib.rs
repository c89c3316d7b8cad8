//! Baton's benchmarks: criterion micro-benchmarks of the dataplane and the
//! checkpoint segment (`benches/`), the load client `baton-load`, and the
//! harness `baton-bench` that drives the lab through the five suites of
//! issue 7 and writes results (JSON, Markdown, PNG). Nothing here is part of
//! the appliance.
#![deny(missing_docs)]

/// The harness's building blocks: load-client output and reports (the lab
/// is driven through `baton_lab::driver`, the driver the tests share).
pub mod harness {
    pub mod report;
    pub mod rtp;
    pub mod stats;
}

pub mod load;
pub mod players;
pub mod suites;
