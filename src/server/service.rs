//! The `oxport.exporter.v1.Exporter` handlers.
//!
//! Handlers translate protobuf to the model, call the library or the store,
//! and translate back. Blocking work (file I/O, hashing, the export core)
//! runs on the blocking pool. Request ids, spans and limits come from the
//! tower layers in `server::mod`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn, Instrument};

use super::output::{ChunkWriter, Events, CHANNEL_DEPTH};
use super::request_id::RequestId;
use super::status::to_status;
use crate::error::{ErrorKind, ExportError};
use crate::export::{self, ExportEnv};
use crate::model;
use crate::proto::{self, export_event::Event, exporter_server::Exporter};
use crate::store::{parse_digest, Ingest, RefLock, Store};
use crate::wire;

/// How long a second writer of one upload ref waits for the first.
const REF_LOCK_WAIT: Duration = Duration::from_secs(60);

pub struct ExporterService {
    store: Arc<Store>,
    /// Exports running at once; more wait their turn.
    export_slots: Arc<Semaphore>,
}

impl ExporterService {
    pub fn new(store: Arc<Store>, max_exports: usize) -> Self {
        ExporterService {
            store,
            export_slots: Arc::new(Semaphore::new(max_exports.max(1))),
        }
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
        let attrs = r.attrs.into_iter().collect();
        let effective = export::resolve_options(&r.exporter, &attrs, r.compatibility_version)
            .map_err(|e| to_status(&e))?;
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
        let missing = self.blocking(move |s| s.missing(&digests)).await?;
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
        let st = self.blocking(move |s| s.status(&ref_, &r.digest)).await?;
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
        let mut stream = request.into_inner();
        let first = stream.message().await?.ok_or_else(|| {
            to_status(&ExportError::invalid(
                "digest",
                "empty upload: no message was sent",
            ))
        })?;
        let digest = first.digest.clone();
        parse_digest("digest", &digest).map_err(|e| to_status(&e))?;
        let size = wire::non_negative("size", first.size).map_err(|e| to_status(&e))?;
        let offset = wire::non_negative("offset", first.offset).map_err(|e| to_status(&e))?;
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
        let Some(mut ingest) = ingest else {
            return Ok(Response::new(response(true, true, size)));
        };

        let mut data = first.data;
        loop {
            if !data.is_empty() {
                ingest = self.blocking(move |_| write_chunk(ingest, data)).await?;
            }
            match stream.message().await {
                Ok(Some(next)) => data = next.data,
                Ok(None) => break,
                Err(status) => {
                    // The bytes written so far stay for a resume.
                    info!(%digest, held = ingest.offset(), "upload interrupted");
                    return Err(status);
                }
            }
        }
        let held = ingest.offset();
        if held < ingest.size() {
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
        let stream =
            super::convert::convert(Arc::clone(&self.store), request.into_inner(), request_id)
                .await?;
        Ok(Response::new(stream))
    }

    type ExportStream = ExportStream;

    async fn export(
        &self,
        request: Request<proto::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let request_id = RequestId::of(&request);
        let req = wire::request_from_proto(request.into_inner()).map_err(|e| to_status(&e))?;
        // Attributes are checked before any input, as BuildKit resolves its
        // exporter before the build.
        export::resolve_options(&req.exporter, &req.attrs, req.compatibility_version)
            .map_err(|e| to_status(&e))?;
        self.check_blobs(&req.result)?;

        let permit = Arc::clone(&self.export_slots)
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the server is shutting down"))?;
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let events = Events::new(tx, request_id);
        let store = Arc::clone(&self.store);
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _permit = permit;
            run_export(&store, &req, events);
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

fn write_chunk(mut ingest: Ingest, data: Vec<u8>) -> crate::error::Result<Ingest> {
    ingest.write(&data)?;
    Ok(ingest)
}

/// One export on the blocking pool; its scratch directory goes when it ends.
fn run_export(store: &Store, req: &model::ExportRequest, events: Events) {
    let started = Instant::now();
    let scratch = match tempfile::Builder::new()
        .prefix("export-")
        .tempdir_in(store.scratch_dir())
    {
        Ok(dir) => dir,
        Err(e) => {
            let _ = events.send_error(to_status(&ExportError::from(e).context("scratch")));
            return;
        }
    };
    let env = ExportEnv {
        blobs: store,
        scratch: scratch.path(),
    };
    let mut out = ChunkWriter::new(events.clone());
    let progress_events = events.clone();
    let mut progress = |p: export::Progress| progress_events.progress(&p);
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
            }
        }
        Err(_) if events.is_closed() => info!("export stopped: the client went away"),
        Err(e) => {
            info!(code = ?e.kind, error = %e.message, "export failed");
            let _ = events.send_error(to_status(&e));
        }
    }
}
