//! Referrers of a registry image: for the root and for each image manifest,
//! the manifests that name it as their subject, from the referrers API or,
//! on registries without it, the fallback tag. Attestation manifests found
//! only there (detached ones) are walked and checked like those the index
//! lists; other referrers (signatures, for example) are listed and verified.
//!
//! A subject may have thousands of referrers, and verifying one costs a
//! request. So the first [`MAX_VERIFIED`] of each subject are read and
//! verified; the rest are listed as their descriptors give them, marked as
//! not verified, at no cost.

use std::collections::HashSet;

use tracing::warn;

use super::signatures::Signature;
use super::{Attestation, ImageIndex, Root, Walker};
use crate::convert::is_attestation_entry;
use crate::image::remote::RegistrySource;
use crate::oci::{self, Descriptor};

/// Referrers of one subject that are read and verified.
pub const MAX_VERIFIED: usize = 64;

/// One manifest that names an image manifest (or the root) as its subject.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// As the referrers list gives it: media type, digest, size, artifactType.
    pub descriptor: Descriptor,
    /// `referrers API` or `fallback tag <tag>`.
    pub via: String,
    /// Also listed in the image's index (not detached).
    pub in_index: bool,
    /// Read and verified (only the first [`MAX_VERIFIED`] of a subject are).
    pub verified: bool,
}

fn is_attestation(d: &Descriptor) -> bool {
    d.artifact_type == oci::ARTIFACT_TYPE_ATTESTATION || is_attestation_entry(d)
}

/// Every manifest digest the walked tree holds.
fn tree_digests(roots: &[Root]) -> HashSet<String> {
    let mut out = HashSet::new();
    for r in roots {
        out.insert(r.descriptor.digest.clone());
        for i in &r.images {
            out.insert(i.descriptor.digest.clone());
            out.extend(i.attestations.iter().map(|a| a.descriptor.digest.clone()));
        }
        out.extend(r.unattached.iter().map(|a| a.descriptor.digest.clone()));
    }
    out
}

impl Walker<'_> {
    /// The referrers of `subject`, each verified; problems are recorded at
    /// `at/referrers[i]`.
    fn referrers_of(
        &mut self,
        remote: &RegistrySource,
        subject: &Descriptor,
        at: &str,
        tree: &HashSet<String>,
    ) -> Vec<Referrer> {
        let listed = match remote.referrers(&subject.digest) {
            Ok(Some(l)) => l,
            Ok(None) => return Vec::new(),
            Err(e) => {
                self.problem(&format!("{at}/referrers"), e.message);
                return Vec::new();
            }
        };
        let total = listed.manifests.len();
        let mut out = Vec::with_capacity(total);
        for (i, d) in listed.manifests.into_iter().enumerate() {
            let verified = i < MAX_VERIFIED;
            let via = if verified {
                listed.via.clone()
            } else {
                format!(
                    "{} (not verified: {total} referrers, the first {MAX_VERIFIED} are)",
                    listed.via
                )
            };
            if verified {
                let rat = format!("{at}/referrers[{i}]");
                // Read once through the store, which then serves it to the check.
                match remote.load(&d.digest) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        warn!(subject = %subject.digest, referrer = %d.digest, "a listed referrer is not in the repository")
                    }
                    Err(e) => self.problem(&rat, e.message),
                }
                self.check(&d, &rat);
            }
            out.push(Referrer {
                in_index: tree.contains(&d.digest),
                descriptor: d,
                via,
                verified,
            });
        }
        out
    }
}

/// Fills in the referrers of every root and image manifest, and returns the
/// detached attestation manifests, walked, and the signatures.
pub(super) fn collect(
    w: &mut Walker<'_>,
    roots: &mut [Root],
    remote: &RegistrySource,
) -> (Vec<Attestation>, Vec<Signature>) {
    let tree = tree_digests(roots);
    let images = ImageIndex::of(
        roots
            .iter()
            .flat_map(|r| r.images.iter().map(|i| &i.descriptor)),
    );
    let mut seen = HashSet::new();
    let mut detached = Vec::new();
    let mut signatures = Vec::new();
    for root in roots.iter_mut() {
        let at = root.location.clone();
        root.referrers = w.referrers_of(remote, &root.descriptor, &at, &tree);
        let mut found: Vec<(Descriptor, String)> = root
            .referrers
            .iter()
            .enumerate()
            .filter(|(_, r)| r.verified)
            .map(|(i, r)| (r.descriptor.clone(), format!("{at}/referrers[{i}]")))
            .collect();
        for img in root.images.iter_mut() {
            img.referrers = w.referrers_of(remote, &img.descriptor, &img.location, &tree);
            found.extend(
                img.referrers
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.verified)
                    .map(|(i, r)| {
                        (
                            r.descriptor.clone(),
                            format!("{}/referrers[{i}]", img.location),
                        )
                    }),
            );
        }
        for (d, at) in found {
            if tree.contains(&d.digest) || !seen.insert(d.digest.clone()) {
                continue;
            }
            if is_attestation(&d) {
                detached.push(w.attestation(&d, &images, &at));
            } else if let Some(s) = w.signature(&d, &at) {
                // Registries differ in the artifact type they list, so
                // the manifest itself says whether it is a signature.
                signatures.push(s);
            }
        }
    }
    (detached, signatures)
}
