//! `oxport convert` against BuildKit's own output: for every fixture pair
//! that differs only in `oci-artifact`, converting one fixture's expected tar
//! must give exactly the other's, in both directions, into an archive and
//! into a layout directory. Round trips give the original bytes back, a
//! second conversion changes nothing, and the `Convert` RPC gives the same
//! bytes as the CLI.

mod grpc_support;
mod harness;
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

struct Case {
    name: String,
    tar: PathBuf,
    artifact: bool,
}

fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `oci-artifact` as the exporter resolves it: the attribute, else true from
/// compatibility version 30 (0 means 30) with OCI media types.
fn resolved_artifact(case: &Value) -> bool {
    let attrs = &case["attrs"];
    if let Some(v) = attrs["oci-artifact"].as_str() {
        return go_bool(v).expect("oci-artifact is a bool");
    }
    let cv = case["compatibilityVersion"].as_i64().unwrap_or(0);
    let oci_types = attrs["oci-mediatypes"]
        .as_str()
        .is_none_or(|v| go_bool(v).expect("oci-mediatypes is a bool"));
    (cv == 0 || cv >= 30) && oci_types
}

/// What must be equal for two fixtures to differ only in `oci-artifact`.
fn pair_key(case: &Value) -> String {
    let mut attrs = case["attrs"].as_object().cloned().unwrap_or_default();
    attrs.remove("oci-artifact");
    let sorted = |v: &Value| -> String {
        // serde_json's Value orders keys as parsed; sort for a stable key.
        fn sort(v: &Value) -> Value {
            match v {
                Value::Object(m) => {
                    let b: BTreeMap<_, _> = m.iter().map(|(k, v)| (k.clone(), sort(v))).collect();
                    Value::Object(b.into_iter().collect())
                }
                Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
                v => v.clone(),
            }
        }
        sort(v).to_string()
    };
    [
        sorted(&case["exporter"]),
        sorted(&case["refs"]),
        sorted(&case["metadata"]),
        sorted(&case["attestations"]),
        sorted(&Value::Object(attrs)),
    ]
    .join("\n")
}

/// Every (legacy, artifact) pair of fixtures that both expect a tar.
fn pairs() -> Vec<(Case, Case)> {
    let mut groups: BTreeMap<String, Vec<Case>> = BTreeMap::new();
    let mut names: Vec<_> = fs::read_dir(harness::fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    names.sort();
    for dir in names {
        let case: Value =
            serde_json::from_slice(&fs::read(dir.join("case.json")).unwrap()).unwrap();
        if case["expect"]["tar"].as_str().is_none() {
            continue;
        }
        groups.entry(pair_key(&case)).or_default().push(Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            tar: dir.join("expected.tar"),
            artifact: resolved_artifact(&case),
        });
    }
    let mut out = Vec::new();
    for cases in groups.values() {
        for l in cases.iter().filter(|c| !c.artifact) {
            for a in cases.iter().filter(|c| c.artifact) {
                let copy = |c: &Case| Case {
                    name: c.name.clone(),
                    tar: c.tar.clone(),
                    artifact: c.artifact,
                };
                out.push((copy(l), copy(a)));
            }
        }
    }
    out
}

