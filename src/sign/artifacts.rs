//! What signing attaches to an image, as bytes: the statement that signs an
//! image (cosign's `sign/v1` predicate), and the referrer manifest that
//! carries a bundle (an empty config, the bundle as the only layer, the
//! signed manifest as subject), in the shape `cosign sign` and
//! `cosign attest` push.
//!
//! Pure: the bytes depend only on the inputs and the signer's signature.

use serde_json::{json, Map, Value};

use super::bundle::{Bundle, BUNDLE_MEDIA_TYPE};
use super::Signer;
use crate::oci::{Descriptor, MT_OCI_MANIFEST};

/// cosign's predicate type of an image signature.
pub const SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The OCI empty descriptor's media type and content.
pub const MT_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// The referrer manifest annotations cosign reads and writes.
pub const ANN_CONTENT: &str = "dev.sigstore.bundle.content";
pub const ANN_PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";
pub const ANN_CREATED: &str = "org.opencontainers.image.created";

/// A referrer to attach: its manifest and the blobs it names.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The manifest's descriptor, with its artifact type (for referrers lists).
    pub descriptor: Descriptor,
    pub manifest: Vec<u8>,
    /// The config and the bundle: (descriptor, bytes).
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
    /// The digest of the manifest it signs.
    pub subject: String,
    /// What the signed statement is (its predicate type).
    pub predicate_type: String,
}

/// The in-toto statement (v1) by which cosign signs the manifest `digest`.
pub fn image_statement(digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": hex}}],
        "predicateType": SIGN_PREDICATE_TYPE,
        "predicate": {},
    }))
    .expect("a statement serializes")
}

/// `statement` (of `predicate_type`) signed with `signer`, as a referrer of
/// `subject`. `created` (RFC 3339) becomes the creation annotation.
pub fn bundle_referrer(
    signer: &dyn Signer,
    statement: &[u8],
    predicate_type: &str,
    subject: &Descriptor,
    created: Option<&str>,
) -> Result<Attachment, String> {
    let bundle = Bundle::of_statement(signer, statement)?.to_json();
    let config = Descriptor::of(MT_EMPTY, EMPTY_CONFIG);
    let layer = Descriptor::of(BUNDLE_MEDIA_TYPE, &bundle);
    let mut annotations = Map::new();
    annotations.insert(ANN_CONTENT.into(), "dsse-envelope".into());
    annotations.insert(ANN_PREDICATE_TYPE.into(), predicate_type.into());
    if let Some(c) = created {
        annotations.insert(ANN_CREATED.into(), c.into());
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": {
            "mediaType": MT_EMPTY,
            "size": config.size,
            "digest": config.digest,
            "artifactType": BUNDLE_MEDIA_TYPE,
        },
        "layers": [short(&layer)],
        "annotations": Value::Object(annotations),
        "subject": short(subject),
        "artifactType": BUNDLE_MEDIA_TYPE,
    }))
    .expect("a manifest serializes");
    let mut descriptor = Descriptor::of(MT_OCI_MANIFEST, &manifest);
    descriptor.artifact_type = BUNDLE_MEDIA_TYPE.into();
    Ok(Attachment {
        descriptor,
        manifest,
        blobs: vec![(config, EMPTY_CONFIG.to_vec()), (layer, bundle)],
        subject: subject.digest.clone(),
        predicate_type: predicate_type.to_string(),
    })
}

/// A descriptor as cosign writes one: media type, size, digest.
fn short(d: &Descriptor) -> Value {
    json!({"mediaType": d.media_type, "size": d.size, "digest": d.digest})
}

#[cfg(test)]
#[path = "artifacts_tests.rs"]
mod tests;
