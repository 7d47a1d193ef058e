//! The `--output` CSV parser and the exporter attribute parser.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oxport::fuzzing::attributes(data));
