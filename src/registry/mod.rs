//! A client of the OCI distribution API, streaming throughout.
//!
//! One [`RegistryClient`] talks to one registry host and may serve several
//! repositories of it (which is what makes cross-repository mounts possible).
//!
//! - [`transport`]: the hyper client (HTTPS with rustls, or plain HTTP);
//! - [`tls`]: roots, per-registry CA files and client certificates;
//! - [`fallback`]: HTTPS first, plain HTTP when a loopback or insecure
//!   registry does not speak TLS;
//! - [`hosts`]: API hosts, loopback names, origins;
//! - [`retry`]: the bounded retry budget and backoff;
//! - [`auth`] and [`credentials`]: Basic and Bearer authentication, Docker config;
//! - [`blobs`]: existence, monolithic and chunked uploads, mounts;
//! - [`fetch`]: streaming blob downloads;
//! - [`manifests`]: resolve, get and put manifests, list tags;
//! - [`referrers`]: the referrers API and its fallback tag;
//! - [`repair`]: manifest PUTs that resend what the repository lacks.

pub mod auth;
pub mod blobs;
pub mod caller;
pub mod credentials;
pub mod error;
pub mod fallback;
pub mod fetch;
pub mod hosts;
pub mod manifests;
pub mod referrers;
pub mod repair;
pub mod retry;
pub mod signature_tags;
pub mod tag_merge;
pub mod tls;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tracing::debug;

pub use blobs::{BlobOpen, BlobPush, BytesBlob, FileBlob, OnBytes};
pub use credentials::Credential;
pub use error::{RegistryError, Result};
pub use fetch::BlobStream;
pub use hosts::api_host;
use hosts::{is_loopback, same_origin};
pub use manifests::{FetchedManifest, PushedManifest};
pub use repair::PushContent;
pub use retry::RetryPolicy;
pub use tls::TlsOptions;

use transport::{Body, Transport};

/// Blobs up to this size are uploaded in one request.
pub const DEFAULT_MONOLITHIC_MAX: u64 = 32 << 20;
/// The most one PATCH of a larger blob carries: no limit, so the blob goes
/// in one streamed PATCH (as `docker push` sends it) and the registry
/// hashes it in one pass (docker-registry spent about 6 % more CPU time on
/// a blob sent in 16 MiB chunks). After a broken connection the upload
/// still goes on from the offset the registry reports.
pub const DEFAULT_CHUNK_SIZE: u64 = u64::MAX;

/// Where credentials come from.
#[derive(Clone, Default)]
pub enum CredentialSource {
    /// The Docker client configuration (the default).
    #[default]
    DockerConfig,
    /// None: a server started without `--docker-credentials`, for a request
    /// that brings none of its own.
    Anonymous,
    Given(Credential),
    /// The export's caller, asked at each challenge.
    Caller(caller::Asker),
}

impl std::fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::DockerConfig => f.write_str("DockerConfig"),
            CredentialSource::Anonymous => f.write_str("Anonymous"),
            CredentialSource::Given(c) => write!(f, "Given({c:?})"),
            CredentialSource::Caller(_) => f.write_str("Caller"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `registry.insecure=true`, as BuildKit means it: HTTPS without
    /// certificate verification, plain HTTP when the server does not speak
    /// TLS. Loopback hosts may fall back to plain HTTP too, but verify.
    pub insecure: bool,
    pub retry: RetryPolicy,
    pub monolithic_max: u64,
    pub chunk_size: u64,
    pub credentials: CredentialSource,
    /// How long a response body may go without a byte (`OXPORT_REGISTRY_IDLE_TIMEOUT_MS`).
    pub idle_timeout: Duration,
    /// CA files and client certificates per registry host.
    pub tls: TlsOptions,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: false,
            retry: RetryPolicy::from_env(),
            monolithic_max: DEFAULT_MONOLITHIC_MAX,
            chunk_size: DEFAULT_CHUNK_SIZE,
            credentials: CredentialSource::DockerConfig,
            idle_timeout: transport::idle_timeout_from_env(),
            tls: TlsOptions::default(),
        }
    }
}

/// Refuses a digest OCI does not allow (see [`crate::reference::check_digest`]),
/// before it can reach a URL.
pub(crate) fn check_digest(host: &str, digest: &str) -> Result<()> {
    crate::reference::check_digest(digest)
        .map_err(|why| RegistryError::Invalid(format!("{host}: bad digest {digest:?}: {why}")))
}