fn convert(to: &str, src: &str, dst: &str) {
    let out = Command::new(harness::oxport_bin())
        .args(["convert", "--to", to, src, dst])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oxport convert --to {to} {src} {dst}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn archive(p: &Path) -> String {
    format!("oci-archive:{}", p.display())
}

fn layout(p: &Path) -> String {
    format!("oci:{}", p.display())
}

/// The files of an expected tar, as a layout directory would hold them.
fn tar_files(p: &Path) -> BTreeMap<String, Vec<u8>> {
    harness::read_tar(p).unwrap().into_iter().collect()
}

/// Compares two file sets, naming the files that differ (not their bytes).
fn same_files(got: &BTreeMap<String, Vec<u8>>, want: &BTreeMap<String, Vec<u8>>, what: &str) {
    let differ: Vec<&String> = got
        .keys()
        .chain(want.keys())
        .filter(|k| got.get(*k) != want.get(*k))
        .collect();
    assert!(differ.is_empty(), "{what}: these files differ: {differ:?}");
}

fn check_direction(from: &Case, to: &Case, scratch: &Path) {
    let form = if to.artifact { "artifact" } else { "legacy" };
    let want = fs::read(&to.tar).unwrap();
    let label = format!("{} -> {} ({form})", from.name, to.name);

    let out_tar = scratch.join(format!("{}-to-{}.tar", from.name, to.name));
    convert(form, &archive(&from.tar), &archive(&out_tar));
    assert!(fs::read(&out_tar).unwrap() == want, "{label}: tar differs");

    let out_dir = scratch.join(format!("{}-to-{}", from.name, to.name));
    convert(form, &archive(&from.tar), &layout(&out_dir));
    same_files(
        &harness::read_tree(&out_dir).unwrap(),
        &tar_files(&to.tar),
        &format!("{label}: layout"),
    );

    // Converting what is already in the target form changes nothing.
    let again = scratch.join(format!("{}-again.tar", to.name));
    convert(form, &archive(&out_tar), &archive(&again));
    assert!(
        fs::read(&again).unwrap() == want,
        "{label}: second conversion changed bytes"
    );

    // And back: the original bytes.
    let back_form = if to.artifact { "legacy" } else { "artifact" };
    let back = scratch.join(format!("{}-back.tar", from.name));
    convert(back_form, &archive(&out_tar), &archive(&back));
    assert!(
        fs::read(&back).unwrap() == fs::read(&from.tar).unwrap(),
        "{label}: round trip differs from the original"
    );
}

#[test]
fn fixture_pairs_convert_into_each_other() {
    let pairs = pairs();
    // The fixture set has pairs in several shapes (multi-platform, single
    // ref, docker exporter, unnamed, extra attestations); losing them all
    // would mean the pairing broke, not that there is nothing to check.
    assert!(pairs.len() >= 7, "only {} fixture pairs found", pairs.len());
    let scratch = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (legacy, artifact) in &pairs {
        check_direction(legacy, artifact, scratch.path());
        check_direction(artifact, legacy, scratch.path());
        checked += 1;
        eprintln!(
            "pair {} <-> {}: both directions, tar and layout",
            legacy.name, artifact.name
        );
    }
    eprintln!(
        "tally: {checked} fixture pairs, {} conversions checked against BuildKit's bytes (2 directions x tar and layout)",
        checked * 4
    );
    assert_eq!(checked, pairs.len());
}

#[test]
fn layouts_convert_in_place_and_by_reference() {
    let fx = harness::fixtures_dir();
    let legacy = fx.join("gw_mp_legacy/expected.tar");
    let art = fx.join("gw_mp_art/expected.tar");
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("layout");
    convert("legacy", &archive(&legacy), &layout(&dir));
    same_files(
        &harness::read_tree(&dir).unwrap(),
        &tar_files(&legacy),
        "archive to layout",
    );

    // In place, from a layout source: the new index.json replaces the old
    // one, and the old blobs stay beside the new ones.
    convert("artifact", &layout(&dir), &layout(&dir));
    let mut got = harness::read_tree(&dir).unwrap();
    let old = tar_files(&legacy);
    got.retain(|name, bytes| {
        let only_old = name.starts_with("blobs/") && old.get(name) == Some(bytes);
        !only_old || tar_files(&art).contains_key(name)
    });
    same_files(&got, &tar_files(&art), "layout in place");

    // A layout source written back as an archive.
    let tar = scratch.path().join("back.tar");
    convert("legacy", &layout(&dir), &archive(&tar));
    assert!(fs::read(&tar).unwrap() == fs::read(&legacy).unwrap());

    // A reference selects the entries to convert; the others stay as they are.
    let one = scratch.path().join("one.tar");
    convert("legacy", &format!("{}:v1", layout(&dir)), &archive(&one));
    let root = |p: &Path, i: usize| -> Value {
        let index: Value = serde_json::from_slice(&tar_files(p)["index.json"]).unwrap();
        index["manifests"][i]["digest"].clone()
    };
    assert_eq!(root(&one, 0), root(&legacy, 0));
    assert_eq!(root(&one, 1), root(&art, 1));
    assert_ne!(root(&one, 0), root(&one, 1));

    // A reference no entry has is an error, and nothing is written.
    let out = Command::new(harness::oxport_bin())
        .args(["convert", "--to", "artifact"])
        .arg(format!("{}:nope", layout(&dir)))
        .arg(archive(&scratch.path().join("never.tar")))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"nope\""));
    assert!(!scratch.path().join("never.tar").exists());
}

