//! A converted image written to a registry (`docker://REF` destination).
//!
//! The order is the export push's: blobs (the new configs; the others are
//! found in place, mounted from the source repository or copied from the
//! source), then manifests without a subject, then those with one (after
//! the images they name, for registries that check subjects), then indexes
//! (children before parents), then the referrers (the API, else the
//! fallback tag, as the push keeps them), and the tags last, so a failure
//! leaves no tag moved. Nothing is deleted: the old manifests stay
//! reachable by digest.

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, info};

use crate::error::{ExportError, Result};
use crate::image::bridge::Bridge;
use crate::image::remote::{self, RemoteOptions};
use crate::image::write::{BlobData, NewLayout};
use crate::image::{self, parse, ImageSource};
use crate::oci::{self, Descriptor};
use crate::options::ReferrersFallback;
use crate::reference::Reference;
use crate::registry::{
    referrers, BlobOpen, BlobPush, BytesBlob, PushContent, RegistryClient, RegistryError,
};
use crate::sink::layout::ANNOTATION_REF_NAME;

use super::is_attestation_entry;

/// What a registry destination got.
#[derive(Debug, Clone, Default)]
pub struct Pushed {
    pub root: Descriptor,
    /// Blobs and manifests written (the others were there already).
    pub written: usize,
    pub existing: usize,
    pub mounted: usize,
    pub fallback_tags: Vec<String>,
    pub tags: Vec<String>,
}

/// Where the converted image goes and how.
pub struct Destination<'a> {
    pub reference: &'a str,
    pub opts: &'a RemoteOptions,
    /// A repository of the same registry holding the source blobs.
    pub mount_from: Option<String>,
    /// The old root, when converting in place: the repository's other tags
    /// on it move to the new root too.
    pub retag_from: Option<String>,
    /// The source's reference (`oci:DIR:REF`): only the entries it names.
    pub select: Option<String>,
}

/// Reads a source blob on the push's upload thread.
struct StoredBlob {
    src: Arc<dyn ImageSource>,
    digest: String,
}

impl BlobOpen for StoredBlob {
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        self.src
            .open_blob(&self.digest)
            .map_err(|e| io::Error::other(e.message))
    }
}

/// Everything the push task owns.
struct Plan {
    repo: String,
    blobs: Vec<(Descriptor, Arc<dyn BlobOpen>)>,
    /// In push order.
    manifests: Vec<(Descriptor, Bytes)>,
    root: (Descriptor, Bytes),
    tag: Option<String>,
    mount_from: Option<String>,
    retag_from: Option<String>,
}

impl PushContent for Plan {
    fn blob(&self, digest: &str) -> Option<(Descriptor, Arc<dyn BlobOpen>)> {
        self.blobs
            .iter()
            .find(|(d, _)| d.digest == digest)
            .map(|(d, o)| (d.clone(), Arc::clone(o)))
    }

    fn manifest(&self, digest: &str) -> Option<(Descriptor, Bytes)> {
        self.manifests
            .iter()
            .find(|(d, _)| d.digest == digest)
            .cloned()
    }
}

fn is_manifest(media_type: &str) -> bool {
    media_type == oci::MT_OCI_MANIFEST || media_type == oci::MT_DOCKER_MANIFEST
}

/// The one image `index.json` names (attestations listed on their own
/// aside), among the entries `select` names when given.
fn single_root(index_json: &[u8], select: Option<&str>) -> Result<(Descriptor, Vec<Descriptor>)> {
    let top = parse::index(index_json, "index.json")?.value;
    let mut roots: Vec<Descriptor> = Vec::new();
    let mut detached = Vec::new();
    for e in top.manifests {
        let name = e.annotations.get(ANNOTATION_REF_NAME).map(String::as_str);
        if select.is_some() && name != select {
            continue;
        }
        if is_attestation_entry(&e) {
            detached.push(e);
        } else if !roots.iter().any(|r| r.digest == e.digest) {
            roots.push(e);
        }
    }
    match roots.len() {
        1 => Ok((roots.remove(0), detached)),
        n => Err(ExportError::invalid(
            "source",
            format!("the source holds {n} images; a registry destination takes one (select it with oci:DIR:REF)"),
        )),
    }
}

