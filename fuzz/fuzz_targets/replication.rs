//! libFuzzer target: see `baton_fuzz::replication::run`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::replication::run(data));
