//! Signatures of an image: sigstore bundles attached as referrers (listed in
//! a layout's `index.json`, or found through a registry's referrers), each
//! with what it signs and, given a public key, whether it verifies. cosign's
//! older `.sig` and `.att` tags are read by [`super::legacy_tags`].
//!
//! A signature verifies when its DSSE envelope's signature checks under the
//! key and its in-toto statement names the signed manifest's digest as a
//! subject, which is what cosign requires of a key-based signature.

use serde_json::Value;

use super::Walker;
use crate::image::parse;
use crate::oci::Descriptor;
use crate::sign::bundle::{Bundle, BUNDLE_MEDIA_TYPE};
use crate::sign::PublicKey;

#[derive(Debug, Clone)]
pub struct Signature {
    pub location: String,
    pub descriptor: Descriptor,
    /// The digest of the manifest it signs.
    pub subject: String,
    /// What the signed statement is: cosign's `sign/v1` for an image
    /// signature, else an attestation's predicate type.
    pub predicate_type: String,
    /// With a key: verified, or why not.
    pub check: Option<Result<(), String>>,
}

/// Whether a listed descriptor says it is a sigstore bundle.
pub fn is_signature(d: &Descriptor) -> bool {
    d.artifact_type == BUNDLE_MEDIA_TYPE
}

impl Walker<'_> {
    /// The signature `d` names, when its manifest is a bundle referrer.
    pub(super) fn signature(&mut self, d: &Descriptor, at: &str) -> Option<Signature> {
        let bytes = self.json(d, at)?;
        let m = match parse::manifest(&bytes, at) {
            Ok(m) => m.value,
            Err(e) => {
                self.problem(at, e.message);
                return None;
            }
        };
        if m.artifact_type != BUNDLE_MEDIA_TYPE {
            return None;
        }
        let mut sig = Signature {
            location: at.to_string(),
            descriptor: d.clone(),
            subject: m
                .subject
                .as_ref()
                .map(|s| s.digest.clone())
                .unwrap_or_default(),
            predicate_type: m
                .annotations
                .get(crate::sign::artifacts::ANN_PREDICATE_TYPE)
                .cloned()
                .unwrap_or_default(),
            check: None,
        };
        let Some(layer) = m.layers.first() else {
            self.problem(at, "a signature manifest without its bundle layer");
            return Some(sig);
        };
        let lat = format!("{at}/layers[0]");
        let bundle = self.json(layer, &lat);
        if let (Some(key), Some(bundle)) = (self.key, bundle) {
            sig.check = Some(verify(&bundle, key, &sig.subject));
        }
        Some(sig)
    }
}

/// Checks `bundle` under `key` as a signature of the manifest `subject`.
fn verify(bundle: &[u8], key: &PublicKey, subject: &str) -> Result<(), String> {
    let b = Bundle::from_json(bundle)?;
    let statement = b.dsse_envelope.verify(key)?;
    names_subject(&statement, subject)
}

/// Whether the in-toto `statement` names `subject` (`sha256:<hex>`) among
/// its subjects.
pub(super) fn names_subject(statement: &[u8], subject: &str) -> Result<(), String> {
    let v: Value = serde_json::from_slice(statement)
        .map_err(|e| format!("the signed statement is not JSON: {e}"))?;
    let hex = subject.strip_prefix("sha256:").unwrap_or(subject);
    let names = v
        .get("subject")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| s.pointer("/digest/sha256").and_then(Value::as_str) == Some(hex));
    if !names {
        return Err(format!("the signed statement does not name {subject}"));
    }
    Ok(())
}
