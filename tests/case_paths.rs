//! Untrusted `case.json` paths, through `oxport export` as a real process
//! (under a time limit and an address-space limit): every file it names
//! must lie inside the case directory once `..` and symbolic links are
//! resolved, and be a regular file (a directory for a bundle) of bounded
//! size. Each refusal names the field and the file, and writes nothing.

mod harness;
mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::bounded::{run_bounded, Bounded};
use harness::mkfifo;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(30);
const ADDRESS_SPACE: u64 = 2 << 30;
const CONTENT: &str = r#"attestations["linux/amd64"][0].content"#;
const BLOB: &str = r#"refs["linux/amd64"][0].blob"#;

/// A copy of the two-platform example in `scratch/case`, with a file beside
/// it that no case may read.
fn case_dir(scratch: &Path) -> PathBuf {
    let from = harness::repo_root().join("examples/two-platform");
    let dir = scratch.join("case");
    for sub in ["blobs", "files"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
        for e in fs::read_dir(from.join(sub)).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
        }
    }
    fs::copy(from.join("case.json"), dir.join("case.json")).unwrap();
    // Valid JSON, so that nothing but the path can refuse it.
    fs::write(scratch.join("secret.json"), br#"{"token":"SECRET-42"}"#).unwrap();
    dir
}

fn edit(dir: &Path, change: impl FnOnce(&mut Value)) {
    let p = dir.join("case.json");
    let mut v: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    change(&mut v);
    fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn set_content(dir: &Path, content: &str) {
    edit(dir, |v| {
        v["attestations"]["linux/amd64"][0]["content"] = content.into();
    });
}

fn export(dir: &Path, scratch: &Path) -> Bounded {
    run_bounded(
        Command::new(harness::oxport_bin())
            .arg("export")
            .arg("--result")
            .arg(dir.join("case.json"))
            .arg("--output")
            .arg(format!(
                "type=oci,dest={}",
                scratch.join("out.tar").display()
            )),
        scratch,
        LIMIT,
        ADDRESS_SPACE,
    )
}

/// The export failed promptly, naming `field` and saying each of `words`,
/// and wrote no archive.
fn refused(o: &Bounded, scratch: &Path, field: &str, words: &[&str]) {
    assert!(o.status.is_some(), "oxport hung: {}", o.describe());
    assert!(!o.success(), "oxport accepted it: {}", o.describe());
    for w in std::iter::once(&field).chain(words) {
        assert!(
            o.stderr.contains(w),
            "the error says {w:?}: {}",
            o.describe()
        );
    }
    assert!(!scratch.join("out.tar").exists(), "an archive was written");
}

#[test]
fn the_example_exports() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = case_dir(scratch.path());
    let o = export(&dir, scratch.path());
    assert!(o.success(), "{}", o.describe());
}

#[test]
fn content_outside_the_case_directory_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = case_dir(scratch.path());
    set_content(&dir, "../secret.json");
    let o = export(&dir, scratch.path());
    refused(&o, scratch.path(), CONTENT, &["secret.json", "outside"]);
}

#[test]
fn content_linked_outside_the_case_directory_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = case_dir(scratch.path());
    symlink(
        scratch.path().join("secret.json"),
        dir.join("files/link.json"),
    )
    .unwrap();
    set_content(&dir, "files/link.json");
    let o = export(&dir, scratch.path());
    refused(&o, scratch.path(), CONTENT, &["files/link.json", "outside"]);

    // A link to a device leaves the directory too.
    fs::remove_file(dir.join("files/link.json")).unwrap();
    symlink("/dev/zero", dir.join("files/link.json")).unwrap();
    let o = export(&dir, scratch.path());
    refused(&o, scratch.path(), CONTENT, &["/dev/zero", "outside"]);
}

#[test]
fn a_fifo_as_content_is_refused_without_waiting() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = case_dir(scratch.path());
    mkfifo(&dir.join("files/fifo"));
    set_content(&dir, "files/fifo");
    let o = export(&dir, scratch.path());
    refused(&o, scratch.path(), CONTENT, &["files/fifo", "FIFO"]);
}

#[test]
fn content_over_the_size_cap_is_refused_before_it_is_read() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = case_dir(scratch.path());
    let big = fs::File::create(dir.join("files/big.json")).unwrap();
    big.set_len(oxport::casefile::MAX_CONTENT_FILE + 1).unwrap();
    set_content(&dir, "files/big.json");
    let o = export(&dir, scratch.path());
    refused(&o, scratch.path(), CONTENT, &["files/big.json", "limit"]);
    assert!(o.max_rss_kib < 200 << 10, "{}", o.describe());
}

#[test]
fn a_bundle_outside_the_case_directory_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = case_dir(scratch.path());
    fs::create_dir(scratch.path().join("elsewhere")).unwrap();
    fs::copy(
        scratch.path().join("secret.json"),
        scratch.path().join("elsewhere/s.json"),
    )
    .unwrap();
    edit(&dir, |v| {
        let a = &mut v["attestations"]["linux/amd64"][0];
        a["kind"] = "Bundle".into();
        a["content"] = "../elsewhere/".into();
    });
    let o = export(&dir, scratch.path());
    refused(&o, scratch.path(), CONTENT, &["elsewhere", "outside"]);
}

#[test]
fn a_blob_outside_the_case_directory_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = case_dir(scratch.path());
    let mut blob = String::new();
    edit(&dir, |v| {
        let l = &mut v["refs"]["linux/amd64"][0];
        blob = l["blob"].as_str().unwrap().to_string();
        l["blob"] = "../outside-blob".into();
    });
    fs::copy(dir.join(&blob), scratch.path().join("outside-blob")).unwrap();
    let o = export(&dir, scratch.path());
    refused(&o, scratch.path(), BLOB, &["outside-blob", "outside"]);
}

#[test]
fn a_blob_of_another_size_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = case_dir(scratch.path());
    edit(&dir, |v| {
        let l = &mut v["refs"]["linux/amd64"][0];
        let blob = dir.join(l["blob"].as_str().unwrap());
        fs::OpenOptions::new()
            .append(true)
            .open(blob)
            .unwrap()
            .set_len(10 << 20)
            .unwrap();
    });
    let o = export(&dir, scratch.path());
    refused(&o, scratch.path(), BLOB, &["10485760 bytes"]);
}
