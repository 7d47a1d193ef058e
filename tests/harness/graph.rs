//! A structural check of an exported multi-platform, attested image, derived only from the
//! build result that produced it (never from digests oxport computed): platform order,
//! attestation manifests and their references, statement subjects, predicate types and,
//! when no layer was rewritten, the layers themselves.
//!
//! It covers results whose refs are a platform map and whose attestations are all `InToto`
//! with `Self` subjects or raw ones (as in examples/two-platform). It is run against
//! BuildKit's own outputs as a positive control.

use std::collections::BTreeMap;

use serde_json::Value;

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `example.com/a/b:1.0` -> (`example.com/a/b`, `1.0`); the tag defaults to `latest`.
fn split_name(name: &str) -> (String, String) {
    let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[slash..].rfind(':') {
        Some(i) => (
            name[..slash + i].to_string(),
            name[slash + i + 1..].to_string(),
        ),
        None => (name.to_string(), "latest".to_string()),
    }
}

/// The purl BuildKit writes for a `Self` subject.
pub fn purl(name: &str, platform: &str) -> String {
    let (repo, tag) = split_name(name);
    let repo = repo.strip_prefix("docker.io/library/").unwrap_or(&repo);
    format!(
        "pkg:docker/{repo}@{tag}?platform={}",
        platform.replace('/', "%2F")
    )
}

fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, digest: &str) -> Result<&'a [u8], String> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("not a sha256 digest: {digest}"))?;
    files
        .get(&format!("blobs/sha256/{hex}"))
        .map(|v| v.as_slice())
        .ok_or_else(|| format!("blob {digest} missing"))
}

