//! The reference client of `oxport.exporter.v1`, used by the CLI and tests.
//!
//! It connects to `unix://PATH` or `tcp://HOST:PORT`, uploads only the blobs
//! the server lacks (resuming broken uploads from the offset the server
//! holds), and runs exports, writing the streamed output to any `Write`.
//!
//! - [`error`]: what a call can meet, and the classification of a failed call.
//! - [`health`]: `grpc.health.v1` checks for probes.
//! - [`output`]: the `--output` CSV (its destination is
//!   [`crate::destination`]).
//! - [`progress`]: shows the per-blob progress events.
//! - [`tls`]: TLS and mutual TLS for `https://` and `tcp+tls://` addresses.

mod error;
pub mod health;
pub mod output;
pub mod progress;
pub mod tls;

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tracing::debug;

use crate::model::{ExportRequest, ExportResponse};
use crate::progress::Progress;
use crate::proto::{self, export_event::Event, exporter_client::ExporterClient};
use crate::wire::{self, CHUNK_SIZE, MAX_MESSAGE_SIZE};

pub use error::ClientError;

/// Attempts at one blob upload before giving up.
const UPLOAD_ATTEMPTS: u32 = 5;

/// Answers a server's request for registry credentials during an export
/// (`ExportEvent.auth`); the answer goes back through `AnswerAuth`.
pub type Answerer = dyn Fn(&proto::AuthChallenge) -> proto::AnswerAuthRequest + Send + Sync;

/// An answerer from the user's Docker config: the username and secret of
/// the challenge's registry (`docker login`, credential helpers), or nothing.
/// Identity tokens are not handed out; such a registry is asked anonymously.
pub fn docker_config_answerer() -> Box<Answerer> {
    Box::new(|c: &proto::AuthChallenge| {
        let mut answer = proto::AnswerAuthRequest {
            id: c.id.clone(),
            ..Default::default()
        };
        match crate::registry::credentials::lookup(&c.host) {
            Ok(Some(crate::registry::Credential::Basic { username, password })) => {
                answer.username = username;
                answer.secret = password;
            }
            Ok(Some(crate::registry::Credential::IdentityToken(_))) | Ok(None) => {}
            Err(e) => answer.error = e.to_string(),
        }
        answer
    })
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// The state of an upload on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobStatus {
    pub offset: u64,
    pub committed: bool,
}

/// How one blob upload went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Upload {
    /// The server already had the blob.
    pub existed: bool,
    /// The offset the last stream started from (non-zero after a resume).
    pub resumed_from: u64,
    /// Bytes sent over the wire.
    pub sent: u64,
}

#[derive(Clone)]
pub struct Client {
    rpc: ExporterClient<Channel>,
    channel: Channel,
    /// The address dialled, named in connection failures.
    addr: Arc<str>,
    /// Whether the other end has answered a call: a connection failure
    /// before that means the address is no gRPC server.
    answered: Arc<AtomicBool>,
}

impl Client {
    /// Connects to `unix:///path.sock` or `tcp://HOST:PORT`.
    pub async fn connect(addr: &str) -> Result<Client> {
        Client::connect_tls(addr, &tls::default_files()).await
    }