/// Records what `d` reaches in `seen`, and its indexes in `indexes` after
/// the indexes they list.
fn reach(
    d: &Descriptor,
    bytes_of: &dyn Fn(&str) -> Option<Bytes>,
    seen: &mut HashSet<String>,
    indexes: &mut Vec<String>,
) -> Result<()> {
    if !seen.insert(d.digest.clone()) {
        return Ok(());
    }
    let index = image::is_index(&d.media_type);
    if !index && !is_manifest(&d.media_type) {
        return Ok(());
    }
    let bytes = bytes_of(&d.digest).ok_or_else(|| {
        ExportError::internal(format!("manifest {} is not in the plan", d.digest))
    })?;
    if index {
        for c in parse::index(&bytes, &d.digest)?.value.manifests {
            reach(&c, bytes_of, seen, indexes)?;
        }
        indexes.push(d.digest.clone());
    } else {
        let m = parse::manifest(&bytes, &d.digest)?.value;
        for c in std::iter::once(&m.config).chain(&m.layers) {
            reach(c, bytes_of, seen, indexes)?;
        }
    }
    Ok(())
}

fn plan(layout: &NewLayout, src: &Arc<dyn ImageSource>, dst: &Destination<'_>) -> Result<Plan> {
    let target = remote::parse_ref(dst.reference)?;
    let (root, detached) = single_root(&layout.index_json, dst.select.as_deref())?;
    if !target.digest.is_empty() && target.digest != root.digest {
        return Err(ExportError::invalid(
            "destination",
            format!(
                "docker://{}: the converted image is {}; a digest destination must name it (use a tag)",
                dst.reference, root.digest
            ),
        ));
    }
    let bytes_of = |digest: &str| -> Option<Bytes> {
        match layout.blobs.get(digest) {
            Some((_, BlobData::Bytes(b))) => Some(Bytes::from(b.clone())),
            _ => None,
        }
    };
    // Only what the chosen entries reach (a layout may hold other images).
    let mut seen = HashSet::new();
    let mut indexes = Vec::new();
    for e in std::iter::once(&root).chain(&detached) {
        reach(e, &bytes_of, &mut seen, &mut indexes)?;
    }
    let mut blobs = Vec::new();
    let (mut plain, mut with_subject) = (Vec::new(), Vec::new());
    for (digest, (desc, data)) in &layout.blobs {
        if !seen.contains(digest) {
            continue;
        }
        let json = image::is_index(&desc.media_type) || is_manifest(&desc.media_type);
        match (json, data) {
            (true, BlobData::Bytes(b)) if is_manifest(&desc.media_type) => {
                let item = (desc.clone(), Bytes::from(b.clone()));
                if referrers::subject_of(b).is_some() {
                    with_subject.push(item);
                } else {
                    plain.push(item);
                }
            }
            (true, BlobData::Bytes(_)) => {}
            (true, BlobData::Stored) => {
                return Err(ExportError::internal(format!(
                    "manifest {digest} is not in the plan"
                )))
            }
            (false, BlobData::Bytes(b)) => {
                blobs.push((
                    desc.clone(),
                    Arc::new(BytesBlob(Bytes::from(b.clone()))) as Arc<dyn BlobOpen>,
                ));
            }
            (false, BlobData::Stored) => blobs.push((
                desc.clone(),
                Arc::new(StoredBlob {
                    src: Arc::clone(src),
                    digest: digest.clone(),
                }) as Arc<dyn BlobOpen>,
            )),
        }
    }
    let mut manifests = plain;
    manifests.extend(with_subject);
    for digest in indexes {
        let (desc, _) = &layout.blobs[&digest];
        let bytes = bytes_of(&digest).expect("indexes are held as bytes");
        manifests.push((desc.clone(), bytes));
    }
    let root_bytes = bytes_of(&root.digest)
        .ok_or_else(|| ExportError::internal(format!("root {} is not in the plan", root.digest)))?;
    Ok(Plan {
        repo: target.path.clone(),
        blobs,
        manifests,
        root: (
            Descriptor::new(&root.media_type, root.digest.clone(), root.size),
            root_bytes,
        ),
        tag: (!target.tag.is_empty()).then(|| target.tag.clone()),
        mount_from: dst.mount_from.clone().filter(|m| *m != target.path),
        retag_from: dst.retag_from.clone().filter(|old| *old != root.digest),
    })
}

