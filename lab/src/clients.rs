//! Client programs the tests and the benchmarks run in the lab's client
//! namespace, shipped as text (`python3 -c TEXT ARGS…`) so that neither
//! needs a path into this crate's source tree.

/// Idle HTTP keep-alive connections that all ask again, round after round,
/// one line of latencies and client retransmissions per round (its usage
/// is its docstring).
pub const KEEPALIVE_ROUNDS: &str = include_str!("clients/keepalive_rounds.py");
