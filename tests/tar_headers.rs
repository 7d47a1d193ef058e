//! The tar header blocks oxport writes, compared byte for byte with the ones
//! Go's `archive/tar` writes (BuildKit's archives are written by it), through
//! the small standard-library program in tests/tar-oracle. Only the header
//! blocks are compared, so sizes of 100 GiB cost nothing: the data that would
//! follow is streamed by the same writer for every size.

mod harness;
mod support;

use std::path::PathBuf;
use std::process::Command;

use harness::{announce, go_build, missing, repo_root, which};
use oxport::sink::tar::header_blocks;

const GIB: u64 = 1 << 30;

/// `go` on PATH, or Go's default install location.
fn go() -> Option<PathBuf> {
    which("go")
        .or_else(|| which("/usr/local/go/bin/go"))
        .or_else(|| {
            missing(
                "`go` is not installed",
                "comparing tar headers with Go's archive/tar",
            )
        })
}

#[test]
fn header_blocks_match_go_archive_tar() {
    let Some(go) = go() else {
        return;
    };
    let bin = tempfile::tempdir().unwrap();
    let exe = bin.path().join("tar-oracle");
    // Standard library only: nothing may be downloaded.
    go_build(
        &go,
        &repo_root().join("tests/tar-oracle"),
        &exe,
        &[("GOTOOLCHAIN", "local"), ("GOPROXY", "off")],
    );

    let blob = format!("blobs/sha256/{}", "0123456789abcdef".repeat(4));
    let mut cases: Vec<(String, u64, u32, u8)> = vec![
        ("blobs/".into(), 0, 0o755, b'5'),
        ("blobs/sha256/".into(), 0, 0o755, b'5'),
        ("index.json".into(), 312, 0o644, b'0'),
        ("oci-layout".into(), 30, 0o444, b'0'),
    ];
    for size in [
        0,
        1,
        511,
        512,
        8 * GIB - 1,
        8 * GIB,
        8 * GIB + 1,
        9 * GIB,
        100 * GIB,
        1 << 50,
        i64::MAX as u64,
    ] {
        cases.push((blob.clone(), size, 0o444, b'0'));
    }
    // A name that leaves no room for "PaxHeaders.0/" in 100 bytes.
    cases.push((
        format!("{}/{}", "d".repeat(40), "f".repeat(59)),
        9 * GIB,
        0o444,
        b'0',
    ));
    cases.push(("top".into(), 9 * GIB, 0o644, b'0'));

    let mut pax = 0;
    for (name, size, mode, typeflag) in &cases {
        let out = Command::new(&exe)
            .arg(name)
            .arg(size.to_string())
            .arg(format!("{mode:o}"))
            .arg("0")
            .arg((*typeflag as char).to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tar-oracle {name} {size}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let ours = hex::encode(header_blocks(name, *mode, *size, *typeflag).unwrap());
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{name} ({size} bytes): oxport writes {} header bytes, Go {}",
            ours.len() / 2,
            theirs.len() / 2
        );
        assert!(
            ours == theirs,
            "{name} ({size} bytes): header bytes differ\n  go:     {theirs}\n  oxport: {ours}"
        );
        if theirs.len() > 1024 {
            pax += 1;
        }
    }
    // From 8 GiB on, both write a PAX size record first.
    assert_eq!(pax, 8, "entries with a PAX header");
    announce(&format!(
        "tar headers: {} entries match Go's archive/tar ({pax} with a PAX size record)",
        cases.len()
    ));
}