/// Pushes the conversion's layout to `dst`; stored blobs are read from `src`.
pub fn push(
    layout: &NewLayout,
    src: Arc<dyn ImageSource>,
    dst: &Destination<'_>,
) -> Result<Pushed> {
    let plan = plan(layout, &src, dst)?;
    let target: Reference = remote::parse_ref(dst.reference)?;
    let bridge = Bridge::new()?;
    let client = remote::client(&target, dst.opts, &bridge)?;
    bridge
        .call(run(client, plan))?
        .map_err(|e| ExportError::from(e).context(&format!("docker://{}", dst.reference)))
}

async fn run(client: RegistryClient, plan: Plan) -> Result<Pushed, RegistryError> {
    let repo = plan.repo.as_str();
    let mut out = Pushed {
        root: plan.root.0.clone(),
        ..Pushed::default()
    };
    let noop: crate::registry::OnBytes = Arc::new(|_| {});
    for (desc, open) in &plan.blobs {
        let how = client
            .push_blob(
                repo,
                desc,
                Arc::clone(open),
                plan.mount_from.as_deref(),
                Arc::clone(&noop),
            )
            .await?;
        debug!(digest = %desc.digest, ?how, "blob");
        match how {
            BlobPush::Existed => out.existing += 1,
            BlobPush::Mounted => out.mounted += 1,
            BlobPush::Uploaded { .. } => out.written += 1,
        }
    }
    // Subjects indexed by the registry itself (OCI-Subject on the PUT).
    let mut indexed = false;
    for (desc, bytes) in &plan.manifests {
        if client.resolve(repo, &desc.digest).await?.is_some() {
            out.existing += 1;
            continue;
        }
        let put = client
            .put_manifest_repairing(repo, &desc.digest, &desc.media_type, bytes.clone(), &plan)
            .await?;
        indexed |= put.oci_subject.is_some();
        out.written += 1;
        debug!(digest = %desc.digest, media_type = %desc.media_type, "manifest");
    }
    out.fallback_tags = client
        .maintain_referrers(repo, &plan.manifests, indexed, ReferrersFallback::Auto)
        .await?;
    for tag in &out.fallback_tags {
        info!(repo, %tag, "referrers fallback tag");
    }
    let mut tags: Vec<String> = plan.tag.iter().cloned().collect();
    if let Some(old) = &plan.retag_from {
        for t in client.list_tags(repo).await? {
            if tags.contains(&t) || is_fallback_tag(&t) {
                continue;
            }
            if client
                .resolve(repo, &t)
                .await?
                .is_some_and(|d| d.digest == *old)
            {
                tags.push(t);
            }
        }
    }
    let (root, root_bytes) = &plan.root;
    for t in &tags {
        client
            .put_manifest_repairing(repo, t, &root.media_type, root_bytes.clone(), &plan)
            .await?;
        info!(registry = client.host(), repo, tag = %t, digest = %root.digest, "tagged");
    }
    out.tags = tags;
    Ok(out)
}

/// `sha256-<64 hex>`: a referrers fallback tag, which names a subject, not
/// an image.
fn is_fallback_tag(t: &str) -> bool {
    t.strip_prefix("sha256-")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tags_are_told_apart() {
        assert!(is_fallback_tag(&format!("sha256-{}", "a".repeat(64))));
        assert!(!is_fallback_tag("sha256-abc"));
        assert!(!is_fallback_tag("v1"));
    }

    #[test]
    fn one_root_is_required() {
        let a = Descriptor::of(oci::MT_OCI_INDEX, b"a");
        let b = Descriptor::of(oci::MT_OCI_INDEX, b"b");
        let idx = |m: Vec<Descriptor>| {
            oci::Index {
                manifests: m,
                ..Default::default()
            }
            .to_json()
            .into_bytes()
        };
        let (root, detached) = single_root(&idx(vec![a.clone(), a.clone()]), None).unwrap();
        assert_eq!(root.digest, a.digest);
        assert!(detached.is_empty());
        let mut named = b.clone();
        named
            .annotations
            .insert(ANNOTATION_REF_NAME.into(), "v2".into());
        let both = idx(vec![a, named]);
        let err = single_root(&both, None).unwrap_err();
        assert!(err.message.contains("2 images"), "{}", err.message);
        let (root, _) = single_root(&both, Some("v2")).unwrap();
        assert_eq!(root.digest, b.digest);
    }
}
