//! The `case.json` and protobuf build-result readers, then an export.
#![no_main]
use std::sync::OnceLock;

static SCRATCH: OnceLock<tempfile::TempDir> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = SCRATCH.get_or_init(|| tempfile::tempdir().expect("scratch dir"));
    oxport::fuzzing::build_result(data, dir.path());
});
