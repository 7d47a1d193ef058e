//! Blobs: existence (HEAD), upload (one PUT for small blobs, PATCH chunks
//! for large ones, resumed from the registry's `Range`), cross-repository
//! mounts, and streaming fetch with digest verification. A blob is never
//! held in memory: readers feed the request body through a small channel.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use hyper::body::Incoming;
use tracing::debug;

use super::auth::{pct, pull_scope, push_scope};
use super::error::{RegistryError, Result};
use super::transport;
use super::{check_digest, Call, Reauth, RegistryClient, Sent};
use crate::oci::Descriptor;

/// Bytes per body frame of an upload.
const PIECE: usize = 256 << 10;

/// Opens a blob for reading from the start. It may be called again for a
/// retry; it runs on a blocking thread.
pub trait BlobOpen: Send + Sync {
    fn open(&self) -> io::Result<Box<dyn Read + Send>>;
}

/// A blob held in memory (manifests, configs, statements).
pub struct BytesBlob(pub Bytes);

impl BlobOpen for BytesBlob {
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(io::Cursor::new(self.0.clone())))
    }
}

/// A blob in a file.
pub struct FileBlob(pub PathBuf);

impl BlobOpen for FileBlob {
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(std::fs::File::open(&self.0)?))
    }
}

/// Told the position reached in the blob as an upload proceeds.
pub type OnBytes = Arc<dyn Fn(u64) + Send + Sync>;

/// How a blob got into the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPush {
    /// The repository had it already.
    Existed,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Uploaded; `bytes` counts every byte sent, retries included.
    Uploaded { bytes: u64 },
}

/// A reader positioned somewhere in a blob.
struct Cursor {
    reader: Box<dyn Read + Send>,
}

fn octet_stream() -> (HeaderName, HeaderValue) {
    (
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    )
}

/// Appends a query parameter to an upload location (which may have a query).
fn with_param(url: &str, kv: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{kv}")
}

/// The end of `Range: 0-<end>`, when it says bytes were received. `0-0` is
/// ambiguous (none or one), so it counts as none.
fn range_offset(v: Option<&HeaderValue>) -> Option<u64> {
    let s = v?.to_str().ok()?;
    let end: u64 = s
        .trim()
        .trim_start_matches("bytes=")
        .split_once('-')?
        .1
        .parse()
        .ok()?;
    (end > 0).then_some(end + 1)
}

pub(super) fn location(client: &RegistryClient, resp: &http::Response<Incoming>) -> Option<String> {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| client.resolve_location(l))
}

