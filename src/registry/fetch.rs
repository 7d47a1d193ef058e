//! Blob downloads: a streaming fetch that follows storage redirects
//! (without the registry's credentials off its origin), with an idle-read
//! timeout per chunk and the digest verified at the end.

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Method, StatusCode};
use hyper::body::Incoming;
use sha2::{Digest as _, Sha256};

use super::auth::pull_scope;
use super::blobs::location;
use super::error::{RegistryError, Result};
use super::transport;
use super::{check_digest, Call, RegistryClient, Sent};

impl RegistryClient {
    /// Fetches a blob as a stream; the digest is verified at its end.
    pub async fn fetch_blob(&self, repo: &str, digest: &str) -> Result<BlobStream> {
        check_digest(self.host(), digest)?;
        let scope = pull_scope(repo);
        let mut url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        for _ in 0..5 {
            let resp = self
                .request(Call {
                    method: Method::GET,
                    url: url.clone(),
                    scope: &scope,
                    headers: Vec::new(),
                    body: Bytes::new(),
                })
                .await?;
            let status = resp.status();
            if status.is_redirection() {
                // Storage redirects (often to another host) are followed
                // without the registry's credentials.
                let Some(loc) = location(self, &resp) else {
                    return Err(Self::unexpected(format!("GET blob {digest}"), resp).await);
                };
                transport::drain(resp, self.idle()).await;
                if !loc.starts_with(&self.url("/")) {
                    return self.fetch_foreign(&loc, digest).await;
                }
                url = loc;
                continue;
            }
            if status == StatusCode::NOT_FOUND {
                transport::drain(resp, self.idle()).await;
                return Err(RegistryError::NotFound {
                    what: format!("blob {digest} in {}/{repo}", self.host()),
                });
            }
            if !status.is_success() {
                return Err(Self::unexpected(format!("GET blob {digest}"), resp).await);
            }
            return Ok(BlobStream::new(resp, digest, self.idle()));
        }
        Err(RegistryError::Invalid(format!(
            "GET blob {digest}: too many redirects"
        )))
    }

    async fn fetch_foreign(&self, url: &str, digest: &str) -> Result<BlobStream> {
        let mut attempt = 0;
        loop {
            match self
                .send_once(Method::GET, url, None, &[], transport::empty())
                .await?
            {
                Sent::Response(r) if r.status().is_success() => {
                    return Ok(BlobStream::new(r, digest, self.idle()))
                }
                Sent::Response(r) => {
                    return Err(
                        Self::unexpected(format!("GET blob {digest} (redirected)"), r).await,
                    )
                }
                Sent::Retry { detail, after } => self.backoff(&mut attempt, detail, after).await?,
                Sent::Unauthorized { detail, .. } => {
                    return Err(RegistryError::Unauthenticated {
                        registry: self.host().to_string(),
                        detail,
                    })
                }
            }
        }
    }
}

/// A blob being fetched. Chunks arrive as the registry sends them; the
/// digest is checked when the stream ends.
pub struct BlobStream {
    body: Incoming,
    digest: String,
    hasher: Option<Sha256>,
    size: Option<u64>,
    read: u64,
    idle: std::time::Duration,
}

impl BlobStream {
    fn new(resp: http::Response<Incoming>, digest: &str, idle: std::time::Duration) -> BlobStream {
        let size = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        BlobStream {
            body: resp.into_body(),
            digest: digest.to_string(),
            hasher: digest.starts_with("sha256:").then(Sha256::new),
            size,
            read: 0,
            idle,
        }
    }

    /// The size the registry announced.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The next chunk, or None at the end (after the digest was verified).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            let frame = transport::next_frame(&mut self.body, self.idle)
                .await
                .map_err(|e| RegistryError::io(format!("read blob {}", self.digest), e))?;
            let Some(frame) = frame else {
                if let Some(h) = self.hasher.take() {
                    let got = format!("sha256:{}", hex::encode(h.finalize()));
                    if got != self.digest {
                        return Err(RegistryError::Invalid(format!(
                            "blob {}: content has digest {got}",
                            self.digest
                        )));
                    }
                }
                return Ok(None);
            };
            if let Ok(data) = frame.into_data() {
                if let Some(h) = self.hasher.as_mut() {
                    h.update(&data);
                }
                self.read += data.len() as u64;
                return Ok(Some(data));
            }
        }
    }
}
