//! The registry sink: pushes an assembled graph to every repository its
//! names point at.
//!
//! Order: blobs first (layers, configs, statements), then image manifests,
//! then the attestation manifests that name them as subject (registries that
//! check subjects accept them then), then the index, then the referrers
//! fallback tags where needed, and the user's tags last, so a failure leaves
//! no tag moved. Within one registry, a blob pushed to one repository is
//! mounted into the next.
//!
//! The export core is blocking and its blob source is borrowed, while the
//! registry client is async. So the push runs as a task on the runtime, and
//! the calling thread serves it: it opens layer blobs on request and passes
//! progress events on, until the task reports its end.

use std::io::{self, Read};
use std::sync::mpsc;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tracing::{debug, info, info_span, Instrument};

use crate::assemble::{Blob, Graph};
use crate::blob::BlobSource;
use crate::error::{ExportError, Result};
use crate::layer::LayerSource;
use crate::oci::Descriptor;
use crate::options::ReferrersFallback;
use crate::progress::Progress;
use crate::reference::Reference;
use crate::registry::{
    BlobOpen, BlobPush, BytesBlob, ClientOptions, PushContent, RegistryClient, RegistryError,
};

/// What the push needs besides the graph.
pub struct PushSpec<'a> {
    pub names: &'a [Reference],
    /// Push manifests by digest only, without tags.
    pub push_by_digest: bool,
    /// `registry.insecure`: no certificate verification, plain HTTP when
    /// the server does not speak TLS.
    pub insecure: bool,
    pub referrers_fallback: ReferrersFallback,
    /// Credentials and certificates; `insecure` comes from above.
    pub registry: &'a ClientOptions,
}

/// Messages from the push task to the thread that serves it.
enum Msg {
    Progress(Progress),
    Open(
        LayerSource,
        mpsc::SyncSender<io::Result<Box<dyn Read + Send>>>,
    ),
    Done(Result<(), RegistryError>),
}

/// One repository and the tags it gets.
struct Target {
    repo: String,
    tags: Vec<String>,
}

/// A manifest to put: its descriptor, bytes, and subject digest if any.
struct ManifestItem {
    desc: Descriptor,
    bytes: Bytes,
    subject: Option<String>,
}

/// Everything the push task owns.
struct Plan {
    /// Registry host -> repositories, in the order the names give.
    registries: Vec<(String, Vec<Target>)>,
    blobs: Vec<(Descriptor, Blob)>,
    images: Vec<ManifestItem>,
    attestations: Vec<ManifestItem>,
    /// The index, when the root is one.
    index: Option<ManifestItem>,
    root: Descriptor,
    root_bytes: Bytes,
    push_by_digest: bool,
    insecure: bool,
    fallback: ReferrersFallback,
    registry: ClientOptions,
}

/// Reads a layer through the serving thread (the blob source is borrowed there).
struct ServedLayer {
    source: LayerSource,
    tx: mpsc::Sender<Msg>,
}

impl BlobOpen for ServedLayer {
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        let (reply, answer) = mpsc::sync_channel(1);
        let gone = || io::Error::other("the export stopped");
        self.tx
            .send(Msg::Open(self.source.clone(), reply))
            .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

/// The plan's content, for manifest PUTs that resend what a repository lacks.
struct Resend<'a> {
    plan: &'a Plan,
    tx: &'a mpsc::Sender<Msg>,
}

impl PushContent for Resend<'_> {
    fn blob(&self, digest: &str) -> Option<(Descriptor, Arc<dyn BlobOpen>)> {
        let (desc, blob) = self.plan.blobs.iter().find(|(d, _)| d.digest == digest)?;
        Some((desc.clone(), blob_source(blob, self.tx)))
    }

    fn manifest(&self, digest: &str) -> Option<(Descriptor, Bytes)> {
        let p = self.plan;
        p.images
            .iter()
            .chain(&p.attestations)
            .chain(&p.index)
            .find(|m| m.desc.digest == digest)
            .map(|m| (m.desc.clone(), m.bytes.clone()))
    }
}

fn blob_source(blob: &Blob, tx: &mpsc::Sender<Msg>) -> Arc<dyn BlobOpen> {
    match blob {
        Blob::Bytes(b) => Arc::new(BytesBlob(Bytes::from(b.clone()))),
        Blob::Layer(l) => Arc::new(ServedLayer {
            source: l.clone(),
            tx: tx.clone(),
        }),
    }
}

fn subject_of(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.pointer("/subject/digest")?.as_str().map(String::from)
}