impl RegistryClient {
    /// True when `repo` has the blob.
    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        Ok(self.head_blob(repo, digest).await?.is_some())
    }

    /// The size of a blob in `repo` (from a HEAD), or None when it is absent.
    pub async fn blob_size(&self, repo: &str, digest: &str) -> Result<Option<u64>> {
        let Some(resp) = self.head_blob(repo, digest).await? else {
            return Ok(None);
        };
        resp.headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| {
                RegistryError::Invalid(format!("HEAD blob {digest} in {repo}: no Content-Length"))
            })
    }

    /// The answer to a HEAD of the blob, or None when `repo` lacks it.
    async fn head_blob(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<http::Response<hyper::body::Incoming>>> {
        check_digest(self.host(), digest)?;
        let scope = pull_scope(repo);
        let resp = self
            .request(Call {
                method: Method::HEAD,
                url: self.url(&format!("/v2/{repo}/blobs/{digest}")),
                scope: &scope,
                headers: Vec::new(),
                body: Bytes::new(),
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(resp)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::unexpected(format!("HEAD blob {digest} in {repo}"), resp).await),
        }
    }

    /// Pushes one blob: nothing when present, a mount from `mount_from` when
    /// possible, else an upload read through `src`.
    pub async fn push_blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        src: Arc<dyn BlobOpen>,
        mount_from: Option<&str>,
        on_bytes: OnBytes,
    ) -> Result<BlobPush> {
        check_digest(self.host(), &desc.digest)?;
        if self.blob_exists(repo, &desc.digest).await? {
            return Ok(BlobPush::Existed);
        }
        self.upload_blob(repo, desc, src, mount_from, on_bytes)
            .await
    }

    /// Pushes one blob without asking first whether `repo` has it: for a
    /// blob just made (a signature) the lookup would only cost a round trip.
    /// One the registry has anyway is sent again, which it accepts.
    pub async fn upload_blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        src: Arc<dyn BlobOpen>,
        mount_from: Option<&str>,
        on_bytes: OnBytes,
    ) -> Result<BlobPush> {
        check_digest(self.host(), &desc.digest)?;
        let mount_from = mount_from.filter(|m| *m != repo);
        let scope = push_scope(repo, mount_from);
        let mut attempt = 0;
        let mut sent = 0u64;
        loop {
            let location = match self.start_upload(repo, desc, mount_from, &scope).await? {
                Start::Mounted => return Ok(BlobPush::Mounted),
                Start::Location(l) => l,
            };
            let session = Session {
                desc,
                src: &src,
                scope: &scope,
                on_bytes: &on_bytes,
            };
            // Every new session counts against the retry budget, so a
            // registry that loses sessions cannot keep the push going.
            match self
                .upload(location, &session, &mut attempt, &mut sent)
                .await?
            {
                Outcome::Committed => return Ok(BlobPush::Uploaded { bytes: sent }),
                Outcome::Restart { counted: true, .. } => {}
                Outcome::Restart {
                    counted: false,
                    detail,
                } => self.backoff(&mut attempt, detail, None).await?,
            }
        }
    }

    async fn start_upload(
        &self,
        repo: &str,
        desc: &Descriptor,
        mount_from: Option<&str>,
        scope: &str,
    ) -> Result<Start> {
        let mut url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        if let Some(from) = mount_from {
            url = format!("{url}?mount={}&from={}", pct(&desc.digest), pct(from));
        }
        let resp = self
            .request(Call {
                method: Method::POST,
                url,
                scope,
                headers: vec![(CONTENT_LENGTH, HeaderValue::from_static("0"))],
                body: Bytes::new(),
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED if mount_from.is_some() => {
                transport::drain(resp, self.idle()).await;
                Ok(Start::Mounted)
            }
            StatusCode::ACCEPTED => {
                let loc = location(self, &resp).ok_or_else(|| {
                    RegistryError::Invalid(format!(
                        "{}: upload started without a Location",
                        self.host()
                    ))
                })?;
                transport::drain(resp, self.idle()).await;
                Ok(Start::Location(loc))
            }
            _ => Err(
                Self::unexpected(format!("start upload of {} to {repo}", desc.digest), resp).await,
            ),
        }
    }

    /// Runs one upload session: committed, or lost (a new one must start).
    /// The registry's `Range` must move forward by what was sent: a partial
    /// advance costs an attempt of the budget, and a `Range` below what the
    /// registry had acknowledged, or beyond what was sent, ends the push.
    async fn upload(
        &self,
        mut location: String,
        s: &Session<'_>,
        attempt: &mut u32,
        sent: &mut u64,
    ) -> Result<Outcome> {
        let (desc, scope) = (s.desc, s.scope);
        let size = desc.size;
        let chunked = size > self.options().monolithic_max;
        let chunk = self.options().chunk_size.max(1);
        let mut offset = 0u64;
        // What the registry has confirmed holding.
        let mut acked = 0u64;
        let mut cursor: Option<Cursor> = None;
        let mut reauth = Reauth::default();
        loop {
            let put = || with_param(&location, &format!("digest={}", pct(&desc.digest)));
            let (method, url, len) = if !chunked {
                (Method::PUT, put(), size)
            } else if offset < size {
                (Method::PATCH, location.clone(), chunk.min(size - offset))
            } else {
                (Method::PUT, put(), 0)
            };
            let (outcome, feeder) = self
                .send_piece(s, &method, &url, (offset, len), cursor.take())
                .await?;
            // The feeder is awaited only after a success: the registry has then
            // read the whole body. After a failure it ends once the body is dropped.
            let join = |feeder: Feeder| async {
                feeder
                    .await
                    .map_err(|e| RegistryError::Invalid(format!("upload reader: {e}")))?
                    .map_err(|e| RegistryError::io(format!("read blob {}", desc.digest), e))
            };
            match outcome {
                Sent::Response(resp) => match (resp.status(), &method) {
                    (StatusCode::CREATED, &Method::PUT) => {
                        transport::drain(resp, self.idle()).await;
                        *sent += join(feeder).await?.1;
                        return Ok(Outcome::Committed);
                    }
                    (StatusCode::ACCEPTED, &Method::PATCH) => {
                        let (c, n) = join(feeder).await?;
                        *sent += n;
                        location = location_or(self, &resp, location);
                        let server = range_offset(resp.headers().get(RANGE));
                        transport::drain(resp, self.idle()).await;
                        let expected = offset + n;
                        offset = self
                            .follow_range(desc, server, acked, expected, attempt)
                            .await?;
                        acked = offset;
                        if offset == expected {
                            cursor = Some(c);
                        }
                        continue;
                    }
                    (StatusCode::NOT_FOUND, _) => {
                        transport::drain(resp, self.idle()).await;
                        debug!(digest = %desc.digest, "upload session gone; starting again");
                        return Ok(Outcome::Restart {
                            counted: false,
                            detail: format!(
                                "{}: the upload session of {} is gone ({method} answered 404)",
                                self.host(),
                                desc.digest
                            ),
                        });
                    }
                    _ => {
                        return Err(Self::unexpected(
                            format!("upload {} ({method})", desc.digest),
                            resp,
                        )
                        .await)
                    }
                },
                Sent::Retry { detail, after } => self.backoff(attempt, detail, after).await?,
                Sent::Unauthorized { challenge, detail } => {
                    self.reauthorize(&mut reauth, challenge.as_deref(), &detail, scope)
                        .await?;
                    *attempt += 1;
                }
            }
            let lost = || Outcome::Restart {
                counted: true,
                detail: String::new(),
            };
            // A broken monolithic PUT leaves the session in an unknown state.
            if !chunked {
                return Ok(lost());
            }
            match self.upload_offset(&location, scope).await? {
                Some(o) if o <= size => {
                    self.check_progress(desc, acked, o, size)?;
                    offset = o;
                    acked = o;
                }
                _ => return Ok(lost()),
            }
            debug!(digest = %desc.digest, offset, "resuming chunked upload");
        }
    }

    /// Sends `len` bytes of the blob from `offset` (through `cursor` when it
    /// stands there) in one request; the answer and the task feeding the body.
    async fn send_piece(
        &self,
        s: &Session<'_>,
        method: &Method,
        url: &str,
        (offset, len): (u64, u64),
        cursor: Option<Cursor>,
    ) -> Result<(Sent, Feeder)> {
        let cur = match cursor {
            Some(c) => c,
            None => open_at(Arc::clone(s.src), offset).await?,
        };
        let (tx, body) = transport::channel(4);
        let feeder = feed(cur, len, tx, offset, Arc::clone(s.on_bytes));
        let mut headers = vec![octet_stream(), (CONTENT_LENGTH, HeaderValue::from(len))];
        if *method == Method::PATCH {
            let range = format!("{offset}-{}", offset + len - 1);
            headers.push((CONTENT_RANGE, HeaderValue::from_str(&range).expect("ascii")));
        }
        let outcome = self
            .send_once(method.clone(), url, Some(s.scope), &headers, body)
            .await?;
        Ok((outcome, feeder))
    }

    /// The offset to go on from after a PATCH that should have brought the
    /// registry to `expected`: its `Range` when it says one. Keeping only
    /// part of the chunk costs an attempt; going below `acked` or beyond
    /// `expected` is refused.
    async fn follow_range(
        &self,
        desc: &Descriptor,
        server: Option<u64>,
        acked: u64,
        expected: u64,
        attempt: &mut u32,
    ) -> Result<u64> {
        match server {
            None => Ok(expected),
            Some(o) if o == expected => Ok(o),
            Some(o) => {
                self.check_progress(desc, acked, o, expected)?;
                let detail = format!(
                    "{} kept {o} of the {expected} bytes sent of {}",
                    self.host(),
                    desc.digest
                );
                self.backoff(attempt, detail, None).await?;
                Ok(o)
            }
        }
    }

    /// Refuses an upload offset below what the registry had acknowledged, or
    /// beyond what it was sent.
    fn check_progress(&self, desc: &Descriptor, acked: u64, got: u64, most: u64) -> Result<()> {
        if got < acked || got > most {
            return Err(RegistryError::Invalid(format!(
                "{}: the upload of {} went from {acked} to {got} bytes (at most {most} were sent); refusing a registry that loses acknowledged bytes",
                self.host(),
                desc.digest
            )));
        }
        Ok(())
    }

    /// How much of an upload session the registry holds (None: start again).
    async fn upload_offset(&self, location: &str, scope: &str) -> Result<Option<u64>> {
        let resp = self
            .request(Call {
                method: Method::GET,
                url: location.to_string(),
                scope,
                headers: Vec::new(),
                body: Bytes::new(),
            })
            .await?;
        let ok = resp.status() == StatusCode::NO_CONTENT || resp.status().is_success();
        let offset = range_offset(resp.headers().get(RANGE));
        transport::drain(resp, self.idle()).await;
        Ok(if ok { offset } else { None })
    }
}