/// Refuses a manifest reference that is neither a valid digest nor a valid tag.
pub(crate) fn check_reference(host: &str, reference: &str) -> Result<()> {
    if reference.contains(':') {
        return check_digest(host, reference);
    }
    if crate::reference::valid_tag(reference) {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "{host}: bad tag {reference:?}"
        )))
    }
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
    /// `https://api-host` and `http://api-host`.
    https_base: String,
    http_base: String,
    /// Which of the two is used.
    scheme: fallback::Scheme,
    transport: Transport,
    auth: auth::Auth,
    opts: ClientOptions,
}

/// What one request has done about 401s so far.
#[derive(Default)]
pub(crate) struct Reauth {
    count: u32,
    /// Whether the last answer to a 401 brought new credentials.
    fresh: bool,
}

impl Reauth {
    const LIMIT: u32 = 3;
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
#[derive(Clone)]
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
        let origin = match &opts.credentials {
            CredentialSource::DockerConfig => auth::Origin::Fixed {
                credential: credentials::lookup(domain)?,
                none: format!(
                    "no credentials for {domain} in the Docker config (run docker login)"
                ),
            },
            CredentialSource::Anonymous => auth::Origin::Fixed {
                credential: None,
                none: format!(
                    "the registry {domain} wants credentials: the request brought none, and \
                     the server uses its own Docker config only with --docker-credentials"
                ),
            },
            CredentialSource::Given(c) => auth::Origin::Fixed {
                credential: Some(c.clone()),
                none: String::new(),
            },
            CredentialSource::Caller(asker) => auth::Origin::Caller(asker.clone()),
        };
        let may_fall_back = opts.insecure || is_loopback(domain);
        let tls = tls::client_config(domain, &opts.tls, opts.insecure)?;
        let transport = Transport::new(tls);
        debug!(
            registry = domain,
            insecure = opts.insecure,
            may_fall_back,
            credentials = ?opts.credentials,
            "registry client"
        );
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                host: domain.to_string(),
                https_base: format!("https://{}", api_host(domain)),
                http_base: format!("http://{}", api_host(domain)),
                scheme: fallback::Scheme::new(may_fall_back),
                transport,
                auth: auth::Auth::with_origin(domain, origin),
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

    /// The idle-read timeout of response bodies.
    pub(crate) fn idle(&self) -> Duration {
        self.inner.opts.idle_timeout
    }

    /// `scheme://api-host` as settled so far (HTTPS until a fall-back).
    fn base(&self) -> &str {
        if self.inner.scheme.plain() {
            &self.inner.http_base
        } else {
            &self.inner.https_base
        }
    }

    /// True when `url` is on the registry's own origin (scheme, host and
    /// port), the only place its credentials may go.
    pub(crate) fn same_origin(&self, url: &str) -> bool {
        same_origin(url, self.base())
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// `url` with the scheme the registry speaks: a URL on the registry's
    /// HTTPS origin waits for the scheme to be settled (the first time) and
    /// moves to plain HTTP after a fall-back. Err(detail): retry.
    async fn route(&self, url: &str) -> Result<std::result::Result<String, String>> {
        if !same_origin(url, &self.inner.https_base) {
            return Ok(Ok(url.to_string()));
        }
        let host = api_host(&self.inner.host);
        match self
            .inner
            .scheme
            .settle(self.inner.transport.tls(), host)
            .await
        {
            Ok(()) => {}
            Err(fallback::ProbeError::Certificate(detail)) => {
                return Err(RegistryError::Certificate {
                    registry: self.inner.host.clone(),
                    detail,
                })
            }
            Err(fallback::ProbeError::Failed(detail)) => return Ok(Err(detail)),
        }
        if !self.inner.scheme.plain() {
            return Ok(Ok(url.to_string()));
        }
        // Same origin, so it parses; only the path and query carry over.
        let rest = url
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.path_and_query().map(|p| p.as_str().to_string()))
            .unwrap_or_default();
        Ok(Ok(format!("{}{rest}", self.inner.http_base)))
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
        let url = match self.route(url).await? {
            Ok(u) => u,
            Err(detail) => {
                return Ok(Sent::Retry {
                    detail,
                    after: None,
                })
            }
        };
        let url = url.as_str();
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        // Credentials never leave the registry's origin (upload locations
        // and redirects may point elsewhere).
        let scope = scope.filter(|_| self.same_origin(url));
        if let Some(h) = scope.and_then(|s| self.inner.auth.header(s)) {
            b = b.header(AUTHORIZATION, h);
        }
        let req = b
            .body(body)
            .map_err(|e| RegistryError::Invalid(format!("bad request to {url}: {e}")))?;
        let resp = match self.inner.transport.send(req).await {
            Ok(r) => r,
            Err(transport::SendError::Certificate(detail)) => {
                return Err(RegistryError::Certificate {
                    registry: self.inner.host.clone(),
                    detail,
                })
            }
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
            let body = transport::read_body(resp, 1 << 16, self.idle())
                .await
                .unwrap_or_default();
            return Ok(Sent::Unauthorized {
                challenge,
                detail: error::body_detail(&body),
            });
        }
        if status == StatusCode::FORBIDDEN {
            let body = transport::read_body(resp, 1 << 16, self.idle())
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
            transport::drain(resp, self.idle()).await;
            return Ok(Sent::Retry {
                detail: format!("{} answered {status}", self.inner.host),
                after,
            });
        }
        Ok(Sent::Response(resp))
    }

