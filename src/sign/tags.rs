//! cosign's older tag scheme, for verifiers that predate sigstore bundles:
//! the signatures of a manifest are the layers of an image manifest tagged
//! `sha256-<hex>.sig`, its attestations those of one tagged
//! `sha256-<hex>.att`.
//!
//! - A `.sig` layer is a simple-signing payload (the signed digest and the
//!   repository) whose signature, ECDSA over SHA-256 of the payload, is the
//!   layer's `dev.cosignproject.cosign/signature` annotation.
//! - An `.att` layer is a DSSE envelope of an in-toto statement (the
//!   signature is inside; the annotation is empty) with a `predicateType`
//!   annotation.
//! - The config is the synthetic image config cosign writes: one diff ID
//!   (the layer's digest, as the layer is not compressed) and one empty
//!   history entry per layer.
//!
//! A tag holds every signature made for the digest, so a new one is added
//! to what the tag lists ([`merged_layers`]), never put in its place.
//!
//! Pure: bytes in, bytes out. The JSON is written in cosign's field order
//! (Go's encoding of its structs), compact.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::bundle::Envelope;
use super::Signer;
use crate::oci::{Descriptor, MT_OCI_CONFIG, MT_OCI_MANIFEST};

pub const MT_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const MT_DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The layer annotation that holds a `.sig` layer's signature.
pub const ANN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// The layer annotation that names an `.att` layer's predicate type.
pub const ANN_PREDICATE_TYPE: &str = "predicateType";
/// The creation time of cosign's synthetic configs and history entries.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Signatures or attestations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Signatures,
    Attestations,
}

/// The tag under which cosign looks for what `kind` holds of `digest`:
/// `sha256-<hex>.sig` or `.att`.
pub fn tag_for(digest: &str, kind: TagKind) -> String {
    let suffix = match kind {
        TagKind::Signatures => "sig",
        TagKind::Attestations => "att",
    };
    format!("{}.{suffix}", digest.replacen(':', "-", 1))
}

/// The digest and kind a tag of cosign's scheme is for ([`tag_for`]
/// backwards); None for any other tag.
pub fn tag_subject(tag: &str) -> Option<(String, TagKind)> {
    let (stem, kind) = if let Some(s) = tag.strip_suffix(".sig") {
        (s, TagKind::Signatures)
    } else {
        (tag.strip_suffix(".att")?, TagKind::Attestations)
    };
    let digest = stem.replacen('-', ":", 1);
    crate::oci::is_sha256_digest(&digest).then_some((digest, kind))
}

/// The simple-signing payload that a `.sig` layer signs: `digest`, pushed
/// to `repository` (`registry/path`, no tag).
pub fn simple_signing_payload(repository: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .expect("a payload serializes")
}

/// A `.sig` layer: `payload` and its signature by `signer`.
pub fn signature_layer(
    signer: &dyn Signer,
    payload: &[u8],
) -> Result<(Descriptor, Vec<u8>), String> {
    let sig = signer.sign(payload)?;
    let mut d = Descriptor::of(MT_SIMPLE_SIGNING, payload);
    d.annotations
        .insert(ANN_SIGNATURE.into(), STANDARD.encode(sig));
    Ok((d, payload.to_vec()))
}

/// An `.att` layer: a signed statement's envelope and its predicate type.
pub fn attestation_layer(envelope: &Envelope, predicate_type: &str) -> (Descriptor, Vec<u8>) {
    let bytes = serde_json::to_vec(envelope).expect("an envelope serializes");
    let mut d = Descriptor::of(MT_DSSE_ENVELOPE, &bytes);
    d.annotations.insert(ANN_SIGNATURE.into(), String::new());
    d.annotations
        .insert(ANN_PREDICATE_TYPE.into(), predicate_type.into());
    (d, bytes)
}

/// What a tag holds for its layers: the config and the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct TagManifest {
    pub config: (Descriptor, Vec<u8>),
    pub descriptor: Descriptor,
    pub manifest: Vec<u8>,
}

/// The config and manifest cosign writes for `layers` (in their order).
pub fn tag_manifest(layers: &[Descriptor]) -> TagManifest {
    let config = serde_json::to_vec(&json!({
        "architecture": "",
        "created": ZERO_TIME,
        "history": layers.iter().map(|_| json!({"created": ZERO_TIME})).collect::<Vec<_>>(),
        "os": "",
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.digest.as_str()).collect::<Vec<_>>(),
        },
        "config": {},
    }))
    .expect("a config serializes");
    let config_desc = Descriptor::of(MT_OCI_CONFIG, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": layer_json(&config_desc),
        "layers": layers.iter().map(layer_json).collect::<Vec<_>>(),
    }))
    .expect("a manifest serializes");
    TagManifest {
        descriptor: Descriptor::of(MT_OCI_MANIFEST, &manifest),
        config: (config_desc, config),
        manifest,
    }
}

/// A descriptor as cosign writes one: media type, size, digest, annotations.
fn layer_json(d: &Descriptor) -> Value {
    let mut o = Map::new();
    o.insert("mediaType".into(), d.media_type.clone().into());
    o.insert("size".into(), d.size.into());
    o.insert("digest".into(), d.digest.clone().into());
    if !d.annotations.is_empty() {
        let a: Map<String, Value> = d
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        o.insert("annotations".into(), Value::Object(a));
    }
    Value::Object(o)
}

#[derive(Deserialize)]
struct Layers {
    #[serde(default)]
    layers: Vec<LayerEntry>,
}

#[derive(Deserialize)]
struct LayerEntry {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// The layers of `manifest` (what a tag lists now).
pub fn layers_of(manifest: &[u8]) -> Result<Vec<Descriptor>, String> {
    let m: Layers = serde_json::from_slice(manifest)
        .map_err(|e| format!("not an image manifest with layers: {e}"))?;
    Ok(m.layers
        .into_iter()
        .map(|l| {
            let mut d = Descriptor::new(&l.media_type, l.digest, l.size);
            d.annotations = l.annotations;
            d
        })
        .collect())
}

/// The layers a tag must list once `ours` are added to `existing` (its
/// manifest now): what it lists, then each of ours it lacks (the same
/// digest with the same annotations). None when it lists all of ours.
///
/// A layer with our digest but another signature stays, next to ours: the
/// same payload signed by another key is that key's signature.
pub fn merged_layers(
    existing: Option<&[u8]>,
    ours: &[Descriptor],
) -> Result<Option<Vec<Descriptor>>, String> {
    let mut layers = match existing {
        Some(m) => layers_of(m)?,
        None => Vec::new(),
    };
    let listed = |layers: &[Descriptor], d: &Descriptor| {
        layers
            .iter()
            .any(|l| l.digest == d.digest && l.annotations == d.annotations)
    };
    let missing: Vec<&Descriptor> = ours.iter().filter(|d| !listed(&layers, d)).collect();
    if missing.is_empty() {
        return Ok(None);
    }
    layers.extend(missing.into_iter().cloned());
    Ok(Some(layers))
}

/// True when `manifest` lists every layer of `ours`.
pub fn lists_all(manifest: &[u8], ours: &[Descriptor]) -> Result<bool, String> {
    Ok(merged_layers(Some(manifest), ours)?.is_none())
}

#[cfg(test)]
#[path = "tags_tests.rs"]
mod tests;
