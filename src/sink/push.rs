//! The one push planner, used by an export's registry sink and by a
//! conversion pushed to a registry: an [`Image`] with a root becomes blobs and
//! manifests in push order ([`Plan`]), put into one repository at a time
//! ([`push_repo`]), tags last ([`tag`]).
//!
//! Order within a repository: blobs and manifests a few at a time, each
//! manifest once what it names is there (its config and layers, an index's
//! manifests, its subject; [`super::schedule`]), then the referrers
//! fallback tags the policy asks for and cosign's signature tags
//! ([`super::referrer_tags`]). Where fallback tags may follow, signatures
//! go after the rest, while those tags settle. Tags move only after every
//! repository has its content, so a failure leaves no tag moved.
//!
//! Why apart from the destinations: where blobs are read, how a client is
//! made and which tags move differ between an export and a conversion; what
//! a push puts and in which order must not.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, info};

use super::{referrer_tags, schedule};

use crate::error::{ExportError, Result};
use crate::image::Image;
use crate::oci::Descriptor;
use crate::options::ReferrersFallback;
use crate::progress::Progress;
use crate::registry::auth::push_scope;
use crate::registry::referrers::Referrer;
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
///
/// Where referrers may need fallback tags, the push goes in two runs: what
/// the image is without its signatures, then (while the first tags are
/// written and their settle delay runs) the signatures and their tags. The
/// settle delay is idle time for the registry; a signature's bundle and
/// manifest cost the push nothing there ([`referrer_tags`]).
pub async fn push_repo(
    client: &RegistryClient,
    plan: &Plan,
    repo: &str,
    how: &RepoPush<'_>,
    on: &OnProgress,
) -> Result<RepoReport, RegistryError> {
    // Several at once, as BuildKit and skopeo push: the registry hashes and
    // stores one blob while the next one is on the wire.
    let deps = dependencies(plan);
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
    let mut late = signature_tasks(plan, &deps);
    // Two runs only where fallback tags may follow. A registry that answers
    // the referrers API before the push needs none: its signatures go in
    // one run with the rest, and it is not asked again.
    let answers = match how.fallback {
        ReferrersFallback::Auto if late.contains(&true) => {
            let scope = push_scope(repo, how.mount_from);
            let probe = client.supports_referrers_scoped(repo, &plan.root.desc.digest, &scope);
            // A registry that cannot say (a new repository it does not
            // know yet, an error) is asked again once the image is in.
            probe.await.unwrap_or(false)
        }
        _ => false,
    };
    if answers || how.fallback == ReferrersFallback::Never {
        late.fill(false);
    }
    let early: Vec<bool> = late.iter().map(|l| !l).collect();
    let mut report = RepoReport::default();
    let first = run_part(&deps, &early, how.concurrency, put).await?;
    // A registry that answered the referrers API lists the referrers itself.
    let indexed = report.count(first) || answers;
    // The subjects as the image's model has them, never parsed back.
    let referrers: Vec<(Referrer<'_>, bool)> = plan
        .manifests
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let r = Referrer {
                desc: &m.desc,
                bytes: &m.bytes,
                subject: m.subject.as_deref()?,
            };
            Some((r, late[nb + i]))
        })
        .collect();
    let tags = referrer_tags::Tags::new(client, repo, &referrers, &plan.signature_tags)?;
    let rest = run_part(&deps, &late, how.concurrency, put);
    let (fallback_tags, rest) = tags
        .write(indexed, how.fallback, async move {
            let mut report = RepoReport::default();
            let indexed = report.count(rest.await?);
            Ok((report, indexed))
        })
        .await?;
    report.add(rest);
    report.fallback_tags = fallback_tags;
    for (tag, _) in &plan.signature_tags {
        info!(repo, %tag, "signature tag");
    }
    for tag in &report.fallback_tags {
        info!(repo, %tag, "referrers fallback tag");
    }
    Ok(report)
}

