//! Step 4b of an export, when the request names a key (`oxport.sign`):
//! the image and its attestations signed, as cosign signs them, and the
//! signatures added to the graph as referrers.
//!
//! - The root gets a bundle of cosign's `sign/v1` statement naming its
//!   digest, as `cosign sign` signs an index: `cosign verify` passes for the
//!   tag and the root's digest, which is what a pull by tag resolves to.
//!   With `oxport.sign-recursive`, so does each platform manifest under an
//!   index (`cosign sign --recursive`), for verifiers given a platform's
//!   digest. Not by default: each signature is three more requests to the
//!   registry (bundle upload and manifest), which on a small image is most
//!   of what signing costs.
//! - Each attestation statement is signed as it is (a DSSE envelope of the
//!   statement's own bytes) and attached to the platform manifest the
//!   attestation manifest is for, which is what the statement names as its
//!   subject; `cosign verify-attestation --type ...` then finds it there.
//!
//! - With `oxport.sign-format=legacy` or `both`, the same signatures also
//!   go into cosign's older tags: the simple-signing payload of each signed
//!   manifest as a layer of its `.sig` tag, each signed statement's envelope
//!   as a layer of the platform's `.att` tag. The payload names the first
//!   of the image's names as the repository (cosign's verifier reads only
//!   the digest in it).
//!
//! Pure apart from the signer: no I/O.

use serde::Deserialize;

use crate::assemble::attest::{PREDICATE_TYPE_ANNOTATION, REFERENCE_DIGEST_ANNOTATION};
use crate::assemble::{Blob, Graph};
use crate::error::{ErrorKind, ExportError, Result};
use crate::oci::Descriptor;
use crate::options::SignFormat;
use crate::sign::artifacts::{self, Attachment};
use crate::sign::bundle::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::sign::tags::{self, TagKind};
use crate::sign::Signer;

/// The in-toto statement media type of attestation layers.
const MT_IN_TOTO: &str = "application/vnd.in-toto+json";

/// A layer of a signature tag and its bytes.
type TagLayer = (Descriptor, Vec<u8>);

/// How an export signs: with which signer, dated when, in which forms, and
/// the repository a `.sig` payload names.
pub(super) struct Signing<'a> {
    pub signer: &'a dyn Signer,
    /// RFC 3339; dates the bundles.
    pub created: Option<&'a str>,
    pub format: SignFormat,
    /// Each platform manifest under an index signed too.
    pub recursive: bool,
    /// `registry/path` of the image's first name (empty without names).
    pub repository: String,
}

/// Signs `graph` as `how` says.
pub(super) fn sign_graph(graph: &mut Graph, how: &Signing<'_>) -> Result<()> {
    let root = graph.root.clone();
    let mut signed = vec![root.clone()];
    if how.recursive
        && !graph
            .image_manifests
            .iter()
            .any(|m| m.digest == root.digest)
    {
        signed.extend(graph.image_manifests.iter().cloned());
    }
    let mut attachments = Vec::new();
    let mut tagged: Vec<(String, Vec<TagLayer>)> = Vec::new();
    for d in &signed {
        if how.format.bundles() {
            let statement = artifacts::image_statement(&d.digest);
            attachments.push(attach(how, &statement, artifacts::SIGN_PREDICATE_TYPE, d)?);
        }
        if how.format.tags() {
            let payload = tags::simple_signing_payload(&how.repository, &d.digest);
            let layer = tags::signature_layer(how.signer, &payload)
                .map_err(|e| signing_failed(&d.digest, e))?;
            tagged.push((tags::tag_for(&d.digest, TagKind::Signatures), vec![layer]));
        }
    }
    for att in &graph.attestation_manifests {
        let Some(image) = attested_image(graph, att) else {
            continue;
        };
        let mut layers = Vec::new();
        for (predicate_type, statement) in statements(graph, att)? {
            if how.format.bundles() {
                attachments.push(attach(how, &statement, &predicate_type, &image)?);
            }
            if how.format.tags() {
                let envelope = Envelope::sign(how.signer, IN_TOTO_PAYLOAD_TYPE, &statement)
                    .map_err(|e| signing_failed(&image.digest, e))?;
                layers.push(tags::attestation_layer(&envelope, &predicate_type));
            }
        }
        if !layers.is_empty() {
            tagged.push((tags::tag_for(&image.digest, TagKind::Attestations), layers));
        }
    }
    for a in attachments {
        for (d, bytes) in a.blobs {
            graph.add(&d, Blob::Bytes(bytes));
        }
        graph.add(&a.descriptor, Blob::Bytes(a.manifest));
        graph
            .subjects
            .insert(a.descriptor.digest.clone(), a.subject);
        graph.signatures.push(a.descriptor);
    }
    for (tag, layers) in tagged {
        add_tag(graph, tag, layers);
    }
    Ok(())
}

/// Adds a tag of cosign's scheme holding `layers` (and nothing else: a
/// push adds them to what the registry's tag lists).
fn add_tag(graph: &mut Graph, tag: String, layers: Vec<TagLayer>) {
    let descriptors: Vec<Descriptor> = layers.iter().map(|(d, _)| d.clone()).collect();
    let t = tags::tag_manifest(&descriptors);
    for (d, bytes) in layers {
        graph.add(&d, Blob::Bytes(bytes));
    }
    graph.add(&t.config.0, Blob::Bytes(t.config.1));
    graph.add(&t.descriptor, Blob::Bytes(t.manifest));
    graph.signature_tags.push((tag, t.descriptor));
}

fn signing_failed(digest: &str, e: String) -> ExportError {
    ExportError::new(ErrorKind::Internal, format!("signing {digest}: {e}"))
}

fn attach(
    how: &Signing<'_>,
    statement: &[u8],
    predicate_type: &str,
    subject: &Descriptor,
) -> Result<Attachment> {
    artifacts::bundle_referrer(how.signer, statement, predicate_type, subject, how.created)
        .map_err(|e| signing_failed(&subject.digest, e))
}

/// The image manifest an attestation manifest is for.
fn attested_image(graph: &Graph, att: &Descriptor) -> Option<Descriptor> {
    let digest = graph
        .subjects
        .get(&att.digest)
        .or_else(|| att.annotations.get(REFERENCE_DIGEST_ANNOTATION))?;
    graph
        .image_manifests
        .iter()
        .find(|m| &m.digest == digest)
        .map(|m| Descriptor::new(&m.media_type, m.digest.clone(), m.size))
}

#[derive(Deserialize)]
struct Layers {
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
struct Layer {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// The (predicate type, statement bytes) of an attestation manifest this
/// export assembled (so its bytes are in the graph).
fn statements(graph: &Graph, att: &Descriptor) -> Result<Vec<(String, Vec<u8>)>> {
    let bytes = |digest: &str| match graph.blobs.get(digest) {
        Some((_, Blob::Bytes(b))) => Ok(b.as_slice()),
        _ => Err(ExportError::new(
            ErrorKind::Internal,
            format!("signing: {digest} is not in the assembled graph"),
        )),
    };
    let m: Layers = serde_json::from_slice(bytes(&att.digest)?).map_err(|e| {
        ExportError::new(
            ErrorKind::Internal,
            format!("signing: attestation manifest {}: {e}", att.digest),
        )
    })?;
    m.layers
        .iter()
        .filter(|l| l.media_type == MT_IN_TOTO)
        .map(|l| {
            let pt = l
                .annotations
                .get(PREDICATE_TYPE_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            Ok((pt, bytes(&l.digest)?.to_vec()))
        })
        .collect()
}

#[cfg(test)]
#[path = "sign_tests.rs"]
mod tests;
