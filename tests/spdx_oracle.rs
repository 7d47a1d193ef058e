//! Differential test of the SPDX supplement against the Go library BuildKit
//! itself uses (`github.com/spdx/tools-golang` v0.5.7, through the small
//! program in tests/spdx-oracle, built with the Go toolchain and the module
//! proxy). Every document in tests/spdx-oracle/corpus goes through both; the
//! outcome (left unchanged, an encoding error, or the supplemented bytes) must
//! be the same, byte for byte.
//!
//! The corpus covers every field of the SPDX 2.3 types, the derived
//! relationships, Go's decoding rules (folded and duplicated keys, `null`,
//! type errors, escapes kept in ids), and the documents Go cannot write back.

mod harness;
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use harness::{announce, go_build, repo_root, require_tool};
use oxport::assemble::sbom::{supplement, LayerFiles};

fn corpus() -> Vec<PathBuf> {
    let dir = repo_root().join("tests/spdx-oracle/corpus");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// What the oracle assumes: /a.txt in layer sha256:aaaa, /app/run.sh in
/// layer sha256:bbbb, builder version "test".
fn ours(doc: &[u8]) -> String {
    let layers: Vec<(String, Vec<String>)> = vec![
        ("sha256:aaaa".into(), vec!["a.txt".into()]),
        (
            "sha256:bbbb".into(),
            vec!["app/".into(), "app/run.sh".into()],
        ),
    ];
    let files = LayerFiles::new(layers.iter().map(|(d, n)| (d.clone(), n.iter())));
    match supplement(doc, &files, "test") {
        Ok(None) => "UNCHANGED".into(),
        Ok(Some(bytes)) => format!("OK {}", String::from_utf8(bytes).unwrap()),
        Err(e) => format!("ERROR {e}"),
    }
}

#[test]
fn supplement_matches_the_go_library() {
    let files = corpus();
    assert!(files.len() >= 20, "only {} corpus documents", files.len());
    let Some(go) = require_tool("go", "comparing the SPDX supplement with the Go library") else {
        return;
    };
    let dir = repo_root().join("tests/spdx-oracle");
    let bin = tempfile::tempdir().unwrap();
    let exe = bin.path().join("spdx-oracle");
    // The SPDX library comes through the module proxy (pinned in go.mod).
    go_build(&go, &dir, &exe, &[]);
    let out = Command::new(&exe).args(&files).output().unwrap();
    assert!(
        out.status.success(),
        "spdx-oracle: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let theirs: BTreeMap<String, String> = stdout
        .lines()
        .map(|l| {
            let (p, r) = l.split_once('\t').expect("path<TAB>result");
            (p.to_string(), r.to_string())
        })
        .collect();
    assert_eq!(theirs.len(), files.len(), "one line per document");

    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut differ = Vec::new();
    for f in &files {
        let want = &theirs[&f.display().to_string()];
        let got = ours(&fs::read(f).unwrap());
        *kinds
            .entry(want.split(' ').next().unwrap_or_default())
            .or_default() += 1;
        if &got != want {
            differ.push(format!(
                "{}:\n  go:     {want}\n  oxport: {got}",
                f.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    announce(&format!(
        "spdx oracle: {} documents, {kinds:?}, {} differ",
        files.len(),
        differ.len()
    ));
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    // The corpus must keep exercising all three outcomes.
    for (kind, min) in [("OK", 10), ("UNCHANGED", 5), ("ERROR", 3)] {
        assert!(
            kinds.get(kind).copied().unwrap_or(0) >= min,
            "fewer than {min} {kind} outcomes: {kinds:?}"
        );
    }
}
