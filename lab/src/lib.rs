//! `baton-lab`: the one-machine test cluster of Baton, as
//! `/work/shared/design/LAB.md` specifies — network namespaces joined by
//! bridges that stand in for a cluster, the processes in them, and the one
//! driver that the `baton lab`/`baton demo` commands, the end-to-end tests
//! and the benchmarks all use.
//!
//! What it owns: the topology and its names ([`names`]), the cluster's life
//! (`up`, `down`, `kill`, `start`, `drain`, `exec`: [`cluster`]), loss, rate,
//! delay, jitter, reordering and duplication without netem ([`impair`],
//! [`delay_line`]), the built-in origin web server ([`origin`]) and the
//! deterministic objects it serves ([`objects`]), the configuration each box
//! starts with ([`boxconf`]), and the OS helpers these need ([`sys`]).
//!
//! What it must not know: how a box works inside. It starts the `baton`
//! binary (`baton run --config …`) and reads what the box table says only
//! through a [`BoxTable`] reader that the appliance hands in; it links no
//! appliance code, so a test can drive a lab of any build of `baton`.
//!
//! Where to start reading: [`cli`] for the commands as a user sees them,
//! [`driver::Lab`] for the API the tests and the benchmarks use (a handle
//! that runs `baton lab …` and takes the lab down when dropped), then
//! [`cluster`].
//!
//! Nothing here touches the root namespace's addresses or routes: all lab
//! traffic stays on bridges inside the lab's own namespaces.
#![deny(missing_docs)]

use std::path::Path;

pub mod boxconf;
pub mod certs;
pub mod cli;
pub mod clients;
pub mod cluster;
pub mod curl;
pub mod delay_line;
pub mod demo;
pub mod driver;
pub mod error;
pub mod impair;
pub mod logs;
pub mod names;
mod nginx;
pub mod objects;
pub mod origin;
pub mod steering;
pub mod sys;
pub mod vm;
pub mod vm_exec;

pub use cli::{run, LabArgs};
pub use demo::DemoArgs;
pub use driver::{Lab, LabError, LabOptions};
pub use error::{Error, Result};

/// One box as the checkpoint segment's box table shows it (what `lab
/// status` prints and `lab drain` waits for).
#[derive(Debug, Clone)]
pub struct BoxRow {
    /// Member id.
    pub id: u16,
    /// Milliseconds since its last heartbeat, if it ever beat.
    pub heartbeat_age_ms: Option<u64>,
    /// alive, dead, draining, rejoined or never started.
    pub state: String,
    /// Connections it owns now.
    pub connections: u64,
    /// Checkpoints it has written.
    pub checkpoints: u64,
}

/// Reads the box table of the segment that a box configuration file names.
/// The appliance supplies it (its `status::box_summaries`), so the lab need
/// not know the segment's layout.
pub type BoxTable = fn(&Path) -> Result<Vec<BoxRow>, Box<dyn std::error::Error + Send + Sync>>;
