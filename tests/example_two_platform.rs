//! The example build result in examples/two-platform: it is current (make.py regenerates
//! the same bytes), consistent (blob digests, sizes and diffIDs match), and has the shape
//! its README promises. Its export is part of tests/conformance.rs.

mod harness;
mod support;

use std::process::Command;

use harness::{python3, repo_root};
use serde_json::Value;

fn case() -> Value {
    let p = repo_root().join("examples/two-platform/case.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn example_is_current() {
    let o = Command::new(python3())
        .arg(repo_root().join("examples/two-platform/make.py"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn example_is_consistent() {
    // The fixture checker's per-case checks, minus those about a recorded BuildKit output,
    // which the example does not have.
    let script = r#"
import sys
sys.path.insert(0, sys.argv[1])
import check_fixture
errs, info, outcome = check_fixture.check_case(sys.argv[2], False)
errs = [e for e in errs if 'expect' not in e]
for e in errs:
    print(e)
sys.exit(1 if errs else 0)
"#;
    let o = Command::new(python3())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-c", script])
        .arg(repo_root().join("tests/conformance"))
        .arg(repo_root().join("examples/two-platform"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "examples/two-platform is inconsistent:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn example_has_the_promised_shape() {
    let c = case();
    assert_eq!(c["exporter"], "oci");
    assert_eq!(c["attrs"]["name"], "example.com/oxport/demo:latest");
    assert_eq!(c["attrs"]["oci-artifact"], "true");
    assert!(c["attrs"]["source-date-epoch"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .is_ok());
    let platforms: Value =
        serde_json::from_str(c["metadata"]["refs.platforms"].as_str().unwrap()).unwrap();
    let ids: Vec<&str> = platforms["Platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["linux/amd64", "linux/arm64"]);
    for id in ids {
        let layers = c["refs"][id].as_array().unwrap();
        assert!((1..=2).contains(&layers.len()));
        for l in layers {
            assert_eq!(
                l["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+gzip"
            );
        }
        let cfg: Value = serde_json::from_str(
            c["metadata"][format!("containerimage.config/{id}")]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            format!(
                "{}/{}",
                cfg["os"].as_str().unwrap(),
                cfg["architecture"].as_str().unwrap()
            ),
            id
        );
        let atts = c["attestations"][id].as_array().unwrap();
        let shape: Vec<(&str, &str, &str)> = atts
            .iter()
            .map(|a| {
                (
                    a["predicateType"].as_str().unwrap(),
                    a["metadata"]["reason"].as_str().unwrap(),
                    a["origin"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("https://spdx.dev/Document", "sbom", "frontend"),
                ("https://slsa.dev/provenance/v1", "provenance", "daemon"),
            ]
        );
        for a in atts {
            let content = repo_root()
                .join("examples/two-platform")
                .join(a["content"].as_str().unwrap());
            let v: Value = serde_json::from_slice(&std::fs::read(content).unwrap()).unwrap();
            assert!(v.is_object());
        }
        let sbom: Value = serde_json::from_slice(
            &std::fs::read(
                repo_root()
                    .join("examples/two-platform")
                    .join(atts[0]["content"].as_str().unwrap()),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(sbom["spdxVersion"].as_str().unwrap().starts_with("SPDX-"));
        let prov: Value = serde_json::from_slice(
            &std::fs::read(
                repo_root()
                    .join("examples/two-platform")
                    .join(atts[1]["content"].as_str().unwrap()),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(prov["buildDefinition"]["buildType"].is_string());
        assert!(prov["runDetails"]["builder"]["id"].is_string());
    }
}
