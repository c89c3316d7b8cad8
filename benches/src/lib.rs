//! Baton's benchmarks: criterion micro-benchmarks of the dataplane and the
//! checkpoint segment (`benches/`), the load client `baton-load`, and the
//! harness `baton-bench` that drives the lab through the five suites of
//! issue 7 and writes results (JSON, Markdown, PNG). Nothing here is part of
//! the appliance.
#![deny(missing_docs)]

/// The harness's building blocks: the lab driver, load-client output, reports.
pub mod harness {
    pub mod lab;
    pub mod report;
    pub mod stats;
}
