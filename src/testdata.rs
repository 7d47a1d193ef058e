//! Test access to the recorded fixtures under tests/conformance.

use std::path::Path;

/// A file of a `buildkit-daemon` fixture, e.g.
/// `daemon_fixture("e2e_mp_sbom_prov_art", "case.json")`.
pub fn daemon_fixture(case: &str, rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance/buildkit-daemon")
        .join(case)
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
