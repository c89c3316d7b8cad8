//! The bodies of the fuzz targets, one function per target, so that the
//! libFuzzer binaries in `fuzz_targets/` stay one line each and the seed
//! writer (`examples/seeds.rs`) shares their input formats.
//!
//! Each function takes untrusted bytes and drives a parser of the
//! workspace through its public API (plus `baton_shmem::fuzzing`); any
//! panic is a bug in that parser. This crate knows nothing of libFuzzer.

pub mod config_file;
pub mod frames;
pub mod ftp_control;
pub mod http_request;
pub mod raft_message;
pub mod record;
pub mod replication;
pub mod rtsp;
pub mod tls_records;
pub mod wire;
pub mod worker;

/// Splits a fuzz input into records `[control u8][len u16 LE][len bytes]`
/// (a short last record takes what is left): several frames or datagrams
/// from one input, each with a control byte the target interprets.
pub fn records(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&ctl, rest) = data.split_first()?;
        let len = match rest {
            [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])),
            _ => rest.len(),
        };
        let rest = rest.get(2..).unwrap_or(&[]);
        let (item, tail) = rest.split_at(len.min(rest.len()));
        data = tail;
        Some((ctl, item))
    })
}

/// The inverse of [`records`], for the seeds.
pub fn join_records(items: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ctl, b) in items {
        out.push(*ctl);
        out.extend_from_slice(&(b.len() as u16).to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}
