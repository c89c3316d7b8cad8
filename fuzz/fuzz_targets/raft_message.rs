//! libFuzzer target: see `baton_fuzz::raft_message::run`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::raft_message::run(data));
