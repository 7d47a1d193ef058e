//! The one push planner, used by an export's registry sink and by a
//! conversion pushed to a registry: an [`Image`] with a root becomes blobs and
//! manifests in push order ([`Plan`]), put into one repository at a time
//! ([`push_repo`]), tags last ([`tag`]).
//!
//! Order within a repository: blobs and manifests a few at a time, each
//! manifest once what it names is there (its config and layers, an index's
//! manifests, its subject; [`super::schedule`]), then the referrers
//! fallback tags the policy asks for and cosign's signature tags. Tags move
//! only after every repository has its content, so a failure leaves no tag
//! moved.
//!
//! Why apart from the destinations: where blobs are read, how a client is
//! made and which tags move differ between an export and a conversion; what
//! a push puts and in which order must not.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, info};

use super::schedule;

use crate::error::{ExportError, Result};
use crate::image::Image;
use crate::oci::Descriptor;
use crate::options::ReferrersFallback;
use crate::progress::Progress;
use crate::registry::referrers::Referrer;
use crate::registry::tag_merge;
use crate::registry::{
    BlobOpen, BlobPush, BytesBlob, PushContent, PushedManifest, RegistryClient, RegistryError,
};
use crate::sign::bundle::BUNDLE_MEDIA_TYPE;

/// A manifest to put: its descriptor, bytes, and subject digest if any.
pub struct Item {
    pub desc: Descriptor,
    pub bytes: Bytes,
    pub subject: Option<String>,
}

/// What a push puts, in push order.
pub struct Plan {
    /// Every blob that is not a manifest, in digest order.
    pub blobs: Vec<(Descriptor, Arc<dyn BlobOpen>)>,
    /// Manifests and indexes, in the image's push order.
    pub manifests: Vec<Item>,
    /// What the tags name.
    pub root: Item,
    /// cosign's signature tags, each with the manifest of what it adds.
    pub signature_tags: Vec<(String, Item)>,
}

/// The descriptor without platform or annotations, as a push sends it.
fn plain(d: &Descriptor) -> Descriptor {
    Descriptor::new(&d.media_type, d.digest.clone(), d.size)
}

impl Plan {
    /// Plans the push of `image`; blobs not held in memory are read through
    /// what `open` makes of their descriptor.
    pub fn new(image: &dyn Image, open: &dyn Fn(&Descriptor) -> Arc<dyn BlobOpen>) -> Result<Plan> {
        let root = image
            .root()
            .ok_or_else(|| ExportError::internal("a push needs an image with one root"))?;
        let blobs = image.blobs()?;
        let held: HashMap<&str, &[u8]> = blobs
            .iter()
            .filter_map(|(d, b)| Some((d.digest.as_str(), b.as_deref()?)))
            .collect();
        let item = |d: &Descriptor, subject: Option<String>| -> Result<Item> {
            let bytes = held.get(d.digest.as_str()).ok_or_else(|| {
                ExportError::internal(format!("manifest {} is missing from the image", d.digest))
            })?;
            Ok(Item {
                desc: plain(d),
                bytes: Bytes::copy_from_slice(bytes),
                subject,
            })
        };
        let listed = image.manifests();
        let tagged = image.signature_tags();
        let mut manifest_digests: HashSet<&str> = listed
            .iter()
            .map(|(d, _)| d)
            .chain(tagged.iter().map(|(_, d)| d))
            .map(|d| d.digest.as_str())
            .collect();
        manifest_digests.insert(root.digest.as_str());
        let signature_tags = tagged
            .iter()
            .map(|(tag, d)| Ok((tag.clone(), item(d, None)?)))
            .collect::<Result<_>>()?;
        let manifests = listed
            .iter()
            .map(|(d, s)| item(d, s.clone()))
            .collect::<Result<_>>()?;
        let blobs = blobs
            .iter()
            .filter(|(d, _)| !manifest_digests.contains(d.digest.as_str()))
            .map(|(d, b)| {
                let source: Arc<dyn BlobOpen> = match b {
                    Some(b) => Arc::new(BytesBlob(Bytes::copy_from_slice(b))),
                    None => open(d),
                };
                (plain(d), source)
            })
            .collect();
        Ok(Plan {
            blobs,
            manifests,
            root: item(root, None)?,
            signature_tags,
        })
    }
}

