//! libFuzzer target: see `baton_fuzz::ftp_control::run`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::ftp_control::run(data));
