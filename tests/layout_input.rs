//! Hostile OCI layout directories as `oxport convert` reads them (a real
//! process, under a time limit and a 1 GiB address-space limit): files that
//! are FIFOs or lead to devices, and an `index.json` beyond the 64 MiB that
//! every JSON file read whole may have. Each must fail at once, with an
//! error that names the file, in bounded memory.

mod harness;
mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::bounded::{run_bounded, Bounded};
use harness::mkfifo;

const LIMIT: Duration = Duration::from_secs(30);
const ADDRESS_SPACE: u64 = 1 << 30;

/// A layout directory unpacked from a fixture's archive.
fn layout(scratch: &Path) -> PathBuf {
    let dir = scratch.join("layout");
    let tar = harness::fixtures_dir().join("docker_single_noatt/expected.tar");
    for (name, bytes) in harness::read_tar(&tar).unwrap() {
        let p = dir.join(&name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
    assert!(
        dir.join("manifest.json").is_file(),
        "the fixture has Docker's manifest.json"
    );
    dir
}

fn convert(dir: &Path, scratch: &Path) -> Bounded {
    let out = scratch.join("out.tar");
    run_bounded(
        Command::new(harness::oxport_bin())
            .args(["convert", "--to", "legacy"])
            .arg(format!("oci:{}", dir.display()))
            .arg(format!("oci-archive:{}", out.display())),
        scratch,
        LIMIT,
        ADDRESS_SPACE,
    )
}

/// The run failed promptly, in little memory, saying `words` about `file`.
fn refused(o: &Bounded, file: &Path, words: &[&str]) {
    assert!(o.status.is_some(), "oxport hung: {}", o.describe());
    assert!(!o.success(), "oxport accepted it: {}", o.describe());
    assert!(
        o.max_rss_kib < 200 << 10,
        "oxport used too much memory: {}",
        o.describe()
    );
    let shown = file.display().to_string();
    assert!(
        o.stderr.contains(&shown),
        "the error names {shown}: {}",
        o.describe()
    );
    for w in words {
        assert!(
            o.stderr.contains(w),
            "the error says {w:?}: {}",
            o.describe()
        );
    }
}

#[test]
fn a_plain_layout_converts() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = layout(scratch.path());
    let o = convert(&dir, scratch.path());
    assert!(o.success(), "{}", o.describe());
}

#[test]
fn index_json_leading_to_dev_zero_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = layout(scratch.path());
    let index = dir.join("index.json");
    fs::remove_file(&index).unwrap();
    symlink("/dev/zero", &index).unwrap();
    refused(
        &convert(&dir, scratch.path()),
        &index,
        &["character device"],
    );
}

#[test]
fn manifest_json_leading_to_dev_zero_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = layout(scratch.path());
    let manifest = dir.join("manifest.json");
    fs::remove_file(&manifest).unwrap();
    symlink("/dev/zero", &manifest).unwrap();
    refused(
        &convert(&dir, scratch.path()),
        &manifest,
        &["character device"],
    );
}

#[test]
fn index_json_as_a_fifo_is_refused_without_waiting() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = layout(scratch.path());
    let index = dir.join("index.json");
    fs::remove_file(&index).unwrap();
    mkfifo(&index);
    let o = convert(&dir, scratch.path());
    refused(&o, &index, &["FIFO"]);
    assert!(o.elapsed < Duration::from_secs(10), "{}", o.describe());
}

#[test]
fn manifest_json_as_a_fifo_is_refused_without_waiting() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = layout(scratch.path());
    let manifest = dir.join("manifest.json");
    fs::remove_file(&manifest).unwrap();
    mkfifo(&manifest);
    let o = convert(&dir, scratch.path());
    refused(&o, &manifest, &["FIFO"]);
    assert!(o.elapsed < Duration::from_secs(10), "{}", o.describe());
}

#[test]
fn index_json_over_64_mib_is_refused_before_it_is_read() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = layout(scratch.path());
    let index = dir.join("index.json");
    // Valid JSON of 70 MiB: 350,000 entries, which cost about ten times
    // their size in memory once parsed.
    let mut f = std::io::BufWriter::new(fs::File::create(&index).unwrap());
    f.write_all(br#"{"schemaVersion":2,"manifests":["#).unwrap();
    let mut written = 0u64;
    let mut i = 0u64;
    while written < 70 << 20 {
        let e = format!(
            r#"{}{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{i:064x}","size":{i},"annotations":{{"org.opencontainers.image.ref.name":"r{i}"}}}}"#,
            if i == 0 { "" } else { "," }
        );
        f.write_all(e.as_bytes()).unwrap();
        written += e.len() as u64;
        i += 1;
    }
    f.write_all(b"]}").unwrap();
    f.into_inner().unwrap().sync_all().unwrap();
    refused(
        &convert(&dir, scratch.path()),
        &index,
        &["more than the limit of 67108864 bytes"],
    );
}
