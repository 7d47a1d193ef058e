//! A layout directory as a destination of `oxport export` (`tar=false`) and
//! `oxport convert … oci:DIR[:REF]`, as real processes: the new image is
//! added to what the directory holds, as skopeo adds to a layout. Other
//! references, unnamed entries, blobs and unrelated files stay; entries of
//! the same reference are replaced; a directory that is not a layout is
//! refused untouched.

mod harness;
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn oxport(args: &[String]) -> Output {
    Command::new(harness::oxport_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run oxport")
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn case(name: &str) -> String {
    harness::fixtures_dir()
        .join(name)
        .join("case.json")
        .display()
        .to_string()
}

fn archive(name: &str) -> String {
    let tar = harness::fixtures_dir().join(name).join("expected.tar");
    format!("oci-archive:{}", tar.display())
}

/// `oxport export` of a fixture into the layout `dir` under `name`.
fn export_to(fixture: &str, dir: &Path, name: &str) -> Output {
    oxport(&[
        "export".into(),
        "--result".into(),
        case(fixture),
        "--output".into(),
        format!("type=oci,tar=false,name={name},dest={}", dir.display()),
    ])
}

fn convert(src: &str, dst: &str) -> Output {
    convert_to("artifact", src, dst)
}

fn convert_to(form: &str, src: &str, dst: &str) -> Output {
    oxport(&[
        "convert".into(),
        "--to".into(),
        form.into(),
        src.into(),
        dst.into(),
    ])
}

/// The layout's `index.json` entries as (ref name, digest).
fn entries(dir: &Path) -> Vec<(String, String)> {
    let v: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            (name, e["digest"].as_str().unwrap().to_string())
        })
        .collect()
}

fn refs(dir: &Path) -> Vec<String> {
    entries(dir).into_iter().map(|(r, _)| r).collect()
}

fn inspect_ok(dir: &Path, reference: &str) {
    let o = oxport(&[
        "inspect".into(),
        format!("oci:{}:{reference}", dir.display()),
    ]);
    ok(&o, &format!("inspect {reference}"));
}

/// Every file of `before` is still in `dir` with the same bytes.
fn kept(dir: &Path, before: &BTreeMap<String, Vec<u8>>) {
    let now = harness::read_tree(dir).unwrap();
    for (name, bytes) in before {
        if name == "index.json" {
            continue;
        }
        assert!(
            now.get(name) == Some(bytes),
            "{name} was removed or changed"
        );
    }
}

#[test]
fn export_adds_to_an_existing_layout() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("layout");
    ok(
        &export_to("gw_single_art", &dir, "example.com/a:one"),
        "first export",
    );
    let first = entries(&dir);
    fs::write(dir.join("NOTES.txt"), b"unrelated").unwrap();
    let before = harness::read_tree(&dir).unwrap();

    ok(
        &export_to("single_noatt", &dir, "example.com/b:two"),
        "second export",
    );
    assert_eq!(refs(&dir), ["one", "two"]);
    assert_eq!(
        entries(&dir)[0],
        first[0],
        "the first image's entry is unchanged"
    );
    kept(&dir, &before);
    inspect_ok(&dir, "one");
    inspect_ok(&dir, "two");

    // The same reference again: its entry is replaced where it stood.
    ok(
        &export_to("gw_single_legacy", &dir, "example.com/c:one"),
        "third export",
    );
    assert_eq!(refs(&dir), ["one", "two"]);
    assert_ne!(entries(&dir)[0], first[0]);
    inspect_ok(&dir, "one");
    inspect_ok(&dir, "two");
    kept(&dir, &before);
    assert!(
        harness::dir_entries(scratch.path()) == ["layout"],
        "nothing left beside the layout: {:?}",
        harness::dir_entries(scratch.path())
    );
}

#[test]
fn export_refuses_a_directory_that_is_not_a_layout() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("home");
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("NOTES.txt"), b"mine").unwrap();
    fs::write(dir.join("sub/x"), b"x").unwrap();
    let before = harness::read_tree(&dir).unwrap();
    let o = export_to("single_noatt", &dir, "example.com/b:two");
    assert!(!o.status.success(), "a non-layout directory was written to");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(err.contains("not an OCI layout"), "{err}");
    assert_eq!(harness::read_tree(&dir).unwrap(), before);
    assert_eq!(harness::dir_entries(scratch.path()), ["home"]);
}

#[test]
fn a_layout_with_a_broken_index_is_left_as_it_is() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("layout");
    ok(
        &export_to("gw_single_art", &dir, "example.com/a:one"),
        "first export",
    );
    fs::write(dir.join("index.json"), b"{\"manifests\": [").unwrap();
    let before = harness::read_tree(&dir).unwrap();
    let o = export_to("single_noatt", &dir, "example.com/b:two");
    assert!(!o.status.success(), "a broken index.json was overwritten");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("index.json"), "{err}");
    assert_eq!(harness::read_tree(&dir).unwrap(), before);
}

#[test]
fn convert_adds_to_an_existing_layout() {
    let scratch = tempfile::tempdir().unwrap();
    let dest = scratch.path().join("dest");
    ok(
        &export_to("single_noatt", &dest, "example.com/x:v3"),
        "export v3",
    );
    fs::write(dest.join("NOTES.txt"), b"unrelated").unwrap();
    let before = harness::read_tree(&dest).unwrap();
    let v3 = entries(&dest)[0].clone();

    // An archive converted into the layout under a reference.
    let o = convert(
        &archive("gw_single_legacy"),
        &format!("oci:{}:v1", dest.display()),
    );
    ok(&o, "convert into the layout");
    assert_eq!(refs(&dest), ["v3", "v1"]);
    kept(&dest, &before);
    let v1 = entries(&dest)[1].clone();

    // One reference of another layout: only that image comes over, and the
    // destination's entries of other references stay.
    let src = scratch.path().join("src");
    ok(
        &convert(&archive("gw_mp_legacy"), &format!("oci:{}", src.display())),
        "src",
    );
    assert_eq!(refs(&src), ["v1", "v2"]);
    let o = convert(
        &format!("oci:{}:v2", src.display()),
        &format!("oci:{}:v2", dest.display()),
    );
    ok(&o, "convert one reference");
    assert_eq!(refs(&dest), ["v3", "v1", "v2"]);
    assert_eq!(entries(&dest)[0], v3);
    assert_eq!(entries(&dest)[1], v1);
    kept(&dest, &before);
    for r in ["v1", "v2", "v3"] {
        inspect_ok(&dest, r);
    }

    // In place, by reference: that entry changes, the others stay.
    let before = harness::read_tree(&dest).unwrap();
    let o = convert_to(
        "legacy",
        &format!("oci:{}:v1", dest.display()),
        &format!("oci:{}:v1", dest.display()),
    );
    ok(&o, "convert in place");
    assert_eq!(refs(&dest), ["v3", "v1", "v2"]);
    assert_eq!(entries(&dest)[0], v3);
    assert_ne!(entries(&dest)[1], v1, "v1 is in the legacy form now");
    kept(&dest, &before);
}

#[test]
fn convert_refuses_a_directory_that_is_not_a_layout() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("home");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("NOTES.txt"), b"mine").unwrap();
    let o = convert(
        &archive("gw_single_legacy"),
        &format!("oci:{}", dir.display()),
    );
    assert!(!o.status.success(), "a non-layout directory was written to");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(err.contains("not an OCI layout"), "{err}");
    assert_eq!(harness::dir_entries(&dir), ["NOTES.txt"]);
    assert_eq!(harness::dir_entries(scratch.path()), ["home"]);
}
