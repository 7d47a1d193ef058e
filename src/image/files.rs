//! The small files of an OCI layout: `index.json`, `oci-layout`, and the
//! `manifest.json` that Docker's loader reads.

use crate::json::{self, Object};
use crate::oci::{self, Descriptor};
use crate::reference::Reference;

pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The root descriptor as it stands in `index.json` and the response: the
/// user's descriptor annotations plus the creation time (unless the user set it).
pub fn root_with_created(root: &Descriptor, created: &str) -> Descriptor {
    let mut d = root.clone();
    d.annotations
        .entry(ANNOTATION_CREATED.into())
        .or_insert_with(|| created.to_string());
    d
}

/// `index.json`: one entry per name, in the order given, or one unnamed entry.
pub fn index_json(root: &Descriptor, names: &[Reference], extra: &[Descriptor]) -> Vec<u8> {
    let mut entries: Vec<String> = Vec::new();
    if names.is_empty() {
        entries.push(root.to_json());
    }
    for n in names {
        let mut d = root.clone();
        d.annotations.insert(ANNOTATION_IMAGE_NAME.into(), n.full());
        if !n.tag.is_empty() {
            d.annotations
                .insert(ANNOTATION_REF_NAME.into(), n.tag.clone());
        }
        entries.push(d.to_json());
    }
    entries.extend(extra.iter().map(Descriptor::to_json));
    Object::new()
        .int("schemaVersion", 2)
        .str("mediaType", oci::MT_OCI_INDEX)
        .raw("manifests", &json::array(entries))
        .finish()
        .into_bytes()
}

/// Docker's `manifest.json` for a single-manifest image.
pub fn docker_manifest_json(config: &str, layers: &[String], names: &[Reference]) -> Vec<u8> {
    let blob = |d: &str| format!("blobs/sha256/{}", oci::digest_hex(d));
    let tags = if names.is_empty() {
        "null".to_string()
    } else {
        json::array(names.iter().map(|n| json::string(&n.familiar())))
    };
    let entry = Object::new()
        .str("Config", &blob(config))
        .raw("RepoTags", &tags)
        .raw(
            "Layers",
            &json::array(layers.iter().map(|l| json::string(&blob(l)))),
        )
        .finish();
    json::array([entry]).into_bytes()
}
