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
//!
//! What is pushed, and in which order, is [`crate::sink::push`]'s plan of
//! the image chosen here ([`Selected`]); this file chooses the image, makes
//! the client, and moves the tags.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{ExportError, Result};
use crate::image::bridge::Bridge;
use crate::image::files::ANNOTATION_REF_NAME;
use crate::image::remote::{self, RemoteOptions};
use crate::image::{is_index, is_manifest, parse, Blobs, Image};
use crate::oci::Descriptor;
use crate::options::ReferrersFallback;
use crate::progress::Progress;
use crate::reference::Reference;
use crate::registry::{BlobOpen, RegistryClient, RegistryError};
use crate::sink::push::{self, OnProgress, Plan, RepoPush};
use crate::sink::Sink;

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
    src: Arc<dyn Image>,
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
struct Job {
    repo: String,
    plan: Plan,
    tag: Option<String>,
    mount_from: Option<String>,
    retag_from: Option<String>,
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

/// What the chosen entries reach.
#[derive(Default)]
struct Reached {
    seen: HashSet<String>,
    /// Indexes, each after the indexes it lists.
    indexes: Vec<String>,
    /// Manifest or index digest -> the subject it names.
    subjects: HashMap<String, String>,
}

/// Records what `d` reaches.
fn reach<'a>(
    d: &Descriptor,
    bytes_of: &dyn Fn(&str) -> Option<&'a [u8]>,
    out: &mut Reached,
) -> Result<()> {
    if !out.seen.insert(d.digest.clone()) {
        return Ok(());
    }
    let index = is_index(&d.media_type);
    if !index && !is_manifest(&d.media_type) {
        return Ok(());
    }
    let bytes = bytes_of(&d.digest).ok_or_else(|| {
        ExportError::internal(format!("manifest {} is not in the plan", d.digest))
    })?;
    let subject = if index {
        let idx = parse::index(bytes, &d.digest)?.value;
        for c in &idx.manifests {
            reach(c, bytes_of, out)?;
        }
        out.indexes.push(d.digest.clone());
        idx.subject
    } else {
        let m = parse::manifest(bytes, &d.digest)?.value;
        for c in std::iter::once(&m.config).chain(&m.layers) {
            reach(c, bytes_of, out)?;
        }
        m.subject
    };
    if let Some(s) = subject {
        out.subjects.insert(d.digest.clone(), s.digest);
    }
    Ok(())
}

/// The one image a registry destination takes, out of a converted layout:
/// what its root and detached attestations reach.
struct Selected<'a> {
    image: &'a dyn Image,
    /// The reached blobs, in digest order.
    blobs: Blobs<'a>,
    root: Descriptor,
    reached: Reached,
}

impl Selected<'_> {
    fn subject(&self, digest: &str) -> Option<&str> {
        self.reached.subjects.get(digest).map(String::as_str)
    }
}

impl Image for Selected<'_> {
    fn index_json(&self) -> Result<Cow<'_, [u8]>> {
        self.image.index_json()
    }

    fn blob_size(&self, digest: &str) -> Option<u64> {
        let (d, _) = self.blobs.iter().find(|(d, _)| d.digest == digest)?;
        Some(d.size)
    }

    fn open_blob(&self, digest: &str) -> Result<Box<dyn Read + Send>> {
        self.image.open_blob(digest)
    }

    fn blobs(&self) -> Result<Blobs<'_>> {
        Ok(self
            .blobs
            .iter()
            .map(|(d, b)| (d.clone(), b.as_deref().map(Cow::Borrowed)))
            .collect())
    }

    fn root(&self) -> Option<&Descriptor> {
        Some(&self.root)
    }

    /// Manifests without a subject, then those with one (each in digest
    /// order), then indexes, children first.
    fn manifests(&self) -> Vec<(Descriptor, Option<String>)> {
        let subject = |digest: &str| self.subject(digest).map(String::from);
        let (mut plain, mut with_subject) = (Vec::new(), Vec::new());
        for (d, _) in &self.blobs {
            if !is_manifest(&d.media_type) {
                continue;
            }
            match subject(&d.digest) {
                Some(s) => with_subject.push((d.clone(), Some(s))),
                None => plain.push((d.clone(), None)),
            }
        }
        plain.extend(with_subject);
        for digest in &self.reached.indexes {
            if let Some((d, _)) = self.blobs.iter().find(|(d, _)| d.digest == *digest) {
                plain.push((d.clone(), subject(digest)));
            }
        }
        plain
    }
}

