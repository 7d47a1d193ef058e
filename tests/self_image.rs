//! `oxport self-image` builds oxport's own image through its export path.
//! skopeo reads and copies the result; the binary in the layer is the built
//! binary byte for byte; the config, SBOM and provenance say what they must.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_oxport");

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A blob of an OCI layout directory.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let data = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&data)), hex, "blob {digest}");
    data
}

fn json_blob(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&blob(layout, digest)).unwrap()
}

/// The bytes of one file in a tar, which must be executable.
fn tar_file(tar: &[u8], want: &str) -> Vec<u8> {
    let mut found = None;
    walk(tar, &mut |name, mode, data| {
        if name == want {
            assert_eq!(mode, 0o755, "{want} mode");
            found = Some(data.to_vec());
        }
    });
    found.unwrap_or_else(|| panic!("{want} is not in the tar"))
}

#[test]
fn self_image_is_readable_by_skopeo_and_holds_the_built_binary() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("oxport-image.tar");
    let meta = dir.path().join("metadata.json");
    // No --binary: the running binary packages itself.
    run(Command::new(BIN)
        .args([
            "self-image",
            "--revision",
            "0123abcd",
            "--source-date-epoch",
            "1700000000",
        ])
        .arg("--output")
        .arg(format!("type=oci,dest={}", archive.display()))
        .arg("--metadata-file")
        .arg(&meta));
    let response: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let root = response["containerimage.digest"]
        .as_str()
        .unwrap()
        .to_string();

    let layout = dir.path().join("copy");
    // Without skopeo the content is still checked, from the archive unpacked by hand;
    // only skopeo's reading is skipped.
    if let Some(skopeo) =
        support::require_tool("skopeo", "skopeo reading and copying the self image")
    {
        let raw = run(Command::new(&skopeo)
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}", archive.display())));
        assert_eq!(
            format!("sha256:{}", hex::encode(Sha256::digest(&raw))),
            root
        );
        let index: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
        run(Command::new(&skopeo)
            .args(["copy", "--all", "--quiet"])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("oci:{}:self", layout.display())));
    } else {
        let tar = std::fs::read(&archive).unwrap();
        std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        walk(&tar, &mut |name, _, data| {
            if name == "index.json" {
                std::fs::write(layout.join("index.json"), data).unwrap();
            }
        });
        for_each_blob(&tar, &mut |hex, data| {
            std::fs::write(layout.join("blobs/sha256").join(hex), data).unwrap()
        });
    }

    // The copy's index.json names the image index; read down from there.
    let top: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let index_digest = top["manifests"][0]["digest"].as_str().unwrap();
    assert_eq!(index_digest, root);
    let index = json_blob(&layout, index_digest);
    let image_desc = &index["manifests"][0];
    let att_desc = &index["manifests"][1];
    assert_eq!(
        image_desc["platform"]["os"], "linux",
        "first entry is the image: {index}"
    );
    let image = json_blob(&layout, image_desc["digest"].as_str().unwrap());
    let layers = image["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer");

    let config = json_blob(&layout, image["config"]["digest"].as_str().unwrap());
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/oxport"])
    );
    assert_eq!(config["config"]["User"], "65532:65532");
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.title"], "oxport");
    assert_eq!(labels["org.opencontainers.image.revision"], "0123abcd");
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");

    // The binary in the layer is the built one, byte for byte.
    let gz = blob(&layout, layers[0]["digest"].as_str().unwrap());
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(&tar))),
        config["rootfs"]["diff_ids"][0].as_str().unwrap()
    );
    let inside = tar_file(&tar, "usr/local/bin/oxport");
    let built = std::fs::read(BIN).unwrap();
    assert!(inside == built, "the packaged binary differs from {BIN}");
    let binary_sha = hex::encode(Sha256::digest(&built));

    // The attestation manifest (artifact form) carries the SBOM and the provenance.
    assert_eq!(
        att_desc["annotations"]["vnd.docker.reference.digest"],
        image_desc["digest"]
    );
    let att = json_blob(&layout, att_desc["digest"].as_str().unwrap());
    assert_eq!(
        att["artifactType"],
        "application/vnd.docker.attestation.manifest.v1+json"
    );
    assert_eq!(att["subject"]["digest"], image_desc["digest"]);
    let mut predicates = BTreeMap::new();
    for l in att["layers"].as_array().unwrap() {
        let statement = json_blob(&layout, l["digest"].as_str().unwrap());
        assert_eq!(
            statement["subject"][0]["digest"]["sha256"]
                .as_str()
                .unwrap(),
            image_desc["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
        );
        predicates.insert(
            statement["predicateType"].as_str().unwrap().to_string(),
            statement,
        );
    }
    let spdx = &predicates["https://spdx.dev/Document"];
    let names: Vec<&str> = spdx["predicate"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for dep in ["oxport", "tonic", "prost", "tokio", "sha2"] {
        assert!(names.contains(&dep), "the SBOM lacks {dep}");
    }
    let prov = &predicates["https://slsa.dev/provenance/v1"];
    let deps = &prov["predicate"]["buildDefinition"]["resolvedDependencies"];
    assert_eq!(deps[0]["digest"]["sha256"], binary_sha.as_str());
    assert_eq!(deps[1]["digest"]["gitCommit"], "0123abcd");
}

fn for_each_blob(tar: &[u8], f: &mut dyn FnMut(&str, &[u8])) {
    walk(tar, &mut |name, _, data| {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            if !hex.is_empty() {
                f(hex, data);
            }
        }
    });
}

/// Calls `f(name, mode, data)` for each entry of a USTAR tar.
fn walk(tar: &[u8], f: &mut dyn FnMut(&str, u32, &[u8])) {
    let field = |b: &[u8]| {
        let s = String::from_utf8_lossy(b).to_string();
        u64::from_str_radix(s.trim_matches(['\0', ' ']), 8).unwrap()
    };
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at] != 0 {
        let h = &tar[at..at + 512];
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_string();
        let mode = field(&h[100..107]) as u32;
        let size = field(&h[124..135]) as usize;
        f(&name, mode, &tar[at + 512..at + 512 + size]);
        at += 512 + size.div_ceil(512) * 512;
    }
}