fn json_blob(files: &BTreeMap<String, Vec<u8>>, digest: &str) -> Result<Value, String> {
    serde_json::from_slice(blob(files, digest)?).map_err(|e| format!("blob {digest}: {e}"))
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

/// Checks the files of an exported OCI layout against the build result `case`
/// (a parsed case.json) and the response map.
pub fn check_attested_index(
    files: &BTreeMap<String, Vec<u8>>,
    case: &Value,
    response: &BTreeMap<String, String>,
) -> Result<(), String> {
    let attrs = &case["attrs"];
    let attr = |k: &str| attrs[k].as_str();
    let names: Vec<String> = attr("name")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let artifact = attr("oci-artifact").and_then(parse_bool).unwrap_or(true);
    let rewritten = attr("rewrite-timestamp")
        .and_then(parse_bool)
        .unwrap_or(false);

    let platforms: Value = serde_json::from_str(
        case["metadata"]["refs.platforms"]
            .as_str()
            .ok_or("the build result has no refs.platforms")?,
    )
    .map_err(|e| format!("refs.platforms: {e}"))?;
    let ids: Vec<String> = platforms["Platforms"]
        .as_array()
        .ok_or("refs.platforms has no Platforms")?
        .iter()
        .map(|p| p["ID"].as_str().unwrap_or_default().to_string())
        .collect();

    // index.json: one entry per name, all the same root.
    let index_json: Value = serde_json::from_slice(
        files
            .get("index.json")
            .ok_or("the layout has no index.json")?,
    )
    .map_err(|e| format!("index.json: {e}"))?;
    let entries = index_json["manifests"]
        .as_array()
        .ok_or("index.json has no manifests")?;
    ensure!(
        entries.len() == names.len().max(1),
        "index.json has {} entries for {} names",
        entries.len(),
        names.len()
    );
    let root = entries[0]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for (i, e) in entries.iter().enumerate() {
        ensure!(
            e["digest"] == entries[0]["digest"],
            "index.json entry {i} names another root"
        );
        if let Some(name) = names.get(i) {
            let tag = split_name(name).1;
            ensure!(
                e["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str(),
                "index.json entry {i}: ref.name is not {tag}"
            );
        }
    }
    ensure!(
        response.get("containerimage.digest") == Some(&root),
        "response containerimage.digest {:?} is not the root {root}",
        response.get("containerimage.digest")
    );

    // The root index: image manifests in platform order, then attestation manifests.
    let index = json_blob(files, &root)?;
    ensure!(
        index["mediaType"] == "application/vnd.oci.image.index.v1+json",
        "the root is not an OCI index"
    );
    let manifests = index["manifests"]
        .as_array()
        .ok_or("the root index has no manifests")?;
    let attested: Vec<&String> = ids
        .iter()
        .filter(|id| {
            case["attestations"][id.as_str()]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        })
        .collect();
    ensure!(
        manifests.len() == ids.len() + attested.len(),
        "the root index has {} manifests, expected {} images and {} attestation manifests",
        manifests.len(),
        ids.len(),
        attested.len()
    );
    let mut image_digest = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        let d = &manifests[i];
        let p = &d["platform"];
        let got = format!(
            "{}/{}",
            p["os"].as_str().unwrap_or(""),
            p["architecture"].as_str().unwrap_or("")
        );
        ensure!(
            id.starts_with(&got),
            "manifest {i} has platform {got}, expected {id}"
        );
        let digest = d["digest"].as_str().unwrap_or_default().to_string();
        let m = json_blob(files, &digest)?;
        check_image_manifest(files, &m, &case["refs"][id.as_str()], rewritten)
            .map_err(|e| format!("{id} image manifest: {e}"))?;
        image_digest.insert(id.clone(), (digest, d["size"].clone()));
    }

    for (j, id) in attested.iter().enumerate() {
        let d = &manifests[ids.len() + j];
        let (img, img_size) = &image_digest[id.as_str()];
        let ann = &d["annotations"];
        ensure!(
            ann["vnd.docker.reference.type"] == "attestation-manifest"
                && ann["vnd.docker.reference.digest"] == img.as_str(),
            "attestation manifest {j} does not refer to the {id} image manifest"
        );
        ensure!(
            d["platform"]["os"] == "unknown" && d["platform"]["architecture"] == "unknown",
            "attestation manifest {j} platform is not unknown/unknown"
        );
        ensure!(
            d.get("artifactType").is_none(),
            "attestation descriptor {j} has an artifactType"
        );
        let m = json_blob(files, d["digest"].as_str().unwrap_or_default())?;
        if artifact {
            ensure!(
                m["artifactType"] == "application/vnd.docker.attestation.manifest.v1+json",
                "{id} attestation manifest: artifactType missing or wrong"
            );
            ensure!(
                m["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
                    && m["config"]["data"] == "e30="
                    && m["config"]["size"] == 2,
                "{id} attestation manifest: config is not the empty descriptor with data"
            );
            ensure!(
                blob(files, m["config"]["digest"].as_str().unwrap_or_default())? == b"{}",
                "{id} attestation manifest: the empty config blob is not {{}}"
            );
            let subject = &m["subject"];
            ensure!(
                subject["digest"] == img.as_str()
                    && subject["size"] == *img_size
                    && subject["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
                    && subject.as_object().map(|o| o.len()) == Some(3),
                "{id} attestation manifest: subject is not the image manifest"
            );
        } else {
            ensure!(
                m.get("artifactType").is_none() && m.get("subject").is_none(),
                "{id} legacy attestation manifest has artifactType or subject"
            );
            ensure!(
                m["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json",
                "{id} legacy attestation manifest: config media type"
            );
        }
        let atts = case["attestations"][id.as_str()].as_array().unwrap();
        let layers = m["layers"].as_array().ok_or("no layers")?;
        ensure!(
            layers.len() == atts.len(),
            "{id} attestation manifest has {} statements for {} attestations",
            layers.len(),
            atts.len()
        );
        for (k, (layer, att)) in layers.iter().zip(atts).enumerate() {
            let pt = att["predicateType"].as_str().unwrap_or_default();
            ensure!(
                layer["mediaType"] == "application/vnd.in-toto+json"
                    && layer["annotations"]["in-toto.io/predicate-type"] == pt,
                "{id} statement {k}: media type or predicate-type annotation"
            );
            let st = json_blob(files, layer["digest"].as_str().unwrap_or_default())?;
            ensure!(
                st["_type"] == "https://in-toto.io/Statement/v1" && st["predicateType"] == pt,
                "{id} statement {k}: _type or predicateType"
            );
            let subjects = att["subjects"].as_array().cloned().unwrap_or_default();
            let plain_self = subjects
                .iter()
                .all(|s| s["kind"] == "Self" && s.get("name").is_none());
            if plain_self {
                let want: Vec<Value> = names
                    .iter()
                    .map(|n| {
                        serde_json::json!({
                            "name": purl(n, id),
                            "digest": {"sha256": img.trim_start_matches("sha256:")}
                        })
                    })
                    .collect();
                ensure!(
                    st["subject"] == Value::Array(want),
                    "{id} statement {k}: subjects are not the image's purls"
                );
            }
        }
    }
    Ok(())
}

fn check_image_manifest(
    files: &BTreeMap<String, Vec<u8>>,
    m: &Value,
    layers_in: &Value,
    rewritten: bool,
) -> Result<(), String> {
    let layers_in = layers_in.as_array().ok_or("no ref for this platform")?;
    let layers = m["layers"].as_array().ok_or("no layers")?;
    ensure!(
        layers.len() == layers_in.len(),
        "{} layers for {} input layers",
        layers.len(),
        layers_in.len()
    );
    let config = json_blob(files, m["config"]["digest"].as_str().unwrap_or_default())?;
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or("config has no rootfs.diff_ids")?;
    ensure!(
        diff_ids.len() == layers_in.len(),
        "config lists {} diff_ids",
        diff_ids.len()
    );
    for (i, (out, inp)) in layers.iter().zip(layers_in).enumerate() {
        blob(files, out["digest"].as_str().unwrap_or_default())?;
        if !rewritten {
            ensure!(
                out["digest"] == inp["digest"] && out["size"] == inp["size"],
                "layer {i} is not the input blob"
            );
            ensure!(
                diff_ids[i] == inp["diffID"],
                "diff_id {i} is not the input diffID"
            );
        }
    }
    Ok(())
}