    /// Connects with these TLS files for `https://` and `tcp+tls://` addresses.
    pub async fn connect_tls(addr: &str, tls: &tls::ClientTls) -> Result<Client> {
        let channel = connect_channel(addr, tls).await?;
        let rpc = ExporterClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        Ok(Client {
            rpc,
            channel,
            addr: addr.into(),
            answered: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The outcome of one call: an answer is remembered, and a failure is
    /// classified (server status or connection failure, see [`error`]).
    pub fn outcome<T>(&self, r: std::result::Result<T, Status>) -> Result<T> {
        match r {
            Ok(v) => {
                self.answered.store(true, Ordering::Relaxed);
                Ok(v)
            }
            Err(s) => Err(error::call_failed(
                &self.addr,
                self.answered.load(Ordering::Relaxed),
                s,
            )),
        }
    }

    /// The underlying channel, for other services (health, reflection).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub async fn resolve_options(
        &mut self,
        exporter: &str,
        attrs: &BTreeMap<String, String>,
        compatibility_version: i32,
    ) -> Result<BTreeMap<String, String>> {
        let resp = self
            .rpc
            .resolve_options(proto::ResolveOptionsRequest {
                exporter: exporter.to_string(),
                attrs: attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                compatibility_version,
            })
            .await;
        Ok(self
            .outcome(resp)?
            .into_inner()
            .effective
            .into_iter()
            .collect())
    }

    /// The digests, out of `digests`, that the server lacks.
    pub async fn missing_blobs(&mut self, digests: &[String]) -> Result<Vec<String>> {
        let resp = self
            .rpc
            .missing_blobs(proto::MissingBlobsRequest {
                digests: digests.to_vec(),
            })
            .await;
        Ok(self.outcome(resp)?.into_inner().missing)
    }

    /// How much of the upload `ref_` (the digest when empty) of a blob of
    /// `size` bytes the server holds.
    pub async fn blob_status(&mut self, ref_: &str, digest: &str, size: u64) -> Result<BlobStatus> {
        let resp = self
            .rpc
            .blob_status(proto::BlobStatusRequest {
                r#ref: ref_.to_string(),
                digest: digest.to_string(),
                size: i64::try_from(size).unwrap_or(0),
            })
            .await;
        let resp = self.outcome(resp)?.into_inner();
        Ok(BlobStatus {
            offset: resp.offset.max(0) as u64,
            committed: resp.committed,
        })
    }

    /// Uploads the blob in `path` (its first `size` bytes) under its digest
    /// as the ref, resuming from the offset the server holds; retries broken
    /// streams from the new offset.
    pub async fn upload_blob(&mut self, digest: &str, size: u64, path: &Path) -> Result<Upload> {
        let mut last = None;
        let mut start_over = false;
        for attempt in 0..UPLOAD_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
            }
            let status = self.blob_status(digest, digest, size).await?;
            if status.committed {
                return Ok(Upload {
                    existed: true,
                    ..Upload::default()
                });
            }
            let offset = if status.offset <= size && !start_over {
                status.offset
            } else {
                0
            };
            match self.write_from(digest, size, path, offset).await {
                Ok(resp) if resp.committed => {
                    return Ok(Upload {
                        existed: resp.existed,
                        resumed_from: offset,
                        sent: size - offset,
                    })
                }
                Ok(resp) => {
                    return Err(ClientError::Protocol(format!(
                        "{}: the file holds fewer than {size} bytes (server holds {})",
                        path.display(),
                        resp.offset
                    )))
                }
                Err(e) if e.call_status().is_some_and(retryable) => {
                    let s = e.call_status().cloned().expect("matched");
                    debug!(%digest, code = ?s.code(), error = s.message(), "upload broke; resuming");
                    last = Some(s);
                }
                // What the server holds cannot be resumed (another size, say):
                // the server said to start over at offset 0.
                Err(ClientError::Status(s))
                    if s.code() == tonic::Code::FailedPrecondition && offset != 0 =>
                {
                    debug!(%digest, error = s.message(), "upload cannot resume; starting over");
                    start_over = true;
                    last = Some(s);
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Status(last.unwrap_or_else(|| {
            Status::unavailable(format!("upload of {digest} did not finish"))
        })))
    }

    /// Uploads the blobs the server lacks, out of (digest, size, file).
    /// Returns how many were uploaded.
    pub async fn upload_missing(
        &mut self,
        blobs: &[(String, u64, std::path::PathBuf)],
    ) -> Result<usize> {
        let digests: Vec<String> = blobs.iter().map(|b| b.0.clone()).collect();
        let missing = self.missing_blobs(&digests).await?;
        let mut uploaded = 0;
        for (digest, size, path) in blobs {
            if !missing.contains(digest) {
                debug!(%digest, size, "blob present");
                continue;
            }
            let up = self.upload_blob(digest, *size, path).await?;
            debug!(%digest, size, resumed_from = up.resumed_from, "blob uploaded");
            uploaded += 1;
        }
        Ok(uploaded)
    }

    /// Runs an export: output chunks go to `out` in order, progress events
    /// to `progress`. Returns the exporter response map.
    pub async fn export(
        &mut self,
        req: &ExportRequest,
        out: &mut (dyn Write + Send),
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<ExportResponse> {
        self.export_answering(req, out, progress, None).await
    }

    /// [`Self::export`], answering the registries' credential requests with
    /// `answer` when given (the server then uses no credentials of its own).
    pub async fn export_answering(
        &mut self,
        req: &ExportRequest,
        out: &mut (dyn Write + Send),
        progress: &mut (dyn FnMut(&Progress) + Send),
        answer: Option<&Answerer>,
    ) -> Result<ExportResponse> {
        let mut wire_req = wire::request_to_proto(req);
        wire_req.registry_auth = answer.is_some();
        let resp = self.rpc.export(wire_req).await;
        let resp = self.outcome(resp)?;
        if let Some(id) = resp.metadata().get("x-request-id") {
            debug!(request_id = ?id, "export started");
        }
        let mut stream = resp.into_inner();
        loop {
            let next = stream.message().await;
            let Some(ev) = self.outcome(next)? else { break };
            match ev.event {
                Some(Event::Chunk(bytes)) => out.write_all(&bytes)?,
                Some(Event::Progress(p)) => {
                    if let Some(p) = wire::progress_from_proto(&p) {
                        progress(&p);
                    }
                }
                Some(Event::Done(done)) => {
                    out.flush()?;
                    return Ok(done.response.into_iter().collect());
                }
                Some(Event::Auth(challenge)) => {
                    let Some(answer) = answer else {
                        return Err(ClientError::Protocol(
                            "the server asked for registry credentials, which were not offered"
                                .into(),
                        ));
                    };
                    debug!(registry = %challenge.host, "answering a credential request");
                    // A credential helper is a short process; block_in_place
                    // would refuse a current-thread runtime.
                    let reply = answer(&challenge);
                    match self.rpc.answer_auth(reply).await {
                        // The export ended meanwhile; its stream says why.
                        Err(s) if s.code() == Code::NotFound => {}
                        r => {
                            self.outcome(r)?;
                        }
                    }
                }
                None => {}
            }
        }
        Err(ClientError::Protocol(
            "the export stream ended without a response".into(),
        ))
    }

    /// One WriteBlob stream from `offset` to `size`.
    async fn write_from(
        &mut self,
        digest: &str,
        size: u64,
        path: &Path,
        offset: u64,
    ) -> Result<proto::WriteBlobResponse> {
        let (mut file, _) = crate::untrusted::open_regular(path)?;
        file.seek(std::io::SeekFrom::Start(offset))?;
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let first = proto::WriteBlobRequest {
            r#ref: digest.to_string(),
            digest: digest.to_string(),
            size: size as i64,
            offset: offset as i64,
            data: Bytes::new(),
        };
        // Plain blocking reads on their own thread, each into a fresh buffer
        // that becomes the message body without another copy.
        let reader = tokio::task::spawn_blocking(move || {
            let mut msg = first;
            let mut left = size - offset;
            loop {
                let want = left.min(CHUNK_SIZE as u64);
                let mut data = Vec::with_capacity(want as usize);
                (&mut file).take(want).read_to_end(&mut data)?;
                let n = data.len() as u64;
                left -= n;
                let end = n < want || left == 0;
                msg.data = Bytes::from(data);
                if tx.blocking_send(msg).is_err() {
                    return Ok(());
                }
                if end {
                    return Ok::<(), std::io::Error>(());
                }
                msg = proto::WriteBlobRequest::default();
            }
        });
        let result = self.rpc.write_blob(ReceiverStream::new(rx)).await;
        match reader.await {
            Ok(Err(e)) => return Err(e.into()),
            Err(e) => return Err(ClientError::Protocol(format!("upload reader: {e}"))),
            Ok(Ok(())) => {}
        }
        Ok(self.outcome(result)?.into_inner())
    }
}

/// Errors after which an upload is worth resuming.
fn retryable(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable
            | Code::Cancelled
            | Code::Aborted
            | Code::Unknown
            | Code::Internal
            | Code::FailedPrecondition
    )
}

/// Bulk-transfer settings: large HTTP/2 windows and frames (see `wire`).
fn tuned(e: Endpoint) -> Endpoint {
    e.initial_stream_window_size(wire::STREAM_WINDOW)
        .initial_connection_window_size(wire::CONNECTION_WINDOW)
        .max_frame_size(wire::MAX_FRAME_SIZE)
}

async fn connect_channel(addr: &str, tls_files: &tls::ClientTls) -> Result<Channel> {
    if let Some(path) = addr.strip_prefix("unix://") {
        let path = std::path::PathBuf::from(path);
        // The URI is required by the API but unused: the connector dials the socket.
        let endpoint = tuned(Endpoint::from_static("http://oxport.local"));
        endpoint
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })
    } else if let Some(hostport) = tls::tls_host_port(addr) {
        let host = match hostport.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
            None => hostport,
        };
        let tls = tls_files.config(host)?;
        let endpoint = Endpoint::from_shared(format!("https://{hostport}"))
            .map(tuned)
            .and_then(|e| e.tls_config(tls))
            .map_err(|e| ClientError::Address(format!("invalid address {addr:?}: {e}")))?;
        endpoint
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })
    } else if let Some(hostport) = addr.strip_prefix("tcp://") {
        let endpoint = Endpoint::from_shared(format!("http://{hostport}"))
            .map(tuned)
            .map_err(|e| ClientError::Address(format!("invalid address {addr:?}: {e}")))?;
        endpoint
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })
    } else {
        Err(ClientError::Address(format!(
            "invalid address {addr:?}: want unix:///path/to.sock, tcp://HOST:PORT or https://HOST:PORT"
        )))
    }
}