/// The plan's content, for manifest PUTs that resend what a repository lacks.
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
            .find(|m| m.desc.digest == digest)
            .map(|m| (m.desc.clone(), m.bytes.clone()))
    }
}

/// How the content goes into one repository.
pub struct RepoPush<'a> {
    /// A repository of the same registry to mount blobs from.
    pub mount_from: Option<&'a str>,
    /// Blobs uploaded at the same time.
    pub concurrency: usize,
    /// Look each manifest up first and leave those the repository has.
    pub skip_existing: bool,
    pub fallback: ReferrersFallback,
}

/// Hears of each blob: bytes written, then how it got there.
pub type OnProgress = Arc<dyn Fn(Progress) + Send + Sync>;

/// What one repository got besides blobs (those are reported as progress).
#[derive(Debug, Default)]
pub struct RepoReport {
    pub manifests_written: usize,
    pub manifests_existing: usize,
    pub fallback_tags: Vec<String>,
}

/// Pushes one blob of the plan, reporting progress.
async fn push_blob(
    client: &RegistryClient,
    repo: &str,
    (desc, src): &(Descriptor, Arc<dyn BlobOpen>),
    mount_from: Option<&str>,
    on: &OnProgress,
) -> Result<(), RegistryError> {
    let (digest, total) = (desc.digest.clone(), desc.size);
    let on_writing = Arc::clone(on);
    let on_bytes = Arc::new(move |done: u64| {
        on_writing(Progress::Writing {
            digest: digest.clone(),
            done,
            total,
        })
    });
    // A signature bundle is made anew by each signing (ECDSA signatures are
    // randomized), so asking whether the repository has it would cost a
    // round trip per signature for nothing.
    let how = if desc.media_type == BUNDLE_MEDIA_TYPE {
        client
            .upload_blob(repo, desc, Arc::clone(src), mount_from, on_bytes)
            .await?
    } else {
        client
            .push_blob(repo, desc, Arc::clone(src), mount_from, on_bytes)
            .await?
    };
    let digest = desc.digest.clone();
    let event = match how {
        BlobPush::Existed => Progress::Skipped { digest, total },
        BlobPush::Mounted => Progress::Mounted { digest, total },
        BlobPush::Uploaded { .. } => Progress::Done { digest, total },
    };
    debug!(digest = %desc.digest, ?how, "blob");
    on(event);
    Ok(())
}

