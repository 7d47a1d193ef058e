//! A short, deterministic pass over the fuzz targets' entry points: every
//! input of `fuzz/corpus/<target>/`, plus truncations and byte flips of the
//! first few.
//! The long runs use `cargo fuzz` (see fuzz/README.md); this keeps the
//! targets building and the seeds panic-free in every test run.

use std::path::Path;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!out.is_empty(), "{} has no seeds", dir.display());
    out.sort();
    out
}

/// The seed, 16 prefixes of it, and 32 single-byte flips (deterministic).
fn variants(seed: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![seed.to_vec()];
    let n = seed.len().max(1);
    for i in 1..=16 {
        out.push(seed[..seed.len() * i / 17].to_vec());
    }
    let mut x: u32 = 0x2545_f491 ^ n as u32;
    for _ in 0..32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let mut v = seed.to_vec();
        if !v.is_empty() {
            let at = x as usize % v.len();
            v[at] ^= (x >> 24) as u8 | 1;
        }
        out.push(v);
    }
    out
}

/// Seeds that also get truncations and flips; the rest of a corpus (what the
/// coverage-guided runs kept) is replayed as it is.
const VARIED_SEEDS: usize = 16;

fn run(target: &str, f: impl Fn(&[u8])) {
    let mut count = 0;
    for (i, seed) in seeds(target).into_iter().enumerate() {
        let inputs = if i < VARIED_SEEDS {
            variants(&seed)
        } else {
            vec![seed]
        };
        for v in inputs {
            f(&v);
            count += 1;
        }
    }
    eprintln!("fuzz smoke {target}: {count} inputs, no panic");
    assert!(count > 0);
}

#[test]
fn attributes() {
    run("attributes", oxport::fuzzing::attributes);
}

#[test]
fn build_result() {
    let dir = tempfile::tempdir().unwrap();
    run("build_result", |d| {
        oxport::fuzzing::build_result(d, dir.path())
    });
}

#[test]
fn archive() {
    let dir = tempfile::tempdir().unwrap();
    run("archive", |d| oxport::fuzzing::archive(d, dir.path()));
}

#[test]
fn layout() {
    let dir = tempfile::tempdir().unwrap();
    run("layout", |d| oxport::fuzzing::layout(d, dir.path()));
}

#[test]
fn registry_responses() {
    run("registry_responses", oxport::fuzzing::registry_responses);
}
