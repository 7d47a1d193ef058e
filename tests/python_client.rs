//! A client in another language: tests/python/oxport_client.py, with stubs
//! generated from proto/ by grpcio-tools at test time, runs a full export
//! against `oxport serve`. Its archive and response map must equal the Rust
//! CLI's for the same build result, and a second run must upload nothing.
//!
//! tests/run.sh installs grpcio and grpcio-tools into target/pyenv. A
//! missing package follows `tests/support`: a failure under CI, a recorded
//! skip elsewhere.

mod grpc_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A python that can import grpc and grpc_tools.
fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("OXPORT_PYENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/pyenv"));
    [venv.join("bin/python"), PathBuf::from("python3")]
        .into_iter()
        .find(|py| {
            Command::new(py)
                .args(["-c", "import grpc, grpc_tools.protoc"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

fn run_client(py: &Path, addr: &str, gen: &Path, out: &Path) -> Value {
    let output = Command::new(py)
        .arg(repo().join("tests/python/oxport_client.py"))
        .arg("--proto-dir")
        .arg(repo().join("proto"))
        .arg("--gen-dir")
        .arg(gen)
        .args(["--addr", addr, "--case"])
        .arg(repo().join("examples/two-platform/case.json"))
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the python client failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the client's JSON report")
}

#[test]
fn python_client_export_is_byte_identical_to_the_cli() {
    let Some(py) = python().or_else(|| {
        support::missing(
            "no python can import grpcio and grpcio-tools",
            "the Python client's export",
        )
    }) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let gen = dir.path().join("gen");
    let server = grpc_support::ServerProc::unix();

    let first_out = dir.path().join("python.tar");
    let first = run_client(&py, &server.addr, &gen, &first_out);
    let asked = first["asked"].as_array().unwrap();
    assert_eq!(asked.len(), 3, "three distinct layer blobs: {first}");
    assert_eq!(first["missing"], first["asked"]);
    assert_eq!(first["uploaded"], first["asked"]);
    assert_eq!(first["effective"]["oci-artifact"], "true");
    assert!(first["chunks"].as_u64().unwrap() >= 1);
    let ids = &first["requestIds"];
    for call in ["ResolveOptions", "MissingBlobs", "Export"] {
        assert!(
            !ids[call].as_str().unwrap().is_empty(),
            "no request id for {call}"
        );
    }
    assert_eq!(ids["Export"], first["exportHeaderRequestId"]);
    assert_ne!(ids["Export"], ids["MissingBlobs"]);

    // The same result again: the server has every blob, nothing is uploaded.
    let second_out = dir.path().join("python-again.tar");
    let second = run_client(&py, &server.addr, &gen, &second_out);
    assert_eq!(second["missing"], serde_json::json!([]));
    assert_eq!(second["uploaded"], serde_json::json!([]));
    let py_tar = std::fs::read(&first_out).unwrap();
    assert!(py_tar == std::fs::read(&second_out).unwrap());

    // The Rust CLI with its embedded server, same result.
    let cli_out = dir.path().join("cli.tar");
    let cli_meta = dir.path().join("cli.json");
    let status = Command::new(grpc_support::BIN)
        .args(["export", "--result"])
        .arg(repo().join("examples/two-platform/case.json"))
        .arg("--output")
        .arg(format!("type=oci,dest={}", cli_out.display()))
        .arg("--metadata-file")
        .arg(&cli_meta)
        .status()
        .unwrap();
    assert!(status.success());
    let cli_tar = std::fs::read(&cli_out).unwrap();
    assert_eq!(py_tar.len(), cli_tar.len());
    assert!(
        py_tar == cli_tar,
        "the python export differs from the CLI's"
    );
    let cli_response: Value = serde_json::from_slice(&std::fs::read(&cli_meta).unwrap()).unwrap();
    assert_eq!(first["response"], cli_response);
    assert!(cli_response["containerimage.digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
}