/// The image `dst` takes out of a converted layout, checked against a
/// digest destination.
fn select<'a>(
    layout: &'a dyn Image,
    dst: &Destination<'_>,
    target: &Reference,
) -> Result<Selected<'a>> {
    let (root, detached) = single_root(&layout.index_json()?, dst.select.as_deref())?;
    if !target.digest.is_empty() && target.digest != root.digest {
        return Err(ExportError::invalid(
            "destination",
            format!(
                "docker://{}: the converted image is {}; a digest destination must name it (use a tag)",
                dst.reference, root.digest
            ),
        ));
    }
    // Only what the chosen entries reach (a layout may hold other images).
    let mut blobs = layout.blobs()?;
    let mut reached = Reached::default();
    {
        let held: HashMap<&str, &[u8]> = blobs
            .iter()
            .filter_map(|(d, b)| Some((d.digest.as_str(), b.as_deref()?)))
            .collect();
        for e in std::iter::once(&root).chain(&detached) {
            reach(e, &|d: &str| held.get(d).copied(), &mut reached)?;
        }
    }
    blobs.retain(|(d, _)| reached.seen.contains(&d.digest));
    Ok(Selected {
        image: layout,
        blobs,
        root: Descriptor::new(&root.media_type, root.digest.clone(), root.size),
        reached,
    })
}

fn job(layout: &dyn Image, src: &Arc<dyn Image>, dst: &Destination<'_>) -> Result<Job> {
    let target = remote::parse_ref(dst.reference)?;
    let image = select(layout, dst, &target)?;
    let open = |d: &Descriptor| -> Arc<dyn BlobOpen> {
        Arc::new(StoredBlob {
            src: Arc::clone(src),
            digest: d.digest.clone(),
        })
    };
    let plan = Plan::new(&image, &open)?;
    let root = plan.root.desc.digest.clone();
    Ok(Job {
        repo: target.path.clone(),
        plan,
        tag: (!target.tag.is_empty()).then(|| target.tag.clone()),
        mount_from: dst.mount_from.clone().filter(|m| *m != target.path),
        retag_from: dst.retag_from.clone().filter(|old| *old != root),
    })
}

/// A registry as the destination of a conversion: the one image chosen out
/// of the converted layout is pushed; blobs the conversion copies are read
/// from the source store `src` on the upload threads.
pub struct RegistryDestination<'a> {
    pub dst: Destination<'a>,
    pub src: Arc<dyn Image>,
    /// What the registry got, once written.
    pub pushed: Option<Pushed>,
}

impl Sink for RegistryDestination<'_> {
    fn write(&mut self, image: &dyn Image, _progress: &mut dyn FnMut(Progress)) -> Result<()> {
        self.pushed = Some(push(image, Arc::clone(&self.src), &self.dst)?);
        Ok(())
    }
}

/// Pushes the image `dst` selects out of a converted layout.
fn push(layout: &dyn Image, src: Arc<dyn Image>, dst: &Destination<'_>) -> Result<Pushed> {
    let job = job(layout, &src, dst)?;
    let target: Reference = remote::parse_ref(dst.reference)?;
    let bridge = Bridge::new()?;
    let client = remote::client(&target, dst.opts, &bridge)?;
    bridge
        .call(run(client, job))?
        .map_err(|e| ExportError::from(e).context(&format!("docker://{}", dst.reference)))
}

/// Blobs counted by how they got into the repository.
#[derive(Default)]
struct Counts {
    written: AtomicUsize,
    existing: AtomicUsize,
    mounted: AtomicUsize,
}

async fn run(client: RegistryClient, job: Job) -> Result<Pushed, RegistryError> {
    let repo = job.repo.as_str();
    let counts = Arc::new(Counts::default());
    let counter = Arc::clone(&counts);
    let on: OnProgress = Arc::new(move |p| {
        let n = match p {
            Progress::Writing { .. } => return,
            Progress::Skipped { .. } => &counter.existing,
            Progress::Mounted { .. } => &counter.mounted,
            Progress::Done { .. } => &counter.written,
        };
        n.fetch_add(1, Ordering::Relaxed);
    });
    let how = RepoPush {
        mount_from: job.mount_from.as_deref(),
        concurrency: 1,
        skip_existing: true,
        fallback: ReferrersFallback::Auto,
    };
    let report = push::push_repo(&client, &job.plan, repo, &how, &on).await?;
    let mut out = Pushed {
        root: job.plan.root.desc.clone(),
        written: counts.written.load(Ordering::Relaxed) + report.manifests_written,
        existing: counts.existing.load(Ordering::Relaxed) + report.manifests_existing,
        mounted: counts.mounted.load(Ordering::Relaxed),
        fallback_tags: report.fallback_tags,
        tags: Vec::new(),
    };
    let mut tags: Vec<String> = job.tag.iter().cloned().collect();
    if let Some(old) = &job.retag_from {
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
    for t in &tags {
        push::tag(&client, &job.plan, repo, t).await?;
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
    use crate::oci;

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
