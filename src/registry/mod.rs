//! A client of the OCI distribution API, streaming throughout.
//!
//! One [`RegistryClient`] talks to one registry host and may serve several
//! repositories of it (which is what makes cross-repository mounts possible).
//!
//! - [`transport`]: the hyper client (HTTPS with rustls, or plain HTTP);
//! - [`retry`]: the bounded retry budget and backoff;
//! - [`auth`] and [`credentials`]: Basic and Bearer authentication, Docker config;
//! - [`blobs`]: existence, monolithic and chunked uploads, mounts, streaming fetch;
//! - [`manifests`]: resolve, get and put manifests, list tags;
//! - [`referrers`]: the referrers API and its fallback tag.

pub mod auth;
pub mod blobs;
pub mod credentials;
pub mod error;
pub mod manifests;
pub mod referrers;
pub mod retry;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tracing::debug;

pub use blobs::{BlobOpen, BlobPush, BlobStream, BytesBlob, FileBlob, OnBytes};
pub use credentials::Credential;
pub use error::{RegistryError, Result};
pub use manifests::{FetchedManifest, PushedManifest};
pub use retry::RetryPolicy;

use transport::{Body, Transport};

/// Blobs up to this size are uploaded in one request.
pub const DEFAULT_MONOLITHIC_MAX: u64 = 32 << 20;
/// The size of one PATCH of a chunked upload.
pub const DEFAULT_CHUNK_SIZE: u64 = 16 << 20;

/// Where credentials come from.
#[derive(Debug, Clone, Default)]
pub enum CredentialSource {
    /// The Docker client configuration (the default).
    #[default]
    DockerConfig,
    Anonymous,
    Given(Credential),
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Plain HTTP (`registry.insecure=true`). Loopback hosts always use it.
    pub insecure: bool,
    pub retry: RetryPolicy,
    pub monolithic_max: u64,
    pub chunk_size: u64,
    pub credentials: CredentialSource,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: false,
            retry: RetryPolicy::from_env(),
            monolithic_max: DEFAULT_MONOLITHIC_MAX,
            chunk_size: DEFAULT_CHUNK_SIZE,
            credentials: CredentialSource::DockerConfig,
        }
    }
}

/// The API host of a registry name (`docker.io` is served elsewhere).
pub fn api_host(domain: &str) -> &str {
    if domain == "docker.io" || domain == "index.docker.io" {
        "registry-1.docker.io"
    } else {
        domain
    }
}

fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    name == "localhost" || name == "::1" || name.starts_with("127.")
}

/// A client of one registry host. Cheap to clone; clones share the
/// connection pool and the tokens.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// `host[:port]` as named in image references.
    host: String,
    /// `scheme://api-host`.
    base: String,
    transport: Transport,
    auth: auth::Auth,
    opts: ClientOptions,
}

/// The outcome of one exchange, before retry decisions.
pub(crate) enum Sent {
    Response(Response<Incoming>),
    Retry {
        detail: String,
        after: Option<Duration>,
    },
    Unauthorized {
        challenge: Option<String>,
        detail: String,
    },
}

