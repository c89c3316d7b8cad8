//! libFuzzer target: see `baton_fuzz::tls_records::run`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::tls_records::run(data));
