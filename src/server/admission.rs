//! Admission control: the server takes on a bounded amount of work and
//! refuses the rest at once with RESOURCE_EXHAUSTED, so overload never
//! builds an unbounded queue.
//!
//! - [`AdmissionLayer`]: a tower layer limiting the requests in progress
//!   across all connections. A request keeps its slot until its response
//!   body ends, so a streaming export counts for its whole life. Health
//!   checks are exempt: an overloaded server must still say it is alive.
//!   It also turns tonic's "message too large" (OUT_OF_RANGE) into
//!   RESOURCE_EXHAUSTED naming the limit.
//! - [`ExportQueue`]: slots for exports and conversions (the CPU-heavy
//!   work) and a bounded number of requests waiting for one.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::Status;
use tower::{Layer, Service};

use super::status::to_status;
use crate::error::{ErrorKind, ExportError};
use crate::limits;

const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

#[derive(Clone)]
pub struct AdmissionLayer {
    slots: Arc<Semaphore>,
    limit: usize,
}

impl AdmissionLayer {
    pub fn new(max_concurrent_requests: usize) -> Self {
        let limit = max_concurrent_requests.max(1);
        AdmissionLayer {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            slots: Arc::clone(&self.slots),
            limit: self.limit,
        }
    }
}

#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    slots: Arc<Semaphore>,
    limit: usize,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for Admission<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let permit = if req.uri().path().starts_with(HEALTH_PREFIX) {
            None
        } else {
            match Arc::clone(&self.slots).try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    let limit = self.limit;
                    tracing::warn!(limit, "overloaded: request refused");
                    let status = Status::resource_exhausted(format!(
                        "the server is busy: {limit} requests are in progress, the limit \
                         (--max-concurrent-requests); retry later"
                    ));
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            let resp = message_too_large(resp);
            Ok(match permit {
                // The slot goes with the body, which ends with the stream.
                Some(permit) => resp.map(|body| {
                    Body::new(body.map_frame(move |f| {
                        let _held = &permit;
                        f
                    }))
                }),
                None => resp,
            })
        })
    }
}

/// Rewrites tonic's OUT_OF_RANGE for an oversize request message into
/// RESOURCE_EXHAUSTED that names the message and the limit's flag.
fn message_too_large(resp: http::Response<Body>) -> http::Response<Body> {
    let is_it = resp.headers().get("grpc-status").map(|v| v.as_bytes()) == Some(b"11")
        && resp
            .headers()
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| m.contains("message%20length%20too%20large"));
    if !is_it {
        return resp;
    }
    let original = resp
        .headers()
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(|m| m.replace("%20", " ").replace("%3A", ":"))
        .unwrap_or_default();
    let e = ExportError::new(
        ErrorKind::ResourceExhausted,
        format!("the request message is too large (--max-message-size): {original}"),
    )
    .with_field("request");
    to_status(&e).into_http()
}

/// Slots for the heavy work, and a bounded line of requests waiting for one.
pub struct ExportQueue {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Lowers the waiting count when a waiter leaves, served or not.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ExportQueue {
    pub fn new(slots: usize, max_waiting: usize) -> Self {
        ExportQueue {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// A slot now, or after waiting in a line that is not full, before
    /// `deadline`; otherwise an error at once.
    pub async fn admit(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, Status> {
        if let Ok(p) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(waiting = self.max_waiting, "export queue full: refused");
            return Err(to_status(
                &limits::exceeded(
                    "exporter",
                    "waiting exports".to_string(),
                    self.max_waiting as u64,
                    "export-queue",
                )
                .context("the server is busy"),
            ));
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout_at(deadline, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(Status::unavailable("the server is shutting down")),
            Err(_) => Err(to_status(&ExportError::new(
                ErrorKind::DeadlineExceeded,
                "no export slot came free before the request deadline (--request-timeout)",
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn queue_refuses_past_its_bound_at_once() {
        let q = Arc::new(ExportQueue::new(1, 1));
        let far = Instant::now() + Duration::from_secs(3600);
        let first = q.admit(far).await.unwrap();
        let q2 = Arc::clone(&q);
        let waiter = tokio::spawn(async move { q2.admit(far).await.map(|_| ()) });
        // Let the waiter take its place in line.
        while q.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let refused = q.admit(far).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("--export-queue"), "{refused:?}");
        drop(first);
        waiter.await.unwrap().unwrap();
        assert_eq!(q.waiting.load(Ordering::SeqCst), 0);
    }
}
