//! libFuzzer target: see `baton_fuzz::record::run`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::record::run(data));