fn plan(graph: &Graph, spec: &PushSpec<'_>) -> Result<Plan> {
    if spec.names.is_empty() {
        return Err(ExportError::invalid(
            "name",
            "push requires an image name: set the name attribute",
        ));
    }
    let mut registries: Vec<(String, Vec<Target>)> = Vec::new();
    for n in spec.names {
        let pos = match registries.iter().position(|(h, _)| *h == n.domain) {
            Some(p) => p,
            None => {
                registries.push((n.domain.clone(), Vec::new()));
                registries.len() - 1
            }
        };
        let targets = &mut registries[pos].1;
        let t = match targets.iter().position(|t| t.repo == n.path) {
            Some(i) => &mut targets[i],
            None => {
                targets.push(Target {
                    repo: n.path.clone(),
                    tags: Vec::new(),
                });
                targets.last_mut().expect("just pushed")
            }
        };
        if !n.tag.is_empty() && !t.tags.contains(&n.tag) {
            t.tags.push(n.tag.clone());
        }
    }
    let bytes_of = |d: &Descriptor| -> Result<Bytes> {
        match graph.blobs.get(&d.digest) {
            Some((_, Blob::Bytes(b))) => Ok(Bytes::from(b.clone())),
            _ => Err(ExportError::internal(format!(
                "manifest {} is missing from the graph",
                d.digest
            ))),
        }
    };
    let item = |d: &Descriptor| -> Result<ManifestItem> {
        let bytes = bytes_of(d)?;
        Ok(ManifestItem {
            subject: subject_of(&bytes),
            desc: Descriptor::new(&d.media_type, d.digest.clone(), d.size),
            bytes,
        })
    };
    let images: Vec<ManifestItem> = graph
        .image_manifests
        .iter()
        .map(item)
        .collect::<Result<_>>()?;
    let attestations: Vec<ManifestItem> = graph
        .attestation_manifests
        .iter()
        .map(item)
        .collect::<Result<_>>()?;
    let manifests: Vec<&str> = images
        .iter()
        .chain(&attestations)
        .map(|m| m.desc.digest.as_str())
        .chain([graph.root.digest.as_str()])
        .collect();
    let blobs = graph
        .blobs
        .values()
        .filter(|(d, _)| !manifests.contains(&d.digest.as_str()))
        .cloned()
        .collect();
    let root_is_image = images.iter().any(|m| m.desc.digest == graph.root.digest);
    Ok(Plan {
        registries,
        blobs,
        index: if root_is_image {
            None
        } else {
            Some(item(&graph.root)?)
        },
        root: Descriptor::new(
            &graph.root.media_type,
            graph.root.digest.clone(),
            graph.root.size,
        ),
        root_bytes: bytes_of(&graph.root)?,
        images,
        attestations,
        push_by_digest: spec.push_by_digest,
        insecure: spec.insecure,
        fallback: spec.referrers_fallback,
        registry: spec.registry.clone(),
    })
}

/// Pushes the graph. Blocks until the push ended; layers are read through
/// `blobs` on this thread, and `progress` is called here too.
pub fn push(
    graph: &Graph,
    spec: &PushSpec<'_>,
    blobs: &dyn BlobSource,
    progress: &mut dyn FnMut(Progress),
) -> Result<()> {
    let plan = plan(graph, spec)?;
    // The caller's runtime when it is a multi-threaded one (the server's);
    // otherwise a small one of our own.
    let own: Option<Runtime>;
    let handle = match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            own = None;
            h
        }
        _ => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| ExportError::internal(format!("push runtime: {e}")))?;
            let h = rt.handle().clone();
            own = Some(rt);
            h
        }
    };
    let (tx, rx) = mpsc::channel::<Msg>();
    let task_tx = tx.clone();
    let span = info_span!("push", root = %plan.root.digest);
    handle.spawn(
        async move {
            let result = run(plan, &task_tx).await;
            let _ = task_tx.send(Msg::Done(result));
        }
        .instrument(span),
    );
    drop(tx);
    let result = loop {
        match rx.recv() {
            Ok(Msg::Progress(p)) => progress(p),
            Ok(Msg::Open(src, reply)) => {
                let _ = reply.send(src.open(blobs));
            }
            Ok(Msg::Done(r)) => break r.map_err(ExportError::from),
            Err(_) => {
                break Err(ExportError::internal(
                    "the push task ended without a result",
                ))
            }
        }
    };
    if let Some(rt) = own {
        rt.shutdown_background();
    }
    result
}