    /// Answers a 401 of one request: fetches a token, or gives up with a
    /// clear unauthenticated error. A request tries again only with new
    /// credentials, at most [`Reauth::LIMIT`] times: a token shared with
    /// concurrent requests can run out between its fetch and this request's
    /// retry, but the same credentials refused twice are refused for good.
    pub(crate) async fn reauthorize(
        &self,
        reauth: &mut Reauth,
        challenge: Option<&str>,
        detail: &str,
        scope: &str,
    ) -> Result<()> {
        if reauth.count >= Reauth::LIMIT || (reauth.count > 0 && !reauth.fresh) {
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
        reauth.count += 1;
        reauth.fresh = self
            .inner
            .auth
            .authorize(
                &self.inner.transport,
                &self.inner.opts.retry,
                challenge,
                scope,
            )
            .await?;
        Ok(())
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
        self.request_counted(&call, &mut 0).await
    }

    /// [`Self::request`] with the attempts counted in `attempt`.
    async fn request_counted(
        &self,
        call: &Call<'_>,
        attempt: &mut u32,
    ) -> Result<Response<Incoming>> {
        let mut reauth = Reauth::default();
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
                Sent::Retry { detail, after } => self.backoff(attempt, detail, after).await?,
                Sent::Unauthorized { challenge, detail } => {
                    self.reauthorize(&mut reauth, challenge.as_deref(), &detail, call.scope)
                        .await?
                }
            }
        }
    }

    /// A request whose answer is read whole: at most `limit` bytes when it
    /// succeeds (64 KiB of error detail otherwise). A body that breaks off or
    /// stalls is asked for again, within the same retry budget as the request.
    pub(crate) async fn request_whole(&self, call: Call<'_>, limit: usize) -> Result<Whole> {
        let mut attempt = 0;
        loop {
            let resp = self.request_counted(&call, &mut attempt).await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let cap = if status.is_success() { limit } else { 1 << 16 };
            match transport::read_body(resp, cap, self.idle()).await {
                Ok(body) => {
                    return Ok(Whole {
                        status,
                        headers,
                        body,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Err(RegistryError::Invalid(format!(
                        "{} {}: the answer is larger than the limit of {cap} bytes",
                        call.method, call.url
                    )))
                }
                Err(e) => {
                    let detail = format!("{} {}: {e}", call.method, call.url);
                    self.backoff(&mut attempt, detail, None).await?
                }
            }
        }
    }

    /// An unexpected answer as an error, with the registry's detail.
    pub(crate) async fn unexpected(what: String, resp: Response<Incoming>) -> RegistryError {
        let status = resp.status().as_u16();
        // A stalled error body is cut short: the detail is optional.
        let body = transport::read_body(resp, 1 << 16, Duration::from_secs(10))
            .await
            .unwrap_or_default();
        status_error(what, status, &body)
    }
}

/// A response read whole.
pub(crate) struct Whole {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Whole {
    pub fn header(&self, name: &HeaderName) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }

    /// This answer as an unexpected one.
    pub fn unexpected(&self, what: String) -> RegistryError {
        status_error(what, self.status.as_u16(), &self.body)
    }
}

fn status_error(what: String, status: u16, body: &[u8]) -> RegistryError {
    let detail = error::body_detail(body);
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
