//! `oxport inspect`: the tree it reports for BuildKit's fixtures, and the
//! problems it finds in a damaged archive.

mod harness;
mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn inspect(src: &str, format: &str) -> Output {
    Command::new(harness::oxport_bin())
        .args(["inspect", src, "--format", format])
        .output()
        .unwrap()
}

fn inspect_json(src: &str) -> (Value, bool) {
    let out = inspect(src, "json");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "inspect {src}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (report, out.status.success())
}

fn fixture_tar(name: &str) -> String {
    format!(
        "oci-archive:{}",
        harness::fixtures_dir()
            .join(name)
            .join("expected.tar")
            .display()
    )
}

#[test]
fn every_fixture_archive_inspects_clean() {
    let mut checked = 0;
    let mut dirs: Vec<_> = fs::read_dir(harness::fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.tar").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let src = format!("oci-archive:{}", dir.join("expected.tar").display());
        let (report, ok) = inspect_json(&src);
        assert_eq!(report["problems"], Value::Array(vec![]), "{src}");
        assert!(ok, "{src}: non-zero exit without problems");
        assert!(!report["roots"].as_array().unwrap().is_empty(), "{src}");
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} fixture archives found");
    eprintln!("tally: {checked} fixture archives inspected without problems");
}

#[test]
fn the_tree_shows_platforms_and_both_forms() {
    for (case, form) in [("gw_mp_art", "artifact"), ("gw_mp_legacy", "legacy")] {
        let (report, ok) = inspect_json(&fixture_tar(case));
        assert!(ok);
        let roots = report["roots"].as_array().unwrap();
        assert_eq!(roots.len(), 1, "two names, one root");
        assert_eq!(
            roots[0]["names"],
            serde_json::json!(["example.com/foo/golden:v1", "example.com/bar/golden:v2"])
        );
        let manifests = roots[0]["manifests"].as_array().unwrap();
        let platforms: Vec<&str> = manifests
            .iter()
            .map(|m| m["platform"].as_str().unwrap())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
        for m in manifests {
            assert_eq!(m["layers"], 1);
            let atts = m["attestations"].as_array().unwrap();
            assert_eq!(atts.len(), 1, "{case}");
            assert_eq!(atts[0]["form"], form);
            assert_eq!(atts[0]["subject"], m["digest"]);
            let types: Vec<&str> = atts[0]["statements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["predicateType"].as_str().unwrap())
                .collect();
            assert_eq!(
                types,
                [
                    "https://example.com/attestations/v1.0",
                    "https://example.com/attestations2/v1.0"
                ]
            );
            let subjects = &atts[0]["statements"][0]["subjects"];
            assert_eq!(subjects[0]["digest"][0], m["digest"]);
        }
    }
    let text = String::from_utf8(inspect(&fixture_tar("gw_mp_art"), "text").stdout).unwrap();
    assert!(text.contains("linux/arm64"), "{text}");
    assert!(text.contains("artifact form"), "{text}");
    assert!(text.ends_with("problems: none\n"), "{text}");
}

#[test]
fn detached_attestations_are_referrers() {
    let scratch = tempfile::tempdir().unwrap();
    let tar = scratch.path().join("detached.tar");
    harness::export_detached(&tar);
    let (report, ok) = inspect_json(&format!("oci-archive:{}", tar.display()));
    assert!(ok, "{report}");
    let referrers = report["referrers"].as_array().unwrap();
    assert_eq!(referrers.len(), 2);
    let images: Vec<&Value> = report["roots"][0]["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["digest"])
        .collect();
    for r in referrers {
        assert_eq!(r["form"], "artifact");
        assert!(images.contains(&&r["subject"]), "{r}");
    }
}

/// Rewrites an archive with one blob's first byte flipped and another left out.
fn damage(src: &Path, dst: &Path, flip: &str, drop: &str) {
    let files = harness::read_tar(src).unwrap();
    let mut tw = oxport::sink::tar::TarWriter::new(fs::File::create(dst).unwrap());
    tw.dir("blobs/").unwrap();
    tw.dir("blobs/sha256/").unwrap();
    let (mut flipped, mut dropped) = (false, false);
    for (name, mut bytes) in files {
        if name.ends_with(drop) {
            dropped = true;
            continue;
        }
        if name.ends_with(flip) {
            bytes[0] ^= 0x01;
            flipped = true;
        }
        tw.file_bytes(&name, 0o444, &bytes).unwrap();
    }
    tw.finish().unwrap();
    assert!(flipped && dropped, "the blobs to damage are in the archive");
}

#[test]
fn a_damaged_archive_names_each_problem_and_fails() {
    // The amd64 image layer and the arm64 provenance-like statement.
    let layer = "7d49c608820172a8d7b9d315cfd7e0f205d7c500fc854611f350e74d17006c46";
    let statement = "4e970c51b3c277e530bfc0773f035593231a24b2f4a8152b4a0fb66c1945ed00";
    let scratch = tempfile::tempdir().unwrap();
    let tar = scratch.path().join("damaged.tar");
    damage(
        &harness::fixtures_dir().join("gw_mp_art/expected.tar"),
        &tar,
        layer,
        statement,
    );
    let src = format!("oci-archive:{}", tar.display());

    let (report, ok) = inspect_json(&src);
    assert!(!ok, "a damaged archive must fail");
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{report}");
    let find = |digest: &str| {
        problems
            .iter()
            .find(|p| p["message"].as_str().unwrap().contains(digest))
            .unwrap_or_else(|| panic!("no problem names {digest}: {report}"))
    };
    let flipped = find(layer);
    assert_eq!(
        flipped["location"],
        "index.json/manifests[0]/manifests[0]/layers[0]"
    );
    assert!(flipped["message"]
        .as_str()
        .unwrap()
        .contains("blob content has digest sha256:"));
    let missing = find(statement);
    assert_eq!(
        missing["location"],
        "index.json/manifests[0]/manifests[3]/layers[0]"
    );
    assert!(missing["message"]
        .as_str()
        .unwrap()
        .contains("blob is missing"));

    let out = inspect(&src, "text");
    assert!(!out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("problems: 2"), "{text}");
    assert!(text.contains(layer) && text.contains(statement), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 problem(s)"));

    // Converting refuses damaged input rather than copying it on.
    let out = Command::new(harness::oxport_bin())
        .args(["convert", "--to", "legacy", &src])
        .arg(format!(
            "oci-archive:{}",
            scratch.path().join("out.tar").display()
        ))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!scratch.path().join("out.tar").exists());
}
