//! libFuzzer target: see `baton_fuzz::rtsp::run`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::rtsp::run(data));
