//! The OCI layout-directory reader behind convert and inspect.
#![no_main]
use std::sync::OnceLock;

static SCRATCH: OnceLock<tempfile::TempDir> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = SCRATCH.get_or_init(|| tempfile::tempdir().expect("scratch dir"));
    oxport::fuzzing::layout(data, dir.path());
});
