//! The `oxport.exporter.v1.Exporter` handlers.
//!
//! Handlers translate protobuf to the model, call the library or the store,
//! and translate back. Blocking work (file I/O, hashing, the export core)
//! runs on the blocking pool. Request ids, spans and limits come from the
//! tower layers in `server::mod`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn, Instrument};

use super::admission::ExportQueue;
use super::output::{ChunkWriter, Events, CHANNEL_DEPTH};
use super::request_id::RequestId;
use super::status::to_status;
use crate::digest::parse_digest;
use crate::error::{ErrorKind, ExportError};
use crate::export::{self, ExportEnv};
use crate::limits::{self, Limits};
use crate::metrics::{self, Outcome};
use crate::model;
use crate::progress::{Progress, Throttle};
use crate::proto::{self, export_event::Event, exporter_server::Exporter};
use crate::store::{Ingest, RefLock, Store};
use crate::wire;

/// How long a second writer of one upload ref waits for the first.
const REF_LOCK_WAIT: Duration = Duration::from_secs(60);

pub struct ExporterService {
    store: Arc<Store>,
    limits: Limits,
    /// How exports reach registries: the server's certificates, and its own
    /// Docker config only when `--docker-credentials` says so.
    registry: crate::registry::ClientOptions,
    /// Credential requests of running exports, waiting for AnswerAuth.
    pending: Arc<super::auth_relay::PendingAnswers>,
    /// Exports and conversions running at once, and a bounded line of more.
    queue: Arc<ExportQueue>,
    /// The keys exports may sign with (`oxport.sign=NAME`).
    keyring: crate::sign::Keyring,
}

impl ExporterService {
    pub fn new(
        store: Arc<Store>,
        limits: Limits,
        registry: crate::registry::ClientOptions,
    ) -> Self {
        ExporterService {
            store,
            limits,
            registry,
            pending: Arc::default(),
            queue: Arc::new(ExportQueue::new(limits.export_slots(), limits.export_queue)),
            keyring: Default::default(),
        }
    }

    /// The keys requests may name to sign with.
    pub fn with_keyring(mut self, keyring: crate::sign::Keyring) -> Self {
        self.keyring = keyring;
        self
    }

