//! `oxport convert` and `oxport inspect` on registry images: Debian's
//! `docker-registry` (no referrers API, so the fallback tag) and the
//! referrers-capable test double. BuildKit's fixture pair gw_mp_legacy /
//! gw_mp_art, which differ only in `oci-artifact`, gives the bytes every
//! conversion must produce; skopeo reads the results independently.

mod harness;
mod registry_support;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use registry_support::fake::FakeRegistry;
use registry_support::{Registry, ACCEPT};
use serde_json::Value;

const ATTESTATION_TYPE: &str = "application/vnd.docker.attestation.manifest.v1+json";
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

fn oxport(args: &[&str]) -> Output {
    registry_support::oxport(args, &[])
}

fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn convert(to: &str, src: &str, dst: &str) {
    assert_ok(
        &oxport(&["convert", "--to", to, src, dst]),
        &format!("convert --to {to} {src} {dst}"),
    );
}

fn inspect_json(src: &str) -> (Value, bool) {
    let out = oxport(&["inspect", src, "--format", "json"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "inspect {src}: not JSON ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (report, out.status.success())
}

/// A fixture's expected tar: its files and its root digest.
struct Fixture {
    tar: std::path::PathBuf,
    files: BTreeMap<String, Vec<u8>>,
    root: String,
}

impl Fixture {
    fn load(name: &str) -> Fixture {
        let tar = harness::fixtures_dir().join(name).join("expected.tar");
        let files: BTreeMap<String, Vec<u8>> =
            harness::read_tar(&tar).unwrap().into_iter().collect();
        let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let root = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        Fixture { tar, files, root }
    }

    fn blob(&self, digest: &str) -> &[u8] {
        &self.files[&format!("blobs/sha256/{}", &digest[7..])]
    }

    fn json(&self, digest: &str) -> Value {
        serde_json::from_slice(self.blob(digest)).unwrap()
    }

    /// Image manifest digest -> its attestation manifest digest.
    fn attestations(&self) -> BTreeMap<String, String> {
        let index = self.json(&self.root);
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| {
                let of = m["annotations"][REFERENCE_DIGEST].as_str()?;
                Some((of.to_string(), m["digest"].as_str()?.to_string()))
            })
            .collect()
    }

    fn blobs(&self) -> BTreeMap<&String, &Vec<u8>> {
        self.files
            .iter()
            .filter(|(k, _)| k.starts_with("blobs/"))
            .collect()
    }
}

fn archive(p: &Path) -> String {
    format!("oci-archive:{}", p.display())
}

/// `oxport export` of a fixture's build result, pushed to `name`.
fn push_fixture(case: &str, name: &str, extra: &str) {
    let case = harness::fixtures_dir().join(case).join("case.json");
    let output = format!("type=image,name={name},push=true,registry.insecure=true{extra}");
    assert_ok(
        &oxport(&[
            "export",
            "--result",
            case.to_str().unwrap(),
            "--output",
            &output,
        ]),
        &format!("push {name}"),
    );
}

/// The digests a fallback tag index lists.
fn fallback_listed(reg: &Registry, repo: &str, subject: &str) -> Vec<String> {
    let tag = subject.replace(':', "-");
    let (_, index) = reg
        .manifest(repo, &tag)
        .unwrap_or_else(|| panic!("no fallback tag {tag}"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}

fn raw_manifest(reg: &Registry, repo: &str, reference: &str) -> Vec<u8> {
    let r = reg.get(&format!("/v2/{repo}/manifests/{reference}"), ACCEPT);
    assert_eq!(r.status, 200, "{repo}:{reference}: {}", r.text());
    r.body
}

/// skopeo's raw view of a registry manifest; None when skopeo is missing
/// (reported loudly, a failure under CI).
fn skopeo_raw(reference: &str) -> Option<Vec<u8>> {
    let skopeo = harness::require_tool("skopeo", "skopeo reading converted registry images")?;
    let out = Command::new(skopeo)
        .args(["inspect", "--raw", reference, "--tls-verify=false"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect --raw {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

/// Every image manifest of an inspect report, with its referrers.
fn report_images(report: &Value) -> Vec<&Value> {
    report["roots"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["manifests"].as_array().unwrap())
        .collect()
}

#[test]
fn a_legacy_registry_image_converts_in_place_and_back() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let legacy = Fixture::load("gw_mp_legacy");
    let art = Fixture::load("gw_mp_art");
    let repo = "conv/golden";
    let name = |tag: &str| format!("{}/{repo}:{tag}", reg.host());
    // The fixture's own bytes (a re-export would name the image in its
    // statements): converting into the form it has already copies it.
    for tag in ["v1", "v2"] {
        convert(
            "legacy",
            &archive(&legacy.tar),
            &format!("docker://{}", name(tag)),
        );
    }
    for tag in ["v1", "v2"] {
        assert_eq!(reg.manifest(repo, tag).unwrap().0, legacy.root, "{tag}");
    }

    let src = format!("docker://{}", name("v1"));
    convert("artifact", &src, &src);
    // Both tags of the image are on BuildKit's artifact-form index, byte for byte.
    for tag in ["v1", "v2"] {
        assert!(
            raw_manifest(&reg, repo, tag) == art.blob(&art.root),
            "{tag}: not the artifact fixture's index"
        );
    }
    // Nothing is deleted.
    assert!(raw_manifest(&reg, repo, &legacy.root) == legacy.blob(&legacy.root));
    // Each image's fallback tag lists its converted attestation manifest,
    // whose bytes are BuildKit's.
    let atts = art.attestations();
    assert_eq!(atts.len(), 2);
    for (image, att) in &atts {
        assert_eq!(fallback_listed(&reg, repo, image), vec![att.clone()]);
        assert!(raw_manifest(&reg, repo, att) == art.blob(att), "{att}");
    }

    // inspect finds them through the fallback tag.
    let (report, ok) = inspect_json(&src);
    assert!(ok, "{report}");
    assert_eq!(report["problems"], Value::Array(vec![]));
    let images = report_images(&report);
    assert_eq!(images.len(), 2);
    for m in &images {
        let digest = m["digest"].as_str().unwrap();
        let referrers = m["referrers"].as_array().unwrap();
        assert_eq!(referrers.len(), 1, "{m}");
        assert_eq!(referrers[0]["digest"], atts[digest].as_str());
        assert_eq!(referrers[0]["artifactType"], ATTESTATION_TYPE);
        assert_eq!(
            referrers[0]["via"],
            format!("fallback tag {}", digest.replace(':', "-"))
        );
        assert_eq!(referrers[0]["inIndex"], true);
        assert_eq!(m["attestations"][0]["form"], "artifact");
    }
    assert_eq!(report["referrers"], Value::Array(vec![]));
    let text = String::from_utf8(oxport(&["inspect", &src]).stdout).unwrap();
    assert!(text.contains("via fallback tag sha256-"), "{text}");

    // skopeo sees the converted index and attestation manifests.
    if let Some(raw) = skopeo_raw(&src) {
        assert!(raw == art.blob(&art.root), "skopeo: another index");
        for (image, att) in &atts {
            let raw = skopeo_raw(&format!("docker://{}/{repo}@{att}", reg.host())).unwrap();
            let m: Value = serde_json::from_slice(&raw).unwrap();
            assert_eq!(m["artifactType"], ATTESTATION_TYPE);
            assert_eq!(m["subject"]["digest"], image.as_str());
        }
    }

    // Registry to archive: BuildKit's artifact-form blobs, named by the tag.
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("from-registry.tar");
    convert("artifact", &src, &archive(&out));
    let got = Fixture::load_path(&out);
    assert_eq!(got.root, art.root);
    assert!(got.blobs() == art.blobs(), "the archive's blobs differ");
    let index: Value = serde_json::from_slice(&got.files["index.json"]).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );

    // Again: nothing changes. Then back: the original index.
    convert("artifact", &src, &src);
    assert_eq!(reg.manifest(repo, "v1").unwrap().0, art.root);
    convert("legacy", &src, &src);
    for tag in ["v1", "v2"] {
        assert_eq!(reg.manifest(repo, tag).unwrap().0, legacy.root, "{tag}");
    }
    // The artifact manifests are still referrers, now outside the index:
    // inspect walks them as detached attestations.
    let (report, ok) = inspect_json(&src);
    assert!(ok, "{report}");
    let detached = report["referrers"].as_array().unwrap();
    assert_eq!(detached.len(), 2, "{report}");
    for d in detached {
        assert_eq!(d["form"], "artifact");
        let subject = d["subject"].as_str().unwrap();
        assert_eq!(d["digest"], atts[subject].as_str());
        assert!(d["location"].as_str().unwrap().ends_with("/referrers[0]"));
    }
    for m in report_images(&report) {
        assert_eq!(m["attestations"][0]["form"], "legacy");
        assert_eq!(m["referrers"][0]["inIndex"], false);
    }
    eprintln!(
        "registry: {} -> {} -> {} in place; 2 fallback tags; tags v1, v2 moved both ways",
        legacy.root, art.root, legacy.root
    );
}

impl Fixture {
    fn load_path(tar: &Path) -> Fixture {
        let files: BTreeMap<String, Vec<u8>> =
            harness::read_tar(tar).unwrap().into_iter().collect();
        let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let root = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        Fixture {
            tar: tar.to_path_buf(),
            files,
            root,
        }
    }
}

#[test]
fn archives_and_registries_convert_into_each_other() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let legacy = Fixture::load("gw_mp_legacy");
    let art = Fixture::load("gw_mp_art");
    let dst = format!("docker://{}/arch/golden:v1", reg.host());
    convert("artifact", &archive(&legacy.tar), &dst);
    assert!(raw_manifest(&reg, "arch/golden", "v1") == art.blob(&art.root));
    // Every blob of the artifact form is there, with its bytes.
    for (name, bytes) in art.blobs() {
        let digest = format!("sha256:{}", &name["blobs/sha256/".len()..]);
        let r = reg.get(&format!("/v2/arch/golden/blobs/{digest}"), "*/*");
        let m = reg.get(&format!("/v2/arch/golden/manifests/{digest}"), ACCEPT);
        assert!(
            (r.status == 200 && r.body == *bytes) || (m.status == 200 && m.body == *bytes),
            "{digest} is not in the registry"
        );
    }
    for (image, att) in art.attestations() {
        assert_eq!(fallback_listed(&reg, "arch/golden", &image), vec![att]);
    }

    // And from the registry to an archive in the other form: BuildKit's
    // legacy-form blobs.
    let scratch = tempfile::tempdir().unwrap();
    let back = scratch.path().join("back.tar");
    convert("legacy", &dst, &archive(&back));
    let got = Fixture::load_path(&back);
    assert_eq!(got.root, legacy.root);
    assert!(got.blobs() == legacy.blobs(), "the archive's blobs differ");

    // A layout with two images needs its reference to pick one: here the
    // index and, named `single`, its amd64 image manifest.
    let dir = scratch.path().join("layout");
    let layout = format!("oci:{}", dir.display());
    convert("legacy", &archive(&legacy.tar), &layout);
    let amd64 = legacy.json(&legacy.root)["manifests"][0].clone();
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut entry = amd64.clone();
    entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "single"});
    index["manifests"].as_array_mut().unwrap().push(entry);
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    let two = format!("docker://{}/two/golden:x", reg.host());
    let out = oxport(&["convert", "--to", "legacy", &layout, &two]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 images"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(reg.manifest("two/golden", "x").is_none());
    convert("legacy", &format!("{layout}:single"), &two);
    assert_eq!(
        reg.manifest("two/golden", "x").unwrap().0,
        amd64["digest"].as_str().unwrap()
    );
}

#[test]
fn detached_registry_attestations_are_found_through_the_fallback_tag() {
    let Some(reg) = Registry::start(false) else {
        return;
    };
    let name = format!("{}/detached/golden:v1", reg.host());
    push_fixture("gw_mp_art", &name, ",attestations-in-index=false");
    let (report, ok) = inspect_json(&format!("docker://{name}"));
    assert!(ok, "{report}");
    let images: Vec<String> = report_images(&report)
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(images.len(), 2);
    let detached = report["referrers"].as_array().unwrap();
    assert_eq!(detached.len(), 2, "{report}");
    for d in detached {
        assert_eq!(d["form"], "artifact");
        assert!(images.contains(&d["subject"].as_str().unwrap().to_string()));
        let types: Vec<&str> = d["statements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["predicateType"].as_str().unwrap())
            .collect();
        assert_eq!(types.len(), 2, "{d}");
    }
    for m in report_images(&report) {
        assert!(m["attestations"].as_array().unwrap().is_empty());
        assert_eq!(m["referrers"][0]["inIndex"], false);
    }
}

#[test]
fn a_referrers_api_registry_needs_no_fallback_tag() {
    let fake = FakeRegistry::start();
    let legacy = Fixture::load("gw_mp_legacy");
    let art = Fixture::load("gw_mp_art");
    let dst = format!("docker://{}/api/golden:v1", fake.host());
    convert("artifact", &archive(&legacy.tar), &dst);
    assert_eq!(fake.tags("api/golden"), vec!["v1".to_string()]);
    {
        let st = fake.state.lock().unwrap();
        assert_eq!(st.tags["api/golden"]["v1"], art.root);
        for (image, att) in art.attestations() {
            assert_eq!(st.referrers[&("api/golden".to_string(), image)], vec![att]);
        }
    }
    let (report, ok) = inspect_json(&dst);
    assert!(ok, "{report}");
    for m in report_images(&report) {
        assert_eq!(m["referrers"][0]["via"], "referrers API", "{m}");
    }
    // From the registry back to BuildKit's legacy archive.
    let scratch = tempfile::tempdir().unwrap();
    let back = scratch.path().join("back.tar");
    convert("legacy", &dst, &archive(&back));
    let got = Fixture::load_path(&back);
    assert_eq!(got.root, legacy.root);
    assert!(got.blobs() == legacy.blobs());
}