enum Start {
    Mounted,
    Location(String),
}

/// The task feeding a request body: the cursor where it stopped and the bytes sent.
type Feeder = tokio::task::JoinHandle<io::Result<(Cursor, u64)>>;

/// What one upload session needs besides its location.
struct Session<'a> {
    desc: &'a Descriptor,
    src: &'a Arc<dyn BlobOpen>,
    scope: &'a str,
    on_bytes: &'a OnBytes,
}

/// How an upload session ended.
enum Outcome {
    Committed,
    /// The session was lost; `counted` when its failure already took an
    /// attempt of the budget.
    Restart {
        counted: bool,
        detail: String,
    },
}

fn location_or(client: &RegistryClient, resp: &http::Response<Incoming>, old: String) -> String {
    location(client, resp).unwrap_or(old)
}

/// Opens the blob and skips to `offset`, on a blocking thread.
async fn open_at(src: Arc<dyn BlobOpen>, offset: u64) -> Result<Cursor> {
    tokio::task::spawn_blocking(move || -> io::Result<Cursor> {
        let mut reader = src.open()?;
        let skipped = io::copy(&mut (&mut reader).take(offset), &mut io::sink())?;
        if skipped < offset {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the blob ends before offset {offset}"),
            ));
        }
        Ok(Cursor { reader })
    })
    .await
    .map_err(|e| RegistryError::Invalid(format!("blob reader: {e}")))?
    .map_err(|e| RegistryError::io("open blob", e))
}

