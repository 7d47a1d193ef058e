//! The HTTP transport: one pooled hyper client that speaks HTTPS (rustls with
//! the ring provider and the roots and client certificates of [`super::tls`])
//! and plain HTTP, and the body types requests and responses use. No retries
//! and no auth here.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// A request body: empty, bytes, or a stream fed from a blocking reader.
pub type Body = BoxBody<Bytes, io::Error>;

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait for response headers once the request is sent. Large
/// uploads are streamed before this starts counting in practice, because the
/// registry answers only after the body.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a response body may go without a byte before the read fails
/// (and the request is retried within the budget), unless
/// [`ENV_IDLE_TIMEOUT_MS`] says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Overrides the idle-read timeout, in milliseconds (e.g. to keep tests short).
pub const ENV_IDLE_TIMEOUT_MS: &str = "OXPORT_REGISTRY_IDLE_TIMEOUT_MS";

/// The idle-read timeout: the default, or the environment's when it says.
pub fn idle_timeout_from_env() -> Duration {
    std::env::var(ENV_IDLE_TIMEOUT_MS)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_IDLE_TIMEOUT)
}

/// The next frame of a body, or a `TimedOut` error when none comes within `idle`.
pub async fn next_frame(body: &mut Incoming, idle: Duration) -> io::Result<Option<Frame<Bytes>>> {
    match tokio::time::timeout(idle, body.frame()).await {
        Ok(Some(Ok(f))) => Ok(Some(f)),
        Ok(Some(Err(e))) => Err(io::Error::other(describe(&e))),
        Ok(None) => Ok(None),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the response body stalled: no data for {} ms",
                idle.as_millis()
            ),
        )),
    }
}

/// Why one HTTP exchange failed before a response arrived.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Connect(String),
    #[error("no response within {}s", RESPONSE_TIMEOUT.as_secs())]
    Timeout,
    /// A certificate failed verification or was refused (see
    /// [`super::tls::certificate_problem`]); retrying cannot help.
    #[error("{0}")]
    Certificate(String),
}

#[derive(Clone)]
pub struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    tls: Arc<ClientConfig>,
}

impl Transport {
    /// A transport whose HTTPS connections use `tls`.
    pub fn new(tls: ClientConfig) -> Transport {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Transport {
            client,
            tls: Arc::new(tls),
        }
    }

    /// The TLS configuration of HTTPS connections.
    pub fn tls(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.tls)
    }

    /// One exchange: sends the request and waits for the response headers.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, SendError> {
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => match super::tls::certificate_problem(&e) {
                Some(why) => Err(SendError::Certificate(why)),
                None => Err(SendError::Connect(describe(&e))),
            },
            Err(_) => Err(SendError::Timeout),
        }
    }
}

/// The error and its causes on one line (hyper's top level says little).
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    crate::error::chain(e)
}

pub fn empty() -> Body {
    Empty::<Bytes>::new().map_err(|n| match n {}).boxed()
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|n| match n {}).boxed()
}

/// A streaming body and the sender that feeds it; dropping the sender ends it.
pub fn channel(depth: usize) -> (mpsc::Sender<io::Result<Bytes>>, Body) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(depth);
    let stream = tokio_stream::StreamExt::map(ReceiverStream::new(rx), |r| r.map(Frame::data));
    (tx, StreamBody::new(stream).boxed())
}

/// Reads a whole (small) response body, refusing more than `limit` bytes
/// (an `InvalidData` error) and a body that stalls for `idle` (`TimedOut`).
pub async fn read_body(
    resp: Response<Incoming>,
    limit: usize,
    idle: Duration,
) -> io::Result<Bytes> {
    let announced = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    while let Some(frame) = next_frame(&mut body, idle).await? {
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

fn too_large(limit: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("response body larger than the limit of {limit} bytes"),
    )
}

/// Reads and drops a response body so the connection can be reused; gives
/// up (dropping the connection) after 1 MiB or a stall of `idle`.
pub async fn drain(resp: Response<Incoming>, idle: Duration) {
    let mut body = resp.into_body();
    let mut left: usize = 1 << 20;
    while let Ok(Some(frame)) = next_frame(&mut body, idle).await {
        if let Ok(d) = frame.into_data() {
            left = left.saturating_sub(d.len());
            if left == 0 {
                break;
            }
        }
    }
}
