//! libFuzzer target: see `baton_fuzz::config_file::run`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::config_file::run(data));