#[test]
fn detached_attestations_convert_both_ways() {
    let scratch = tempfile::tempdir().unwrap();
    let detached = scratch.path().join("detached.tar");
    harness::export_detached(&detached);
    let legacy = scratch.path().join("legacy.tar");
    convert("legacy", &archive(&detached), &archive(&legacy));
    let index = &tar_files(&legacy)["index.json"];
    let index: Value = serde_json::from_slice(index).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "two names and two detached attestations");
    // The detached entries now name the legacy manifests BuildKit writes.
    let want: Value = {
        let files = tar_files(&harness::fixtures_dir().join("gw_mp_legacy/expected.tar"));
        let top: Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let hex = top["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
        serde_json::from_slice(&files[&format!("blobs/sha256/{hex}")]).unwrap()
    };
    assert_eq!(entries[2]["digest"], want["manifests"][2]["digest"]);
    assert_eq!(entries[3]["digest"], want["manifests"][3]["digest"]);
    let back = scratch.path().join("back.tar");
    convert("artifact", &archive(&legacy), &archive(&back));
    assert!(fs::read(&back).unwrap() == fs::read(&detached).unwrap());
}

#[test]
fn bad_locations_are_refused() {
    let tar = harness::fixtures_dir().join("gw_mp_legacy/expected.tar");
    for (src, dst, text) in [
        (
            archive(&tar),
            "docker://localhost:5000/Upper:1".to_string(),
            "invalid reference format",
        ),
        (
            "nowhere:x".to_string(),
            "oci:out".to_string(),
            "unknown image location",
        ),
    ] {
        let out = Command::new(harness::oxport_bin())
            .args(["convert", "--to", "artifact", &src, &dst])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(text), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_rpc_streams_the_same_bytes() {
    use oxport::proto::{export_event::Event, exporter_client::ExporterClient, ConvertRequest};
    let server = grpc_support::ServerProc::unix();
    let client = server.client().await;
    let mut rpc = ExporterClient::new(client.channel());
    let input = fs::read(harness::fixtures_dir().join("gw_mp_legacy/expected.tar")).unwrap();
    let want = fs::read(harness::fixtures_dir().join("gw_mp_art/expected.tar")).unwrap();
    // Small chunks, so the input spans many messages.
    let msgs = grpc_support::corpus::convert_requests(&input, 1000, "artifact");
    let mut stream = rpc
        .convert(tokio_stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    let mut done = None;
    while let Some(ev) = stream.message().await.unwrap() {
        match ev.event {
            Some(Event::Chunk(c)) => {
                assert!(c.len() <= 1 << 20);
                got.extend(c);
            }
            Some(Event::Done(d)) => done = Some(d.response),
            _ => {}
        }
    }
    assert!(
        got == want,
        "the Convert output differs from BuildKit's artifact export"
    );
    let done = done.expect("a done event");
    assert_eq!(done["changes"], "3");

    let bad = rpc
        .convert(tokio_stream::iter(vec![ConvertRequest {
            to: "sideways".into(),
            chunk: Default::default(),
        }]))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("sideways"));
}

/// The SBOM fixtures recorded from a running daemon: converting BuildKit's archive to
/// the other form gives exactly the archive oxport exports from the same build result
/// in that form, so SBOM statements (core SBOM supplemented, default subjects) move
/// through a conversion byte for byte.
#[test]
fn daemon_sbom_fixtures_convert_to_the_export_in_the_other_form() {
    let dir = harness::repo_root().join("tests/conformance/buildkit-daemon");
    let mut checked = 0;
    let scratch = tempfile::tempdir().unwrap();
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for case_dir in names {
        let case: Value =
            serde_json::from_slice(&fs::read(case_dir.join("case.json")).unwrap()).unwrap();
        let has_sbom = case["attestations"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .flat_map(|l| l.as_array().into_iter().flatten())
            .any(|a| a["metadata"]["sbom-core"].is_string());
        if !has_sbom || case["expect"]["match"] != "exact" {
            continue;
        }
        let name = case_dir.file_name().unwrap().to_string_lossy().into_owned();
        let other = !resolved_artifact(&case);
        let form = if other { "artifact" } else { "legacy" };
        let exported = scratch.path().join(format!("{name}-export.tar"));
        let out = Command::new(harness::oxport_bin())
            .arg("export")
            .arg("--result")
            .arg(case_dir.join("case.json"))
            .arg("--output")
            .arg(format!(
                "type=oci,dest={},oci-artifact={other}",
                exported.display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: export with oci-artifact={other}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let converted = scratch.path().join(format!("{name}-converted.tar"));
        convert(
            form,
            &archive(&case_dir.join("expected.tar")),
            &archive(&converted),
        );
        same_files(
            &tar_files(&converted),
            &tar_files(&exported),
            &format!("{name} converted to the {form} form"),
        );
        assert!(
            fs::read(&converted).unwrap() == fs::read(&exported).unwrap(),
            "{name}: the converted archive differs from the export in the {form} form"
        );
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} SBOM fixtures were checked");
}