async fn run(plan: Plan, tx: &mpsc::Sender<Msg>) -> Result<(), RegistryError> {
    let mut tagged: Vec<(RegistryClient, &Target)> = Vec::new();
    for (host, targets) in &plan.registries {
        // Credential helpers are processes: look them up off the async threads.
        let (h, insecure, registry) = (host.clone(), plan.insecure, plan.registry.clone());
        let client = tokio::task::spawn_blocking(move || {
            RegistryClient::new(
                &h,
                ClientOptions {
                    insecure,
                    ..registry
                },
            )
        })
        .await
        .map_err(|e| RegistryError::Invalid(format!("registry client set-up: {e}")))??;
        let mut mount_from: Option<&str> = None;
        for target in targets {
            push_repo(&client, &plan, &target.repo, mount_from, tx)
                .instrument(info_span!("repo", registry = %host, repo = %target.repo))
                .await?;
            mount_from = Some(&target.repo);
            tagged.push((client.clone(), target));
        }
    }
    if plan.push_by_digest {
        return Ok(());
    }
    let content = Resend { plan: &plan, tx };
    for (client, target) in tagged {
        for tag in &target.tags {
            client
                .put_manifest_repairing(
                    &target.repo,
                    tag,
                    &plan.root.media_type,
                    plan.root_bytes.clone(),
                    &content,
                )
                .await?;
            info!(registry = client.host(), repo = %target.repo, %tag, digest = %plan.root.digest, "tagged");
        }
    }
    Ok(())
}

/// Pushes one blob of the plan, reporting progress.
async fn push_blob(
    client: &RegistryClient,
    repo: &str,
    desc: &Descriptor,
    blob: &Blob,
    mount_from: Option<&str>,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), RegistryError> {
    let src = blob_source(blob, tx);
    let (digest, total) = (desc.digest.clone(), desc.size);
    let progress_tx = tx.clone();
    let on_bytes = Arc::new(move |done: u64| {
        let _ = progress_tx.send(Msg::Progress(Progress::Writing {
            digest: digest.clone(),
            done,
            total,
        }));
    });
    let how = client
        .push_blob(repo, desc, src, mount_from, on_bytes)
        .await?;
    let digest = desc.digest.clone();
    let event = match how {
        BlobPush::Existed => Progress::Skipped { digest, total },
        BlobPush::Mounted => Progress::Mounted { digest, total },
        BlobPush::Uploaded { .. } => Progress::Done { digest, total },
    };
    debug!(digest = %desc.digest, ?how, "blob");
    let _ = tx.send(Msg::Progress(event));
    Ok(())
}

/// Blobs of one repository pushed at the same time: four, as BuildKit's
/// resolver allows per registry host, so a push through oxport keeps as many
/// uploads in flight as the daemon's own push of the same image.
const PUSH_CONCURRENCY: usize = 4;

async fn push_repo(
    client: &RegistryClient,
    plan: &Plan,
    repo: &str,
    mount_from: Option<&str>,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), RegistryError> {
    // Several blobs at once, as BuildKit and skopeo push: the registry
    // hashes and stores one while the next one is on the wire.
    // Collected first: a lazy `map` in the stream trips the `Send` check of
    // the spawned push task.
    let pushes: Vec<_> = plan
        .blobs
        .iter()
        .map(|(desc, blob)| push_blob(client, repo, desc, blob, mount_from, tx))
        .collect();
    futures_util::stream::iter(pushes)
        .buffer_unordered(PUSH_CONCURRENCY)
        .try_collect::<()>()
        .await?;
    let content = Resend { plan, tx };
    for m in &plan.images {
        put_item(client, repo, m, &content).await?;
    }
    // Subjects indexed by the registry itself (OCI-Subject on the PUT).
    let mut indexed = false;
    for m in &plan.attestations {
        let pushed = put_item(client, repo, m, &content).await?;
        if m.subject.is_some() && pushed.oci_subject.is_some() {
            indexed = true;
        }
    }
    if let Some(index) = &plan.index {
        put_item(client, repo, index, &content).await?;
    }
    maintain_fallback(client, plan, repo, indexed).await
}

/// Puts one manifest of the plan by digest.
async fn put_item(
    client: &RegistryClient,
    repo: &str,
    m: &ManifestItem,
    content: &Resend<'_>,
) -> Result<crate::registry::PushedManifest, RegistryError> {
    client
        .put_manifest_repairing(
            repo,
            &m.desc.digest,
            &m.desc.media_type,
            m.bytes.clone(),
            content,
        )
        .await
}

/// Writes the referrers fallback tags the policy asks for.
async fn maintain_fallback(
    client: &RegistryClient,
    plan: &Plan,
    repo: &str,
    indexed: bool,
) -> Result<(), RegistryError> {
    let manifests: Vec<(Descriptor, Bytes)> = plan
        .attestations
        .iter()
        .map(|m| (m.desc.clone(), m.bytes.clone()))
        .collect();
    for tag in client
        .maintain_referrers(repo, &manifests, indexed, plan.fallback)
        .await?
    {
        info!(repo, %tag, "referrers fallback tag");
    }
    Ok(())
}
