//! The registry sink: pushes an assembled graph to every repository its
//! names point at.
//!
//! Order: each manifest once what it names is in the repository (its
//! config and layers, an index's manifests, its subject, so registries that
//! check them accept it; `sink::schedule`), then the referrers fallback tags
//! where needed, and the user's tags last, so a failure leaves no tag moved.
//! Within one registry, a blob pushed to one repository is mounted into the
//! next.
//!
//! The export core is blocking and its blob source is borrowed, while the
//! registry client is async. So the push runs as a task on the runtime, and
//! the calling thread serves it: it opens layer blobs on request and passes
//! progress events on, until the task reports its end.

use std::io::{self, Read};
use std::sync::mpsc;
use std::sync::Arc;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tracing::{info_span, Instrument};

use super::push::{self, OnProgress, Plan, RepoPush};
use super::Sink;
use crate::error::{ErrorKind, ExportError, Result};
use crate::image::Image;
use crate::oci::Descriptor;
use crate::options::ReferrersFallback;
use crate::progress::Progress;
use crate::reference::Reference;
use crate::registry::{BlobOpen, ClientOptions, RegistryClient, RegistryError};

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
        Box<Descriptor>,
        mpsc::SyncSender<io::Result<Box<dyn Read + Send>>>,
    ),
    Done(Result<(), RegistryError>),
}

/// One repository and the tags it gets.
struct Target {
    repo: String,
    tags: Vec<String>,
}

/// Everything the push task owns.
struct Job {
    /// Registry host -> repositories, in the order the names give.
    registries: Vec<(String, Vec<Target>)>,
    plan: Plan,
    push_by_digest: bool,
    insecure: bool,
    fallback: ReferrersFallback,
    registry: ClientOptions,
}

/// Reads a blob through the serving thread (the image is borrowed there).
struct ServedBlob {
    desc: Descriptor,
    tx: mpsc::Sender<Msg>,
}

impl BlobOpen for ServedBlob {
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        let (reply, answer) = mpsc::sync_channel(1);
        let gone = || io::Error::other("the export stopped");
        self.tx
            .send(Msg::Open(Box::new(self.desc.clone()), reply))
            .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

/// The names grouped by registry host, then repository, in their order.
fn targets(names: &[Reference]) -> Vec<(String, Vec<Target>)> {
    let mut registries: Vec<(String, Vec<Target>)> = Vec::new();
    for n in names {
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
    registries
}

/// The registry sink of an export: pushes to every repository its names
/// point at.
pub struct RegistrySink<'a> {
    pub spec: PushSpec<'a>,
}

impl Sink for RegistrySink<'_> {
    /// Blocks until the push ended; blobs not held in memory are opened
    /// through `image` on this thread, and `progress` is called here too.
    fn write(&mut self, image: &dyn Image, progress: &mut dyn FnMut(Progress)) -> Result<()> {
        push(image, &self.spec, progress)
    }
}

/// Pushes the image. Blocks until the push ended; blobs not held in
/// memory are opened through `image` on this thread, and `progress` is
/// called here too.
fn push(image: &dyn Image, spec: &PushSpec<'_>, progress: &mut dyn FnMut(Progress)) -> Result<()> {
    if spec.names.is_empty() {
        return Err(ExportError::invalid(
            "name",
            "push requires an image name: set the name attribute",
        ));
    }
    let (tx, rx) = mpsc::channel::<Msg>();
    let open_tx = tx.clone();
    let open = move |d: &Descriptor| -> Arc<dyn BlobOpen> {
        Arc::new(ServedBlob {
            desc: d.clone(),
            tx: open_tx.clone(),
        })
    };
    let job = Job {
        registries: targets(spec.names),
        plan: Plan::new(image, &open)?,
        push_by_digest: spec.push_by_digest,
        insecure: spec.insecure,
        fallback: spec.referrers_fallback,
        registry: spec.registry.clone(),
    };
    drop(open);
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
    let task_tx = tx.clone();
    let span = info_span!("push", root = %job.plan.root.desc.digest);
    handle.spawn(
        async move {
            let result = run(job, &task_tx).await;
            let _ = task_tx.send(Msg::Done(result));
        }
        .instrument(span),
    );
    drop(tx);
    let result = loop {
        match rx.recv() {
            Ok(Msg::Progress(p)) => progress(p),
            Ok(Msg::Open(d, reply)) => {
                let _ = reply.send(image.open_blob(&d.digest).map_err(io_error));
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

/// An image's error as the upload that asked for the blob sees it: the
/// kind kept as far as the push reports it (missing, cancelled, other).
fn io_error(e: ExportError) -> io::Error {
    let kind = match e.kind {
        ErrorKind::NotFound => io::ErrorKind::NotFound,
        ErrorKind::Cancelled => io::ErrorKind::BrokenPipe,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.message)
}

/// Blobs of one repository pushed at the same time: four, as BuildKit's
/// resolver allows per registry host, so a push through oxport keeps as many
/// uploads in flight as the daemon's own push of the same image.
const PUSH_CONCURRENCY: usize = 4;

async fn run(job: Job, tx: &mpsc::Sender<Msg>) -> Result<(), RegistryError> {
    let progress_tx = tx.clone();
    let on: OnProgress = Arc::new(move |p| {
        let _ = progress_tx.send(Msg::Progress(p));
    });
    let mut tagged: Vec<(RegistryClient, &Target)> = Vec::new();
    for (host, targets) in &job.registries {
        // Credential helpers are processes: look them up off the async threads.
        let (h, insecure, registry) = (host.clone(), job.insecure, job.registry.clone());
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
            let how = RepoPush {
                mount_from,
                concurrency: PUSH_CONCURRENCY,
                skip_existing: false,
                fallback: job.fallback,
            };
            push::push_repo(&client, &job.plan, &target.repo, &how, &on)
                .instrument(info_span!("repo", registry = %host, repo = %target.repo))
                .await?;
            mount_from = Some(&target.repo);
            tagged.push((client.clone(), target));
        }
    }
    if job.push_by_digest {
        return Ok(());
    }
    for (client, target) in tagged {
        for tag in &target.tags {
            push::tag(&client, &job.plan, &target.repo, tag).await?;
        }
    }
    Ok(())
}