/// Puts the plan into `repo`: blobs, manifests, referrers.
pub async fn push_repo(
    client: &RegistryClient,
    plan: &Plan,
    repo: &str,
    how: &RepoPush<'_>,
    on: &OnProgress,
) -> Result<RepoReport, RegistryError> {
    // Several at once, as BuildKit and skopeo push: the registry hashes and
    // stores one blob while the next one is on the wire.
    let blobs: Vec<&str> = plan.blobs.iter().map(|(d, _)| d.digest.as_str()).collect();
    let manifests: Vec<schedule::Manifest<'_>> = plan
        .manifests
        .iter()
        .map(|m| schedule::Manifest {
            digest: &m.desc.digest,
            bytes: &m.bytes,
            subject: m.subject.as_deref(),
        })
        .collect();
    let deps = schedule::dependencies(&blobs, &manifests);
    let nb = plan.blobs.len();
    // A blob's task gives None; a manifest's gives Some(what `put_new` said).
    let put = |i: usize| async move {
        if i < nb {
            push_blob(client, repo, &plan.blobs[i], how.mount_from, on).await?;
            Ok(None)
        } else {
            let m = &plan.manifests[i - nb];
            put_new(client, repo, m, plan, how.skip_existing)
                .await
                .map(Some)
        }
    };
    let done = schedule::run(&deps, how.concurrency, put).await?;
    let mut report = RepoReport::default();
    // Subjects indexed by the registry itself (OCI-Subject on the PUT).
    let mut indexed = false;
    for d in done.into_iter().flatten() {
        // Only manifests here: None was there already, Some(indexed) was put.
        match d {
            None => report.manifests_existing += 1,
            Some(i) => {
                report.manifests_written += 1;
                indexed |= i;
            }
        }
    }
    // The subjects as the image's model has them, never parsed back.
    let referrers: Vec<Referrer<'_>> = plan
        .manifests
        .iter()
        .filter_map(|m| {
            Some(Referrer {
                desc: &m.desc,
                bytes: &m.bytes,
                subject: m.subject.as_deref()?,
            })
        })
        .collect();
    // The fallback tags and cosign's signature tags are written at once and
    // wait one settle delay.
    let settle = tag_merge::settle_delay();
    let signature_tags = futures_util::future::try_join_all(
        plan.signature_tags
            .iter()
            .map(|(tag, m)| client.extend_signature_tag(repo, tag, &m.bytes, settle)),
    );
    let fallback =
        client.maintain_referrers_settling(repo, &referrers, indexed, how.fallback, settle);
    let (fallback_tags, _) = futures_util::future::try_join(fallback, signature_tags).await?;
    report.fallback_tags = fallback_tags;
    for (tag, _) in &plan.signature_tags {
        info!(repo, %tag, "signature tag");
    }
    for tag in &report.fallback_tags {
        info!(repo, %tag, "referrers fallback tag");
    }
    Ok(report)
}

/// Puts `m` by digest unless `skip_existing` finds it there: None when it
/// was there, else whether the registry indexed its subject.
async fn put_new(
    client: &RegistryClient,
    repo: &str,
    m: &Item,
    plan: &Plan,
    skip_existing: bool,
) -> Result<Option<bool>, RegistryError> {
    if skip_existing && client.resolve(repo, &m.desc.digest).await?.is_some() {
        return Ok(None);
    }
    let put = put(client, repo, &m.desc.digest, m, plan).await?;
    debug!(digest = %m.desc.digest, media_type = %m.desc.media_type, "manifest");
    Ok(Some(m.subject.is_some() && put.oci_subject.is_some()))
}

/// Puts `m` under `reference` (its digest, or a tag).
async fn put(
    client: &RegistryClient,
    repo: &str,
    reference: &str,
    m: &Item,
    plan: &Plan,
) -> Result<PushedManifest, RegistryError> {
    client
        .put_manifest_repairing(repo, reference, &m.desc.media_type, m.bytes.clone(), plan)
        .await
}

