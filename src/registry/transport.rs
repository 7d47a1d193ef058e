//! The HTTP transport: one pooled hyper client that speaks HTTPS (rustls with
//! the ring provider and Mozilla's roots) and plain HTTP, and the body types
//! requests and responses use. No retries and no auth here.

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

/// Why one HTTP exchange failed before a response arrived.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Connect(String),
    #[error("no response within {}s", RESPONSE_TIMEOUT.as_secs())]
    Timeout,
}

#[derive(Clone)]
pub struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Body>,
}

impl Transport {
    pub fn new() -> io::Result<Transport> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| io::Error::other(format!("TLS set-up: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Transport { client })
    }

    /// One exchange: sends the request and waits for the response headers.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, SendError> {
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(SendError::Connect(describe(&e))),
            Err(_) => Err(SendError::Timeout),
        }
    }
}

/// The error and its causes on one line (hyper's top level says little).
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
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

/// Reads a whole (small) response body, refusing more than `limit` bytes.
pub async fn read_body(resp: Response<Incoming>, limit: usize) -> io::Result<Bytes> {
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| io::Error::other(describe(&e)))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(io::Error::other(format!(
                    "response body larger than {limit} bytes"
                )));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Reads and drops a response body so the connection can be reused.
pub async fn drain(resp: Response<Incoming>) {
    let mut body = resp.into_body();
    let mut left: usize = 1 << 20;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(d) = frame.into_data() {
            left = left.saturating_sub(d.len());
            if left == 0 {
                break;
            }
        }
    }
}
