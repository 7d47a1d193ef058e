//! The parsers of registry answers: challenges, Retry-After, error bodies,
//! manifests, indexes and referrers lists.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oxport::fuzzing::registry_responses(data);
});