/// What each task of the plan waits for: its blobs, then its manifests
/// ([`schedule::dependencies`]).
fn dependencies(plan: &Plan) -> Vec<Vec<usize>> {
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
    schedule::dependencies(&blobs, &manifests)
}

/// The tasks that exist for signatures alone: bundles and cosign's tag
/// layers, and the manifests that name them.
fn signature_tasks(plan: &Plan, deps: &[Vec<usize>]) -> Vec<bool> {
    let mut late = vec![false; deps.len()];
    for (i, (d, _)) in plan.blobs.iter().enumerate() {
        late[i] = crate::sign::is_signature_media_type(&d.media_type);
    }
    schedule::mark_dependents(deps, &mut late);
    late
}

/// Runs the tasks `keep` marks, as [`schedule::run`] does.
async fn run_part<T, E, F>(
    deps: &[Vec<usize>],
    keep: &[bool],
    concurrency: usize,
    put: impl Fn(usize) -> F,
) -> Result<Vec<T>, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    let (ids, sub) = schedule::subset(deps, keep);
    schedule::run(&sub, concurrency, |k| put(ids[k])).await
}

impl RepoReport {
    /// Counts the manifests of a run: None was a blob, Some(None) a
    /// manifest there already, Some(Some(indexed)) one put.
    fn count(&mut self, done: Vec<Option<Option<bool>>>) -> bool {
        let mut indexed = false;
        for d in done.into_iter().flatten() {
            match d {
                None => self.manifests_existing += 1,
                Some(i) => {
                    self.manifests_written += 1;
                    indexed |= i;
                }
            }
        }
        indexed
    }

    fn add(&mut self, other: RepoReport) {
        self.manifests_written += other.manifests_written;
        self.manifests_existing += other.manifests_existing;
    }
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

    #[test]
    fn signatures_alone_go_in_the_second_part() {
        let held = |mt: &str, b: &[u8]| -> (Descriptor, Arc<dyn BlobOpen>) {
            let bytes = Bytes::copy_from_slice(b);
            (Descriptor::of(mt, b), Arc::new(BytesBlob(bytes)))
        };
        let config = held(oci::MT_OCI_CONFIG, b"{}");
        let layer = held(oci::MT_OCI_LAYER_GZIP, b"layer");
        let statement = held("application/vnd.in-toto+json", b"statement");
        let bundle = held(BUNDLE_MEDIA_TYPE, b"bundle");
        let manifest = |layer: &Descriptor, subject: Option<&Item>| {
            let json = format!(
                r#"{{"config":{{"digest":"{}"}},"layers":[{{"digest":"{}"}}]}}"#,
                config.0.digest, layer.digest
            );
            Item {
                desc: Descriptor::of(MT_OCI_MANIFEST, json.as_bytes()),
                bytes: Bytes::from(json),
                subject: subject.map(|s| s.desc.digest.clone()),
            }
        };
        let image = manifest(&layer.0, None);
        let attestation = manifest(&statement.0, Some(&image));
        let signature = manifest(&bundle.0, Some(&image));
        let index_json = format!(r#"{{"manifests":[{{"digest":"{}"}}]}}"#, image.desc.digest);
        let index = Item {
            desc: Descriptor::of(MT_OCI_INDEX, index_json.as_bytes()),
            bytes: Bytes::from(index_json),
            subject: None,
        };
        let root = Item {
            desc: index.desc.clone(),
            bytes: index.bytes.clone(),
            subject: None,
        };
        let plan = Plan {
            blobs: vec![config, layer, statement, bundle],
            manifests: vec![image, attestation, signature, index],
            root,
            signature_tags: Vec::new(),
        };
        let late = signature_tasks(&plan, &dependencies(&plan));
        // The bundle and the signature manifest; not the image, its
        // attestation, the index or the config the signature shares.
        assert_eq!(late, [false, false, false, true, false, false, true, false]);
    }
}
