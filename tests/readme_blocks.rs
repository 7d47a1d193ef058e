//! The README's `sh` command blocks, run as written on a fresh clone of the
//! repository (its committed files only), in order, in one shell. What is
//! changed on the way, and why:
//!
//! - `cargo run --release --` becomes `oxport`, the binary this test run
//!   built, put on `PATH` as the README says: the build itself is what the
//!   test command has just done.
//! - The registry's `127.0.0.1:5000` and `/tmp/registry*` become a free port
//!   and paths of this test, so the test never meets another registry.
//!
//! - grpcurl is the pinned one `tests/tools.sh` installs, put on `PATH`.
//!
//! Blocks not run, each named below so that a new block cannot be skipped
//! unnoticed: the test command (it is what runs this test) and the
//! benchmarks (minutes of load on every core, measured separately).

mod support;

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_oxport");

/// The blocks the test does not run: a line each block starts with.
const NOT_RUN: [&str; 2] = ["bash tests/run.sh", "bash benches/run.sh"];

/// The `sh` blocks of a Markdown text, in order.
fn sh_blocks(md: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_readme_command_blocks_work_on_a_fresh_clone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let blocks = sh_blocks(&std::fs::read_to_string(root.join("README.md")).unwrap());
    let (skipped, run): (Vec<&String>, Vec<&String>) = blocks
        .iter()
        .partition(|b| NOT_RUN.iter().any(|n| b.starts_with(n)));
    assert_eq!(
        skipped.len(),
        NOT_RUN.len(),
        "each block named in NOT_RUN is in the README: {skipped:?}"
    );
    assert!(run.len() >= 3, "blocks to run: {run:?}");
    let tools = ["git", "docker-registry", "skopeo"];
    for t in tools {
        if support::require_tool(t, "running the README's command blocks").is_none() {
            return;
        }
    }
    let Some(grpcurl) =
        support::require_pinned_tool("grpcurl", "running the README's grpcurl block")
    else {
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("clone");
    let git = |args: &[&str], cwd: &Path| {
        let out = Command::new("git")
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // The commit checked out here, whatever branch (or none) names it.
    let head = git(&["rev-parse", "HEAD"], root);
    let (root_s, clone_s) = (root.to_str().unwrap(), clone.to_str().unwrap());
    git(
        &["clone", "--quiet", "--no-checkout", root_s, clone_s],
        dir.path(),
    );
    git(&["checkout", "--quiet", &head], &clone);
    let port = free_port();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    for b in &run {
        script.push_str(
            &b.replace("cargo run --release --", "oxport")
                .replace("127.0.0.1:5000", &format!("127.0.0.1:{port}"))
                .replace("127.0.0.1/5000", &format!("127.0.0.1/{port}"))
                .replace("/tmp/registry", &format!("{}/registry", tmp.display())),
        );
    }
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}:{}",
        bin_dir.display(),
        grpcurl.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .args(["300", "bash", "-c", &script])
        .current_dir(&clone)
        .env("PATH", path)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the README's blocks failed:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        clone.join("demo.tar").is_file(),
        "the example wrote demo.tar"
    );
    assert!(
        stderr.contains(&format!("pushed 127.0.0.1:{port}/demo:v1: sha256:")),
        "{stderr}"
    );
    assert!(stdout.contains("artifact form"), "oxport inspect: {stdout}");
    assert!(
        stdout.contains("\"mediaType\": \"application/vnd.oci.image.index.v1+json\""),
        "skopeo: {stdout}"
    );
    assert!(
        stdout.contains("oxport.exporter.v1.Exporter\n"),
        "grpcurl list: {stdout}"
    );
    assert!(
        stdout.contains("\"status\": \"SERVING\""),
        "grpcurl health: {stdout}"
    );
}
