//! The repository carries copies of the shared test data: tests/conformance (the BuildKit
//! fixtures, without Python caches) and tests/oci-schema (the OCI JSON schemas). Where the
//! shared originals are checked out beside the repository (`../shared`), the copies must be
//! identical to them, byte for byte and name for name. A clone without `../shared` has
//! nothing to compare with: the test checks the copies are not empty and records the
//! comparison as skipped (`tests/support`).

mod harness;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use harness::{read_tree, repo_root};

/// Shared files that are deliberately not copied.
fn ignored(rel: &str) -> bool {
    rel.split('/')
        .any(|part| part == "__pycache__" || part.ends_with(".pyc"))
}

fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut t = read_tree(root).unwrap_or_else(|e| panic!("{e}"));
    t.retain(|k, _| !ignored(k));
    t
}

fn shared() -> Option<PathBuf> {
    let p = repo_root().join("../shared");
    p.is_dir().then_some(p)
}

fn compare(name: &str, ours: &str) {
    let copy = tree(&repo_root().join(ours));
    assert!(!copy.is_empty(), "{ours} is empty");
    let Some(shared) = shared() else {
        // A plain clone, CI's included, has no ../shared: a skip, never a failure.
        support::skip(
            &format!("comparing {ours} with ../shared/{name}"),
            &format!(
                "../shared is absent (a plain clone); the copy's {} files are present",
                copy.len()
            ),
        );
        return;
    };
    let original = tree(&shared.join(name));
    let missing: Vec<&String> = original.keys().filter(|k| !copy.contains_key(*k)).collect();
    let extra: Vec<&String> = copy.keys().filter(|k| !original.contains_key(*k)).collect();
    let differ: Vec<&String> = original
        .iter()
        .filter(|(k, v)| copy.get(*k).is_some_and(|c| c != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "{ours} differs from ../shared/{name}: missing {missing:?}, extra {extra:?}, different bytes {differ:?}"
    );
}

#[test]
fn conformance_copy_is_identical() {
    compare("conformance", "tests/conformance");
}

#[test]
fn oci_schema_copy_is_identical() {
    compare("oci-schema", "tests/oci-schema");
}

#[test]
fn copies_are_complete() {
    let root = repo_root();
    for f in [
        "tests/conformance/FORMAT.md",
        "tests/conformance/INDEX.md",
        "tests/conformance/compare.py",
        "tests/conformance/check_fixture.py",
        "tests/oci-schema/LICENSE",
        "tests/oci-schema/image-manifest-schema.json",
        "tests/oci-schema/image-index-schema.json",
        "tests/oci-schema/config-schema.json",
    ] {
        assert!(root.join(f).is_file(), "{f} is missing");
    }
    // Every fixture named in INDEX.md has a case.json.
    let index = std::fs::read_to_string(root.join("tests/conformance/INDEX.md")).unwrap();
    let mut n = 0;
    for line in index.lines().filter(|l| l.starts_with("| `")) {
        let case = line[3..].split('`').next().unwrap();
        assert!(
            ["buildkit-master", "buildkit-daemon"].iter().any(|set| root
                .join("tests/conformance")
                .join(set)
                .join(case)
                .join("case.json")
                .is_file()),
            "INDEX.md names {case}, which has no case.json"
        );
        n += 1;
    }
    assert!(n >= 60, "INDEX.md lists only {n} fixtures");
}

#[test]
fn fixtures_are_self_consistent() {
    // check_fixture.py verifies blob digests, sizes, diffIDs and expected tarballs.
    let python = harness::python3();
    let o = std::process::Command::new(python)
        .arg(repo_root().join("tests/conformance/check_fixture.py"))
        .arg(repo_root().join("tests/conformance"))
        .output()
        .expect("run check_fixture.py");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "check_fixture.py failed:\n{out}");
    assert!(out.contains("fixtures checked, 0 failed"), "{out}");
}
