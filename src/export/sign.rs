//! Step 4b of an export, when the request names a key (`oxport.sign`):
//! the image and its attestations signed, as cosign signs them, and the
//! signatures added to the graph as referrers.
//!
//! - The root, and each platform manifest under an index, get a bundle of
//!   cosign's `sign/v1` statement naming their digest (what `cosign sign
//!   --recursive` makes), so `cosign verify` passes for the tag and for
//!   each platform's digest.
//! - Each attestation statement is signed as it is (a DSSE envelope of the
//!   statement's own bytes) and attached to the platform manifest the
//!   attestation manifest is for, which is what the statement names as its
//!   subject; `cosign verify-attestation --type ...` then finds it there.
//!
//! Pure apart from the signer: no I/O.

use serde::Deserialize;

use crate::assemble::attest::{PREDICATE_TYPE_ANNOTATION, REFERENCE_DIGEST_ANNOTATION};
use crate::assemble::{Blob, Graph};
use crate::error::{ErrorKind, ExportError, Result};
use crate::oci::Descriptor;
use crate::sign::artifacts::{self, Attachment};
use crate::sign::Signer;

/// The in-toto statement media type of attestation layers.
const MT_IN_TOTO: &str = "application/vnd.in-toto+json";

/// Signs `graph` with `signer`; `created` (RFC 3339) dates the signatures.
pub(super) fn sign_graph(
    graph: &mut Graph,
    signer: &dyn Signer,
    created: Option<&str>,
) -> Result<()> {
    let mut attachments = Vec::new();
    let root = graph.root.clone();
    let mut signed = vec![root.clone()];
    if !graph
        .image_manifests
        .iter()
        .any(|m| m.digest == root.digest)
    {
        signed.extend(graph.image_manifests.iter().cloned());
    }
    for d in &signed {
        let statement = artifacts::image_statement(&d.digest);
        attachments.push(attach(
            signer,
            &statement,
            artifacts::SIGN_PREDICATE_TYPE,
            d,
            created,
        )?);
    }
    for att in &graph.attestation_manifests {
        let Some(image) = attested_image(graph, att) else {
            continue;
        };
        for (predicate_type, statement) in statements(graph, att)? {
            attachments.push(attach(
                signer,
                &statement,
                &predicate_type,
                &image,
                created,
            )?);
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
    Ok(())
}

fn attach(
    signer: &dyn Signer,
    statement: &[u8],
    predicate_type: &str,
    subject: &Descriptor,
    created: Option<&str>,
) -> Result<Attachment> {
    artifacts::bundle_referrer(signer, statement, predicate_type, subject, created).map_err(|e| {
        ExportError::new(
            ErrorKind::Internal,
            format!("signing {}: {e}", subject.digest),
        )
    })
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