/// Points `tag` of `repo` at the plan's root.
pub async fn tag(
    client: &RegistryClient,
    plan: &Plan,
    repo: &str,
    tag: &str,
) -> Result<(), RegistryError> {
    put(client, repo, tag, &plan.root, plan).await?;
    info!(registry = client.host(), repo, %tag, digest = %plan.root.desc.digest, "tagged");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::io::{self, Read};

    use crate::image::Blobs;

    use super::*;
    use crate::oci::{self, MT_OCI_INDEX, MT_OCI_MANIFEST};

    /// A root index, an image manifest, an attestation naming it, and a
    /// streamed layer.
    struct Fake {
        blobs: Vec<(Descriptor, Option<Vec<u8>>)>,
        rooted: bool,
    }

    impl Fake {
        fn new() -> Fake {
            let image = Descriptor::of(MT_OCI_MANIFEST, b"image");
            let attestation = Descriptor::of(MT_OCI_MANIFEST, b"attestation");
            let index = Descriptor::of(MT_OCI_INDEX, b"index");
            let layer = Descriptor::of(oci::MT_OCI_LAYER_GZIP, b"layer");
            let config = Descriptor::of(oci::MT_OCI_CONFIG, b"{}");
            let mut blobs = vec![
                (image, Some(b"image".to_vec())),
                (attestation, Some(b"attestation".to_vec())),
                (index, Some(b"index".to_vec())),
                (layer, None),
                (config, Some(b"{}".to_vec())),
            ];
            blobs.sort_by(|a, b| a.0.digest.cmp(&b.0.digest));
            Fake {
                blobs,
                rooted: true,
            }
        }

        fn find(&self, media_type: &str, bytes: &[u8]) -> &Descriptor {
            let digest = oci::digest_of(bytes);
            let (d, _) = self.blobs.iter().find(|(d, _)| d.digest == digest).unwrap();
            assert_eq!(d.media_type, media_type);
            d
        }
    }

    impl Image for Fake {
        fn index_json(&self) -> Result<Cow<'_, [u8]>> {
            Ok(Cow::Borrowed(b"{}"))
        }
        fn blob_size(&self, digest: &str) -> Option<u64> {
            let (d, _) = self.blobs.iter().find(|(d, _)| d.digest == digest)?;
            Some(d.size)
        }
        fn open_blob(&self, _: &str) -> Result<Box<dyn Read + Send>> {
            Ok(Box::new(io::Cursor::new(b"layer".to_vec())))
        }
        fn blobs(&self) -> Result<Blobs<'_>> {
            Ok(self
                .blobs
                .iter()
                .map(|(d, b)| (d.clone(), b.as_deref().map(Cow::Borrowed)))
                .collect())
        }
        fn root(&self) -> Option<&Descriptor> {
            self.rooted.then(|| self.find(MT_OCI_INDEX, b"index"))
        }
        fn manifests(&self) -> Vec<(Descriptor, Option<String>)> {
            let image = self.find(MT_OCI_MANIFEST, b"image");
            vec![
                (image.clone(), None),
                (
                    self.find(MT_OCI_MANIFEST, b"attestation").clone(),
                    Some(image.digest.clone()),
                ),
                (self.find(MT_OCI_INDEX, b"index").clone(), None),
            ]
        }
    }

    #[test]
    fn a_plan_keeps_the_image_order_and_its_subjects() {
        let fake = Fake::new();
        let opened = std::sync::Mutex::new(Vec::new());
        let open = |d: &Descriptor| -> Arc<dyn BlobOpen> {
            opened.lock().unwrap().push(d.digest.clone());
            Arc::new(BytesBlob(Bytes::from_static(b"layer")))
        };
        let plan = Plan::new(&fake, &open).unwrap();
        let names: Vec<&[u8]> = plan.manifests.iter().map(|m| &m.bytes[..]).collect();
        assert_eq!(names, [&b"image"[..], b"attestation", b"index"]);
        let image = oci::digest_of(b"image");
        assert_eq!(plan.manifests[1].subject.as_deref(), Some(image.as_str()));
        assert_eq!(&plan.root.bytes[..], b"index");
        // Only the config and the layer are blobs, in digest order; only
        // the layer is opened through the image's reader.
        let blobs: Vec<&str> = plan.blobs.iter().map(|(d, _)| d.digest.as_str()).collect();
        let mut want = vec![oci::digest_of(b"layer"), oci::digest_of(b"{}")];
        want.sort();
        assert_eq!(blobs, want);
        assert_eq!(*opened.lock().unwrap(), [oci::digest_of(b"layer")]);
        assert!(plan.manifest(&image).is_some());
        assert!(plan.blob(&oci::digest_of(b"{}")).is_some());
    }

    #[test]
    fn a_layout_of_several_images_is_not_pushed() {
        let fake = Fake {
            rooted: false,
            ..Fake::new()
        };
        let open = |_: &Descriptor| -> Arc<dyn BlobOpen> { unreachable!() };
        assert!(Plan::new(&fake, &open).is_err());
    }
}
