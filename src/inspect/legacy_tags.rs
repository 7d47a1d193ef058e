//! Signatures in cosign's older tag scheme: `sha256-<hex>.sig` (each layer
//! a simple-signing payload, its signature in an annotation) and
//! `sha256-<hex>.att` (each layer a DSSE envelope of an in-toto statement).
//! A layout lists such tags as named entries of `index.json`; a registry
//! image's are found by asking for the two tags of each of its manifests.
//!
//! A `.sig` layer verifies when its signature checks under the key over the
//! payload's bytes and the payload names the tagged digest; an `.att` layer
//! when its envelope checks and the statement names the digest. That is what
//! cosign requires of them on its older path.

use base64::Engine as _;
use serde_json::Value;

use super::signatures::{names_subject, Signature};
use super::{Root, Walker};
use crate::image::remote::RegistrySource;
use crate::oci::Descriptor;
use crate::sign::artifacts::SIGN_PREDICATE_TYPE;
use crate::sign::bundle::Envelope;
use crate::sign::tags::{self, TagKind, ANN_PREDICATE_TYPE, ANN_SIGNATURE};
use crate::sign::PublicKey;

/// The roots and image manifests of the tree, in order, each once: what
/// cosign signs.
pub(super) fn tree_digests(roots: &[Root]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let all = roots.iter().flat_map(|r| {
        std::iter::once(&r.descriptor.digest).chain(r.images.iter().map(|i| &i.descriptor.digest))
    });
    for d in all {
        if !out.contains(d) {
            out.push(d.clone());
        }
    }
    out
}

/// The signatures in the `.sig` and `.att` tags of each manifest in `tree`
/// (two manifest requests per digest; a missing tag is no signature).
pub(super) fn from_registry(
    w: &mut Walker<'_>,
    tree: &[String],
    remote: &RegistrySource,
) -> Vec<Signature> {
    let mut out = Vec::new();
    for digest in tree {
        for kind in [TagKind::Signatures, TagKind::Attestations] {
            let tag = tags::tag_for(digest, kind);
            let at = format!("tag {tag}");
            match remote.load_tag(&tag) {
                Ok(Some(d)) => out.extend(w.tag_signatures(&d, (digest, kind), &at)),
                Ok(None) => {}
                Err(e) => w.problem(&at, e.message),
            }
        }
    }
    out
}

impl Walker<'_> {
    /// The signatures that the tag manifest `d` (of `kind`, for `subject`)
    /// holds, one per layer.
    pub(super) fn tag_signatures(
        &mut self,
        d: &Descriptor,
        (subject, kind): (&str, TagKind),
        at: &str,
    ) -> Vec<Signature> {
        let Some(bytes) = self.json(d, at) else {
            return Vec::new();
        };
        let layers = match tags::layers_of(&bytes) {
            Ok(l) => l,
            Err(e) => {
                self.problem(at, e);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (j, layer) in layers.iter().enumerate() {
            let lat = format!("{at}/layers[{j}]");
            let predicate_type = match kind {
                TagKind::Signatures => SIGN_PREDICATE_TYPE.to_string(),
                TagKind::Attestations => layer
                    .annotations
                    .get(ANN_PREDICATE_TYPE)
                    .cloned()
                    .unwrap_or_default(),
            };
            let content = self.json(layer, &lat);
            let check = match (self.key, content) {
                (Some(key), Some(c)) => Some(verify_layer(layer, &c, key, subject, kind)),
                (Some(_), None) => Some(Err("its layer could not be read".to_string())),
                (None, _) => None,
            };
            out.push(Signature {
                location: lat,
                descriptor: layer.clone(),
                subject: subject.to_string(),
                predicate_type,
                check,
            });
        }
        out
    }
}

/// Checks one layer of a `.sig` or `.att` tag under `key`.
fn verify_layer(
    layer: &Descriptor,
    content: &[u8],
    key: &PublicKey,
    subject: &str,
    kind: TagKind,
) -> Result<(), String> {
    match kind {
        TagKind::Signatures => {
            let sig = layer
                .annotations
                .get(ANN_SIGNATURE)
                .ok_or_else(|| format!("the layer has no {ANN_SIGNATURE} annotation"))?;
            let sig = base64::engine::general_purpose::STANDARD
                .decode(sig)
                .map_err(|e| format!("the signature is not base64: {e}"))?;
            if !key.verify(content, &sig) {
                return Err("the signature does not verify with the key".into());
            }
            let payload: Value = serde_json::from_slice(content)
                .map_err(|e| format!("the signed payload is not JSON: {e}"))?;
            let named = payload
                .pointer("/critical/image/docker-manifest-digest")
                .and_then(Value::as_str);
            if named != Some(subject) {
                return Err(format!(
                    "the signed payload names {}, not {subject}",
                    named.unwrap_or("no digest")
                ));
            }
            Ok(())
        }
        TagKind::Attestations => {
            let envelope: Envelope =
                serde_json::from_slice(content).map_err(|e| format!("not a DSSE envelope: {e}"))?;
            let statement = envelope.verify(key)?;
            names_subject(&statement, subject)
        }
    }
}
