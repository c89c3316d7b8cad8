//! The configuration file of a Baton box: its TOML format, its validation
//! and the Rust values the rest of Baton reads.
//!
//! This crate owns the schema (table and key names, types, defaults, the
//! rules between keys) and the error messages of `baton check-config`. It
//! knows nothing about packets, segments or HTTP beyond the numbers it
//! hands over. Start with [`parse`] and [`Config`]; the documented example
//! is `config/baton.example.toml`, the reference `docs/CONFIG.md`.
//!
//! Each key is declared once, in `src/tables/` (one file per TOML table):
//! name, type, value rule, default and doc line. The model structs, the
//! reader with its unknown-key check, and [`Config::to_toml`] are derived
//! from that declaration (`src/schema.rs`); `src/read.rs` turns spans into
//! lines and collects problems, `src/convert.rs` judges single values.
//!
//! Every problem of a file is reported at once, one line each, naming the
//! line and the dotted key:
//!
//! ```text
//! box1.toml:12: dataplane.workers: expected a positive integer, found string "two"
//! box1.toml: cache: missing table
//! ```
#![deny(missing_docs)]

mod convert;
mod error;
mod model;
mod read;
mod schema;
mod tables;

use std::path::Path;

pub use convert::{EXAMPLE_KEY, EXAMPLE_TOKEN};
pub use error::{ConfigError, Problem};
pub use model::*;
pub use tables::{
    AdminConfig, BalanceConfig, CacheConfig, CheckpointConfig, ClusterConfig, Config,
    DataplaneConfig, DpdkConfig, FailureConfig, FtpConfig, LimitsConfig, Member, NodeConfig,
    RaftConfig, RtspConfig, ServiceConfig, SniCert, TakeoverConfig, TlsConfig, TlsSuite,
    TlsVersion, DEFAULT_FTP_PORT, DEFAULT_RTSP_PORT, DEFAULT_TLS_PORT, SHARED_MAX_MEMBERS,
};

/// The example configuration shipped with Baton, every key documented.
pub const EXAMPLE: &str = include_str!("../baton.example.toml");

/// Reads and validates the configuration file at `path`. A file that cannot
/// be read (or is not UTF-8) is a [`ConfigError`] naming the path too.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::single(&file, None, "file", format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = 1 + e
            .as_bytes()
            .get(..valid)
            .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count());
        ConfigError::single(
            &file,
            Some(line),
            "file",
            "not UTF-8 text (TOML files are UTF-8, TOML 1.0 §Spec)",
        )
    })?;
    parse(&text, &file)
}

/// Parses and validates configuration `text`; `source` is the file name
/// used in messages.
pub fn parse(text: &str, source: &str) -> Result<Config, ConfigError> {
    tables::check(text, source)
}

impl Config {
    /// The configuration as TOML that [`parse`] accepts, every key written
    /// (defaults included). The lab generates box configs this way.
    pub fn to_toml(&self) -> String {
        tables::to_toml(self)
    }
}

/// Every key and table of the format as `(dotted path, doc)`, in file
/// order: `"box"`, `"box.id"`, …, `"cluster.members.back_addr"`,
/// `"dataplane.dpdk"`, …. This is the declaration the parser, the
/// unknown-key check and [`Config::to_toml`] are derived from.
pub fn declared_keys() -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    schema::flatten("", &<Config as schema::Table>::keys(), &mut out);
    out
}

/// Parses a byte size as `cache.memory_bytes` accepts it in a string:
/// `"1GiB"`, `"512 MB"`, `"100000"`. `None` if malformed, zero or too big.
pub fn parse_byte_size(s: &str) -> Option<u64> {
    convert::parse_size(s)
}