    /// When a request that starts now must be done.
    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.limits.request_timeout
    }

    /// Runs blocking store work off the async threads.
    async fn blocking<T, F>(&self, f: F) -> Result<T, Status>
    where
        F: FnOnce(&Store) -> crate::error::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Status::internal(format!("store task failed: {e}")))?
            .map_err(|e| to_status(&e))
    }

    async fn lock_ref(&self, ref_: &str) -> Result<RefLock, Status> {
        let deadline = Instant::now() + REF_LOCK_WAIT;
        loop {
            if let Some(lock) = self.store.try_lock(ref_) {
                return Ok(lock);
            }
            if Instant::now() >= deadline {
                return Err(to_status(&ExportError::new(
                    ErrorKind::Unavailable,
                    format!("upload ref {ref_:?} is locked by another writer"),
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every layer blob must be in the store before an export starts.
    fn check_blobs(&self, result: &model::BuildResult) -> Result<(), Status> {
        for (key, layers) in &result.refs {
            for (i, layer) in layers.iter().enumerate() {
                let present = self
                    .store
                    .contains(&layer.digest)
                    .map_err(|e| to_status(&e))?;
                if !present {
                    let e = ExportError {
                        kind: ErrorKind::NotFound,
                        message: format!("content digest {}: not found", layer.digest),
                        field: Some(format!("{}.digest", wire::ref_path(key, i))),
                    };
                    return Err(to_status(&e));
                }
            }
        }
        Ok(())
    }
}

type ExportStream = ReceiverStream<Result<proto::ExportEvent, Status>>;

#[tonic::async_trait]
impl Exporter for ExporterService {
    async fn resolve_options(
        &self,
        request: Request<proto::ResolveOptionsRequest>,
    ) -> Result<Response<proto::ResolveOptionsResponse>, Status> {
        let request_id = RequestId::of(&request);
        let r = request.into_inner();
        let attrs: std::collections::BTreeMap<String, String> = r.attrs.into_iter().collect();
        crate::annotations::check_sizes(
            attrs.iter().map(|(k, v)| (k.as_str(), v.len())),
            self.limits.max_annotation_size,
        )
        .map_err(|e| to_status(&e))?;
        let effective = export::resolve_options(&r.exporter, &attrs, r.compatibility_version)
            .map_err(|e| to_status(&e))?;
        // A key this server lacks fails at resolve time, before any build.
        let sign = effective
            .get(crate::options::keys::SIGN)
            .map(String::as_str);
        export::signer_for(sign, &self.keyring).map_err(|e| to_status(&e))?;
        Ok(Response::new(proto::ResolveOptionsResponse {
            request_id,
            effective: effective.into_iter().collect(),
        }))
    }

    async fn missing_blobs(
        &self,
        request: Request<proto::MissingBlobsRequest>,
    ) -> Result<Response<proto::MissingBlobsResponse>, Status> {
        let request_id = RequestId::of(&request);
        let digests = request.into_inner().digests;
        if digests.len() > self.limits.max_request_digests {
            return Err(to_status(&crate::limits::exceeded(
                "digests",
                format!("a request of {} digests", digests.len()),
                self.limits.max_request_digests as u64,
                "max-request-digests",
            )));
        }
        // Checking and counting are linear, and run off the async threads.
        let (missing, present) = self
            .blocking(move |s| {
                let missing = s.missing(&digests)?;
                let asked: std::collections::HashSet<&String> = digests.iter().collect();
                let present = asked.len() - missing.len();
                Ok((missing, present))
            })
            .await?;
        metrics::global().add_deduplicated(present as u64);
        Ok(Response::new(proto::MissingBlobsResponse {
            request_id,
            missing,
        }))
    }

    async fn blob_status(
        &self,
        request: Request<proto::BlobStatusRequest>,
    ) -> Result<Response<proto::BlobStatusResponse>, Status> {
        let request_id = RequestId::of(&request);
        let r = request.into_inner();
        parse_digest("digest", &r.digest).map_err(|e| to_status(&e))?;
        let ref_ = if r.r#ref.is_empty() {
            r.digest.clone()
        } else {
            r.r#ref
        };
        let size = (r.size > 0).then_some(r.size as u64);
        let st = self
            .blocking(move |s| s.status(&ref_, &r.digest, size))
            .await?;
        Ok(Response::new(proto::BlobStatusResponse {
            request_id,
            offset: st.offset as i64,
            committed: st.committed,
        }))
    }

    async fn write_blob(
        &self,
        request: Request<Streaming<proto::WriteBlobRequest>>,
    ) -> Result<Response<proto::WriteBlobResponse>, Status> {
        let request_id = RequestId::of(&request);
        let deadline = self.deadline();
        let mut stream = request.into_inner();
        let first = next_chunk(&mut stream, deadline, &self.limits, 0)
            .await?
            .ok_or_else(|| {
                to_status(&ExportError::invalid(
                    "digest",
                    "empty upload: no message was sent",
                ))
            })?;
        let digest = first.digest.clone();
        parse_digest("digest", &digest).map_err(|e| to_status(&e))?;
        let size = wire::non_negative("size", first.size).map_err(|e| to_status(&e))?;
        let offset = wire::non_negative("offset", first.offset).map_err(|e| to_status(&e))?;
        if size > self.limits.max_blob_size {
            return Err(to_status(&limits::exceeded(
                "size",
                format!("blob size {size}"),
                self.limits.max_blob_size,
                "max-blob-size",
            )));
        }
        let ref_ = if first.r#ref.is_empty() {
            digest.clone()
        } else {
            first.r#ref.clone()
        };
        let response = |existed: bool, committed: bool, held: u64| proto::WriteBlobResponse {
            request_id: request_id.clone(),
            digest: digest.clone(),
            size: size as i64,
            existed,
            committed,
            offset: held as i64,
        };

        let lock = self.lock_ref(&ref_).await?;
        let (d, lock) = (digest.clone(), Arc::new(lock));
        let l = Arc::clone(&lock);
        let ingest = self
            .blocking(move |s| s.begin_write(&l, &d, size, offset))
            .await?;
        let Some(ingest) = ingest else {
            metrics::global().add_deduplicated(1);
            return Ok(Response::new(response(true, true, size)));
        };

        // A client that cancels drops this handler mid-await; say so.
        let mut unfinished = Unfinished(Some(digest.clone()));
        let mut data = first.data;
        let mut received = data.len() as u64;
        // Each chunk is written and hashed on the blocking pool while the
        // next one is received: the one pass over the bytes overlaps the
        // network.
        let mut writing: Option<WriteTask> = None;
        let mut idle = Some(ingest);
        loop {
            if !data.is_empty() {
                metrics::global().add_bytes_in(data.len() as u64);
                let ingest = match writing.take() {
                    Some(w) => joined(w).await?,
                    None => idle
                        .take()
                        .ok_or_else(|| Status::internal("upload state lost"))?,
                };
                writing = Some(tokio::task::spawn_blocking(move || {
                    write_chunk(ingest, data)
                }));
            }
            match next_chunk(&mut stream, deadline, &self.limits, received).await {
                Ok(Some(next)) => {
                    received += next.data.len() as u64;
                    data = next.data;
                }
                Ok(None) => break,
                Err(status) => {
                    // The bytes written so far stay for a resume.
                    unfinished.0 = None;
                    let held = match writing.take() {
                        Some(w) => joined(w).await.map_or(0, |i| i.offset()),
                        None => idle.as_ref().map_or(0, Ingest::offset),
                    };
                    info!(%digest, held, code = ?status.code(), "upload interrupted");
                    return Err(status);
                }
            }
        }
        unfinished.0 = None;
        let ingest = match writing.take() {
            Some(w) => joined(w).await?,
            None => idle
                .take()
                .ok_or_else(|| Status::internal("upload state lost"))?,
        };
        let held = ingest.offset();
        if held < ingest.size() {
            // tonic reports a client's cancel as the end of the stream.
            info!(%digest, held, size, "upload ended short (cancelled by the client, or to be resumed)");
            return Ok(Response::new(response(false, false, held)));
        }
        self.blocking(move |_| ingest.commit()).await?;
        drop(lock);
        info!(%digest, size, "blob committed");
        Ok(Response::new(response(false, true, size)))
    }

    type ConvertStream = super::convert::ConvertStream;

    async fn convert(
        &self,
        request: Request<Streaming<proto::ConvertRequest>>,
    ) -> Result<Response<Self::ConvertStream>, Status> {
        let request_id = RequestId::of(&request);
        let stream = super::convert::convert(
            Arc::clone(&self.store),
            request.into_inner(),
            request_id,
            Arc::clone(&self.queue),
            self.limits,
        )
        .await?;
        Ok(Response::new(stream))
    }

    type ExportStream = ExportStream;

    async fn answer_auth(
        &self,
        request: Request<proto::AnswerAuthRequest>,
    ) -> Result<Response<proto::AnswerAuthResponse>, Status> {
        let request_id = RequestId::of(&request);
        let r = request.into_inner();
        let answer = super::auth_relay::answer_of(&r);
        if !self.pending.answer(&r.id, answer) {
            return Err(super::auth_relay::not_waiting());
        }
        Ok(Response::new(proto::AnswerAuthResponse { request_id }))
    }

    async fn export(
        &self,
        request: Request<proto::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let request_id = RequestId::of(&request);
        let proto_req = request.into_inner();
        let caller_auth = proto_req.registry_auth;
        // Counted on the wire form, before a model of every layer is built.
        let layers: usize = proto_req
            .result
            .iter()
            .flat_map(|r| r.refs.values())
            .map(|c| c.layers.len())
            .sum();
        export::check_layer_count(layers, &self.limits).map_err(|e| to_status(&e))?;
        let req = wire::request_from_proto(proto_req).map_err(|e| to_status(&e))?;
        // Attributes are checked before any input, as BuildKit resolves its
        // exporter before the build.
        let effective =
            export::resolve_options(&req.exporter, &req.attrs, req.compatibility_version)
                .map_err(|e| to_status(&e))?;
        let sign = effective
            .get(crate::options::keys::SIGN)
            .map(String::as_str);
        export::signer_for(sign, &self.keyring).map_err(|e| to_status(&e))?;
        self.check_blobs(&req.result)?;

        let deadline = self.deadline();
        let permit = self.queue.admit(deadline).await?;
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let events = Events::new(tx.clone(), request_id.clone()).with_deadline(deadline.into_std());
        let store = Arc::clone(&self.store);
        let limits = self.limits;
        let keyring = self.keyring.clone();
        let mut registry = self.registry.clone();
        if caller_auth {
            // Only the caller's answers: never the server's own credentials.
            registry.credentials = crate::registry::CredentialSource::Caller(Arc::new(
                super::auth_relay::StreamAsker {
                    pending: Arc::clone(&self.pending),
                    events: tx.clone(),
                    request_id: request_id.clone(),
                },
            ));
        }
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _permit = permit;
            run_export(&store, &req, limits, registry, &keyring, events);
        });
        tokio::spawn(
            async move {
                if let Err(e) = task.await {
                    warn!(error = %e, "export task panicked");
                }
            }
            .in_current_span(),
        );
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The next message of an upload stream, within the request deadline, the
/// idle timeout and the bytes one stream may carry (`received` so far).
pub(crate) async fn next_chunk<T: prost::Message + Default + HasData>(
    stream: &mut Streaming<T>,
    deadline: tokio::time::Instant,
    lim: &Limits,
    received: u64,
) -> Result<Option<T>, Status> {
    let idle_until = tokio::time::Instant::now() + lim.stream_idle_timeout;
    let msg = match tokio::time::timeout_at(deadline.min(idle_until), stream.message()).await {
        Err(_) if idle_until < deadline => {
            return Err(to_status(
                &ExportError::new(
                    ErrorKind::DeadlineExceeded,
                    format!(
                        "no message arrived for {:?} (--stream-idle-timeout); \
                         the bytes received are kept for a resume",
                        lim.stream_idle_timeout
                    ),
                )
                .with_field("data"),
            ))
        }
        Err(_) => {
            return Err(to_status(
                &ExportError::new(
                    ErrorKind::DeadlineExceeded,
                    format!(
                        "the upload did not finish within the request deadline of {:?} \
                         (--request-timeout); the bytes received are kept for a resume",
                        lim.request_timeout
                    ),
                )
                .with_field("data"),
            ))
        }
        Ok(Err(s)) if s.code() == tonic::Code::OutOfRange => {
            // tonic's "decoded message length too large".
            return Err(to_status(
                &ExportError::new(
                    ErrorKind::ResourceExhausted,
                    format!(
                        "an upload message is too large (--max-message-size): {}",
                        s.message()
                    ),
                )
                .with_field("data"),
            ));
        }
        Ok(r) => r?,
    };
    if let Some(m) = &msg {
        let total = received + m.data_len() as u64;
        if total > lim.max_upload_bytes {
            return Err(to_status(&limits::exceeded(
                "data",
                format!("an upload stream of {total} bytes"),
                lim.max_upload_bytes,
                "max-upload-bytes",
            )));
        }
    }
    Ok(msg)
}

/// Logs an upload whose handler was dropped before it ended: the client
/// cancelled the call or the connection broke. The bytes stay for a resume.
struct Unfinished(Option<String>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(digest) = self.0.take() {
            info!(%digest, "upload interrupted: the client cancelled or went away");
        }
    }
}

/// Upload messages that carry bytes.
pub(crate) trait HasData {
    fn data_len(&self) -> usize;
}

impl HasData for proto::WriteBlobRequest {
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

impl HasData for proto::ConvertRequest {
    fn data_len(&self) -> usize {
        self.chunk.len()
    }
}

type WriteTask = tokio::task::JoinHandle<crate::error::Result<Ingest>>;

async fn joined(task: WriteTask) -> Result<Ingest, Status> {
    task.await
        .map_err(|e| Status::internal(format!("store task failed: {e}")))?
        .map_err(|e| to_status(&e))
}

fn write_chunk(mut ingest: Ingest, data: bytes::Bytes) -> crate::error::Result<Ingest> {
    ingest.write(data)?;
    Ok(ingest)
}

/// One export on the blocking pool; its scratch directory goes when it ends.
fn run_export(
    store: &Store,
    req: &model::ExportRequest,
    limits: Limits,
    registry: crate::registry::ClientOptions,
    keyring: &crate::sign::Keyring,
    events: Events,
) {
    let started = Instant::now();
    let _in_flight = metrics::global().export_started();
    let outcome = run_export_inner(store, req, limits, registry, keyring, events);
    metrics::global().export_finished(&req.exporter, outcome, started.elapsed());
}

fn run_export_inner(
    store: &Store,
    req: &model::ExportRequest,
    limits: Limits,
    registry: crate::registry::ClientOptions,
    keyring: &crate::sign::Keyring,
    events: Events,
) -> Outcome {
    let started = Instant::now();
    let scratch = match tempfile::Builder::new()
        .prefix("export-")
        .tempdir_in(store.scratch_dir())
    {
        Ok(dir) => dir,
        Err(e) => {
            let _ = events.send_error(to_status(&ExportError::from(e).context("scratch")));
            return Outcome::Error;
        }
    };
    let env = ExportEnv {
        blobs: store,
        scratch: scratch.path(),
        limits,
        registry,
        keyring,
    };
    let mut out = ChunkWriter::new(events.clone());
    let progress_events = events.clone();
    let mut throttle = Throttle::new(Throttle::INTERVAL);
    let mut progress = |p: Progress| {
        if throttle.admit(&p, std::time::Instant::now()) {
            progress_events.progress(&p)
        }
    };
    let result = export::export(req, &env, &mut out, &mut progress).and_then(|resp| {
        std::io::Write::flush(&mut out)?;
        Ok(resp)
    });
    match result {
        Ok(response) => {
            info!(
                bytes = out.bytes_sent(),
                elapsed = ?started.elapsed(),
                digest = response.get("containerimage.digest").map(String::as_str).unwrap_or(""),
                "export done"
            );
            let done = Event::Done(proto::ExportDone {
                response: response.into_iter().collect(),
            });
            if events.send(done).is_err() {
                info!("client went away before the response");
                return Outcome::Cancelled;
            }
            Outcome::Success
        }
        Err(_) if events.deadline_passed() => {
            info!("export stopped: past the request deadline");
            events.send_deadline_error();
            Outcome::Error
        }
        Err(_) if events.is_closed() => {
            info!("export stopped: the client went away");
            Outcome::Cancelled
        }
        Err(e) => {
            info!(code = ?e.kind, error = %e.message, "export failed");
            let _ = events.send_error(to_status(&e));
            Outcome::Error
        }
    }
}
