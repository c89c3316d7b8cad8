//! libFuzzer target: see `baton_fuzz::worker::run`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::worker::run(data));
