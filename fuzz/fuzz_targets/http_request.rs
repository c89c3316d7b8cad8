//! libFuzzer target: see `baton_fuzz::http_request::run`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::http_request::run(data));