/// A request whose body can be sent again (empty or in memory).
pub(crate) struct Call<'a> {
    pub method: Method,
    pub url: String,
    pub scope: &'a str,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl RegistryClient {
    /// A client of the registry named `domain` in image references
    /// (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub fn new(domain: &str, opts: ClientOptions) -> Result<RegistryClient> {
        let credential = match &opts.credentials {
            CredentialSource::DockerConfig => credentials::lookup(domain)?,
            CredentialSource::Anonymous => None,
            CredentialSource::Given(c) => Some(c.clone()),
        };
        let scheme = if opts.insecure || is_loopback(domain) {
            "http"
        } else {
            "https"
        };
        let transport = Transport::new().map_err(|e| RegistryError::io("transport", e))?;
        debug!(
            registry = domain,
            scheme,
            credential = credential.is_some(),
            "registry client"
        );
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                host: domain.to_string(),
                base: format!("{scheme}://{}", api_host(domain)),
                transport,
                auth: auth::Auth::new(domain, credential),
                opts,
            }),
        })
    }

    pub fn host(&self) -> &str {
        &self.inner.host
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base)
    }

    /// An absolute URL for a `Location` header (which may be relative).
    pub(crate) fn resolve_location(&self, loc: &str) -> String {
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else if loc.starts_with('/') {
            self.url(loc)
        } else {
            self.url(&format!("/{loc}"))
        }
    }

    fn unavailable(&self, attempts: u32, detail: String) -> RegistryError {
        RegistryError::Unavailable {
            registry: self.inner.host.clone(),
            attempts,
            detail,
        }
    }

    /// One exchange with the current credentials for `scope` (None: none at
    /// all, for URLs outside the registry); no retries.
    pub(crate) async fn send_once(
        &self,
        method: Method,
        url: &str,
        scope: Option<&str>,
        headers: &[(HeaderName, HeaderValue)],
        body: Body,
    ) -> Result<Sent> {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        if let Some(h) = scope.and_then(|s| self.inner.auth.header(s)) {
            b = b.header(AUTHORIZATION, h);
        }
        let req = b
            .body(body)
            .map_err(|e| RegistryError::Invalid(format!("bad request to {url}: {e}")))?;
        let resp = match self.inner.transport.send(req).await {
            Ok(r) => r,
            Err(e) => {
                return Ok(Sent::Retry {
                    detail: e.to_string(),
                    after: None,
                })
            }
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let body = transport::read_body(resp, 1 << 16)
                .await
                .unwrap_or_default();
            return Ok(Sent::Unauthorized {
                challenge,
                detail: error::body_detail(&body),
            });
        }
        if status == StatusCode::FORBIDDEN {
            let body = transport::read_body(resp, 1 << 16)
                .await
                .unwrap_or_default();
            return Err(RegistryError::Denied {
                registry: self.inner.host.clone(),
                detail: error::body_detail(&body),
            });
        }
        if retry::retryable_status(status) {
            let after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(retry::parse_retry_after);
            transport::drain(resp).await;
            return Ok(Sent::Retry {
                detail: format!("{} answered {status}", self.inner.host),
                after,
            });
        }
        Ok(Sent::Response(resp))
    }

    /// Answers a 401 once per request: fetches a token, or gives up with a
    /// clear unauthenticated error.
    pub(crate) async fn reauthorize(
        &self,
        already: &mut bool,
        challenge: Option<&str>,
        detail: &str,
        scope: &str,
    ) -> Result<()> {
        if *already {
            return Err(RegistryError::Unauthenticated {
                registry: self.inner.host.clone(),
                detail: if detail.is_empty() {
                    "the registry refused the credentials (invalid username, password or token)"
                        .to_string()
                } else {
                    format!("the registry refused the credentials: {detail}")
                },
            });
        }
        *already = true;
        self.inner
            .auth
            .authorize(
                &self.inner.transport,
                &self.inner.opts.retry,
                challenge,
                scope,
            )
            .await
    }

    /// Sleeps before the next attempt, or errors when the budget is spent.
    pub(crate) async fn backoff(
        &self,
        attempt: &mut u32,
        detail: String,
        after: Option<Duration>,
    ) -> Result<()> {
        *attempt += 1;
        let policy = &self.inner.opts.retry;
        if *attempt >= policy.attempts {
            return Err(self.unavailable(*attempt, detail));
        }
        let wait = policy.delay(*attempt - 1, after);
        crate::metrics::global().registry_retry();
        debug!(registry = %self.inner.host, attempt = *attempt, ?wait, error = %detail, "retrying");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// A request with a replayable body: authenticated, retried within the budget.
    pub(crate) async fn request(&self, call: Call<'_>) -> Result<Response<Incoming>> {
        let mut attempt = 0;
        let mut reauthed = false;
        loop {
            let body = if call.body.is_empty() {
                transport::empty()
            } else {
                transport::full(call.body.clone())
            };
            match self
                .send_once(
                    call.method.clone(),
                    &call.url,
                    Some(call.scope),
                    &call.headers,
                    body,
                )
                .await?
            {
                Sent::Response(r) => return Ok(r),
                Sent::Retry { detail, after } => self.backoff(&mut attempt, detail, after).await?,
                Sent::Unauthorized { challenge, detail } => {
                    self.reauthorize(&mut reauthed, challenge.as_deref(), &detail, call.scope)
                        .await?
                }
            }
        }
    }

    /// An unexpected answer as an error, with the registry's detail.
    pub(crate) async fn unexpected(what: String, resp: Response<Incoming>) -> RegistryError {
        let status = resp.status().as_u16();
        let body = transport::read_body(resp, 1 << 16)
            .await
            .unwrap_or_default();
        let detail = error::body_detail(&body);
        RegistryError::Status {
            what,
            status,
            detail: if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.local:5000"));
    }
}
