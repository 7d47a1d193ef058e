//! `GET /metrics` over plain HTTP/1.1, for Prometheus scrapers and probes.
//!
//! Kept apart from the gRPC listener so that scraping needs no gRPC client
//! and a busy exporter socket never delays a scrape.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::debug;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How long one metrics connection may stay open.
const CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(10);
/// Metrics connections served at once.
const MAX_CONNECTIONS: usize = 16;

/// Answers scrapes on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: keep serving.
                debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // A scrape takes milliseconds: a connection that stays longer (one
        // that never finishes its headers, say) is closed, and only a few
        // are served at once.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        tokio::spawn(async move {
            let _slot = slot;
            let conn =
                http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(handle));
            match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(%peer, error = %e, "metrics connection ended"),
                Err(_) => debug!(%peer, "metrics connection closed after {CONNECTION_LIFETIME:?}"),
            }
        });
    }
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, super::global().render()),
        (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into()),
        _ => (StatusCode::NOT_FOUND, "try /metrics\n".into()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if status == StatusCode::OK {
        resp.headers_mut()
            .insert(http::header::CONTENT_TYPE, CONTENT_TYPE.parse().unwrap());
    }
    Ok(resp)
}