/// Sends `len` bytes from the cursor into a request body, on a blocking
/// thread; returns the cursor and the bytes sent. Stops early (with an
/// error) when the request was dropped.
fn feed(
    mut cur: Cursor,
    len: u64,
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    base: u64,
    on_bytes: OnBytes,
) -> tokio::task::JoinHandle<io::Result<(Cursor, u64)>> {
    tokio::task::spawn_blocking(move || {
        let (home, pool) = std::sync::mpsc::channel();
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(PIECE as u64) as usize;
            // A piece the request body has sent comes back for the next read,
            // so no buffer is allocated and zeroed per piece.
            let mut buf = pool.try_recv().unwrap_or_else(|_| vec![0u8; PIECE]);
            let mut n = 0;
            while n < want {
                let k = cur.reader.read(&mut buf[n..want])?;
                if k == 0 {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the blob is shorter than its size",
                    );
                    let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
                n += k;
            }
            let piece = Piece {
                buf,
                len: n,
                home: home.clone(),
            };
            if tx.blocking_send(Ok(Bytes::from_owner(piece))).is_err() {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the request ended",
                ));
            }
            done += n as u64;
            on_bytes(base + done);
        }
        Ok((cur, done))
    })
}

/// The bytes of one piece of an upload body; its buffer goes back to the
/// feeder's pool once the body has sent it.
struct Piece {
    buf: Vec<u8>,
    len: usize,
    home: std::sync::mpsc::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Piece {
    fn drop(&mut self) {
        // The feeder may be gone (the upload ended): the buffer is freed.
        let _ = self.home.send(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_go_back_to_the_pool_once_sent() {
        let (home, pool) = std::sync::mpsc::channel();
        let piece = Bytes::from_owner(Piece {
            buf: vec![7u8; 16],
            len: 5,
            home,
        });
        assert_eq!(&piece[..], &[7u8; 5]);
        assert!(pool.try_recv().is_err(), "still in use");
        let part = piece.slice(1..3);
        drop(piece);
        assert!(pool.try_recv().is_err(), "a slice still uses it");
        drop(part);
        assert_eq!(pool.try_recv().unwrap().len(), 16);
    }

    #[test]
    fn ranges_and_params() {
        assert_eq!(
            range_offset(Some(&HeaderValue::from_static("0-1023"))),
            Some(1024)
        );
        assert_eq!(range_offset(Some(&HeaderValue::from_static("0-0"))), None);
        assert_eq!(range_offset(None), None);
        assert_eq!(
            with_param("http://r/u?_state=x", "digest=d"),
            "http://r/u?_state=x&digest=d"
        );
        assert_eq!(with_param("http://r/u", "digest=d"), "http://r/u?digest=d");
    }
}
