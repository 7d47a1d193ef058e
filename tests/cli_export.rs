//! `oxport export` as a real process: the embedded server, a daemon over a
//! unix socket and over TCP, destinations, metadata files and errors.

mod grpc_support;

use std::collections::BTreeMap;
use std::path::Path;

use grpc_support::{expected, fixture, oxport, stderr, ServerProc};

fn expected_response(name: &str) -> BTreeMap<String, String> {
    serde_json::from_value(expected(&fixture(name))["response"].clone()).unwrap()
}

fn expected_tar(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name).with_file_name("expected.tar")).unwrap()
}

fn read_metadata(path: &Path) -> BTreeMap<String, String> {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Names in `dir`, sorted: what a failed or finished export left behind.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn embedded_export_writes_tar_and_metadata() {
    let case = fixture("gw_single_art");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.tar");
    let meta = dir.path().join("meta.json");
    let o = oxport(&[
        "export",
        "--result",
        case.to_str().unwrap(),
        "--output",
        &format!("type=oci,dest={}", dest.display()),
        "--metadata-file",
        meta.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "stdout stays clean");
    assert_eq!(read_metadata(&meta), expected_response("gw_single_art"));
    assert!(
        std::fs::read(&dest).unwrap() == expected_tar("gw_single_art"),
        "tar bytes differ"
    );
    assert_eq!(entries(dir.path()), vec!["meta.json", "out.tar"]);
}

#[test]
fn stdout_destination_matches_the_file() {
    let case = fixture("single_noatt");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.tar");
    let to_file = oxport(&[
        "export",
        "--result",
        case.to_str().unwrap(),
        "--output",
        &format!("dest={}", dest.display()),
    ]);
    assert!(to_file.status.success(), "{}", stderr(&to_file));
    let to_stdout = oxport(&[
        "export",
        "--result",
        case.to_str().unwrap(),
        "--output",
        "dest=-",
    ]);
    assert!(to_stdout.status.success(), "{}", stderr(&to_stdout));
    assert_eq!(to_stdout.stdout, std::fs::read(&dest).unwrap());
}

#[test]
fn tar_false_writes_a_layout_directory() {
    let case = fixture("single_classic_noatt");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("layout");
    let meta = dir.path().join("meta.json");
    let o = oxport(&[
        "export",
        "--result",
        case.to_str().unwrap(),
        "--output",
        &format!("type=oci,tar=false,dest={}", dest.display()),
        "--metadata-file",
        meta.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(dest.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap();
    let root = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(read_metadata(&meta)["containerimage.digest"], root);
    let manifest = dest.join("blobs/sha256").join(&root["sha256:".len()..]);
    assert!(manifest.is_file(), "the root manifest is in the layout");
    assert_eq!(entries(dir.path()), vec!["layout", "meta.json"]);
}

#[test]
fn daemon_over_unix_and_tcp_match_the_embedded_path() {
    let case = fixture("gw_mp_art");
    for server in [ServerProc::unix(), ServerProc::tcp()] {
        let dir = tempfile::tempdir().unwrap();
        let meta = dir.path().join("meta.json");
        let dest = dir.path().join("out.tar");
        let o = oxport(&[
            "export",
            "--addr",
            &server.addr,
            "--result",
            case.to_str().unwrap(),
            "--output",
            &format!("type=oci,dest={}", dest.display()),
            "--metadata-file",
            meta.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "over {}: {}", server.addr, stderr(&o));
        assert_eq!(read_metadata(&meta), expected_response("gw_mp_art"));
        assert!(
            std::fs::read(&dest).unwrap() == expected_tar("gw_mp_art"),
            "tar bytes differ"
        );
    }
}

#[test]
fn core_errors_exit_1_verbatim_and_leave_no_output() {
    let case = fixture("single_noatt");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.tar");
    let o = oxport(&[
        "export",
        "--result",
        case.to_str().unwrap(),
        "--output",
        &format!("type=oci,dest={},oci-artifact=yes", dest.display()),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            r#"non-bool value specified for oci-artifact: strconv.ParseBool: parsing "yes": invalid syntax"#
        ),
        "{}",
        stderr(&o)
    );
    assert!(entries(dir.path()).is_empty(), "no half-written output");
}

#[test]
fn error_fixture_message_appears_on_stderr() {
    let case = fixture("err_badbool_ociartifact");
    let want = expected(&case)["error"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.tar");
    let o = oxport(&[
        "export",
        "--result",
        case.to_str().unwrap(),
        "--output",
        &format!("dest={}", dest.display()),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&want),
        "want {want:?} in {}",
        stderr(&o)
    );
    assert!(!dest.exists());
}

#[test]
fn bad_arguments_exit_1_with_a_message() {
    let case = fixture("single_noatt");
    let o = oxport(&[
        "export",
        "--result",
        case.to_str().unwrap(),
        "--output",
        "novalue",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(r#"field "novalue" has no '='"#),
        "{}",
        stderr(&o)
    );

    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("case.json");
    let o = oxport(&[
        "export",
        "--result",
        absent.to_str().unwrap(),
        "--output",
        "dest=-",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read build result"),
        "{}",
        stderr(&o)
    );

    let o = oxport(&[
        "export",
        "--result",
        case.to_str().unwrap(),
        "--addr",
        "http://nowhere",
        "--output",
        "dest=-",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid address"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
}
