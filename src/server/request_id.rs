//! A tower layer that gives every request an id and a tracing span.
//!
//! The id is the caller's `x-request-id` header when it sent a sane one, or a
//! fresh one. It is stored in the request extensions (handlers copy it into
//! their response messages), returned as `x-request-id` response metadata,
//! and recorded on the `request` span that every log line of the request
//! runs under.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http;
use tower::{Layer, Service};
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

/// The id of the request being handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id attached to a tonic request, or "" when the layer is absent.
    pub fn of<T>(req: &tonic::Request<T>) -> String {
        req.extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> Service<http::Request<B>> for RequestIdService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let id = req
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_sane(v))
            .map(str::to_string)
            .unwrap_or_else(new_id);
        req.extensions_mut().insert(RequestId(id.clone()));
        let span = tracing::info_span!("request", id = %id, method = %req.uri().path());
        let start = Instant::now();
        let fut = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        Box::pin(
            async move {
                let result = fut.await;
                match &result {
                    Ok(_) => tracing::debug!(elapsed = ?start.elapsed(), "response started"),
                    Err(e) => tracing::warn!(error = %e, "request failed"),
                }
                result.map(|mut resp| {
                    if let Ok(v) = http::HeaderValue::from_str(&id) {
                        resp.headers_mut().insert(HEADER, v);
                    }
                    resp
                })
            }
            .instrument(span),
        )
    }
}

fn is_sane(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
}

/// A fresh id: 16 hex digits, unique within the process and unlikely to
/// repeat across processes (a per-process random seed).
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = SEED.get_or_init(Default::default).build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_sane() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert!(is_sane(&a) && a.len() == 16);
        assert!(!is_sane("has space"));
        assert!(!is_sane(""));
    }
}
