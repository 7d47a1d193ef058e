//! The gRPC server: a thin shell over the library.
//!
//! - [`listen`]: where to listen (unix socket or TCP) and binding safely.
//! - [`activation`]: a listening socket passed by systemd (`LISTEN_FDS`).
//! - [`inflight`]: the in-flight request gauge, as a tower layer.
//! - [`service`]: the `Exporter` handlers (protobuf <-> model, store, core).
//! - [`convert`]: the `Convert` handler (tar in, converted tar out).
//! - [`output`]: export output as bounded 1 MiB chunks with backpressure.
//! - [`request_id`]: the tower layer for request ids and per-request spans.
//! - [`admission`]: the request limit and the export queue (overload is
//!   refused at once); [`flags`]: the `serve` flags for limits and TLS.
//! - [`security`]: socket group, TLS and mutual TLS, exposure warnings.
//! - [`status`]: export errors as gRPC statuses with field violations.
//!
//! Besides the exporter the server answers `grpc.health.v1` and server
//! reflection. Cross-cutting limits are tower layers around all of them.

pub mod activation;
pub mod admission;
pub mod auth_relay;
pub mod connections;
pub mod convert;
pub mod flags;
pub mod inflight;
pub mod listen;
pub mod output;
pub mod request_id;
pub mod security;
pub mod service;
pub mod status;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;
use tracing::{info, warn};

pub use listen::{ListenAddr, Listener, DEFAULT_LISTEN};

use crate::limits::Limits;
use crate::proto::exporter_server::ExporterServer;
use crate::store::Store;
use admission::AdmissionLayer;
use connections::bounded;
use inflight::InFlightLayer;
use request_id::RequestIdLayer;
use service::ExporterService;

/// The default state directory of `oxport serve`.
pub const DEFAULT_STATE: &str = "/var/lib/oxport";

/// How the server runs: limits, shutdown and transport security.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub limits: Limits,
    /// How long shutdown waits for in-flight requests before cancelling them.
    pub shutdown_grace: std::time::Duration,
    /// The group that owns the unix socket file.
    pub socket_group: Option<String>,
    /// TLS (and mutual TLS) on a TCP listener.
    pub tls: Option<security::ServerTls>,
    /// How exports reach registries. The default (the CLI's embedded server)
    /// uses the user's Docker config; `oxport serve` does only with
    /// `--docker-credentials`.
    pub registry: crate::registry::ClientOptions,
    /// The keys requests may sign with, by name.
    pub keyring: crate::sign::Keyring,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            limits: Limits::default(),
            shutdown_grace: std::time::Duration::from_secs(10),
            socket_group: None,
            tls: None,
            registry: crate::registry::ClientOptions::default(),
            keyring: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(String),
}

/// Serves on a bound listener with the default options until `shutdown`
/// completes, then removes the unix socket file.
pub async fn serve(
    listener: Listener,
    state: &Path,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_with(listener, state, &ServeOptions::default(), shutdown).await
}

/// Serves on a bound listener until `shutdown` completes, then removes the
/// unix socket file.
pub async fn serve_with(
    listener: Listener,
    state: &Path,
    opts: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let limits = opts.limits;
    let store = Arc::new(Store::open(state)?);
    let expiry = tokio::spawn(expire_uploads(Arc::clone(&store), limits.upload_expiry));
    let exporter = ExporterServer::new(
        ExporterService::new(store, limits, opts.registry.clone())
            .with_keyring(opts.keyring.clone()),
    )
    .max_decoding_message_size(limits.max_message_size)
    .max_encoding_message_size(limits.max_message_size);

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ExporterServer<ExporterService>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;

    let mut builder = Server::builder()
        .max_concurrent_streams(u32::try_from(limits.max_streams_per_connection).ok())
        // Dead peers are found and their connections closed.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(60)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)))
        .initial_stream_window_size(crate::wire::STREAM_WINDOW)
        .initial_connection_window_size(crate::wire::CONNECTION_WINDOW)
        .max_frame_size(crate::wire::MAX_FRAME_SIZE);
    match (&listener, &opts.tls) {
        (Listener::Tcp(_), Some(tls)) => {
            builder = builder.tls_config(tls.config()?)?;
            info!(mutual = tls.client_ca.is_some(), "TLS enabled");
        }
        (Listener::Tcp(l), None) => security::warn_if_exposed(&l.local_addr()?, false),
        (_, Some(_)) => {
            return Err(ServeError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "TLS applies to TCP listeners only",
            )))
        }
        (Listener::Unix(_, path), None) => {
            if let Some(group) = &opts.socket_group {
                security::set_socket_group(path, group)?;
            }
        }
        _ => {}
    }
    let router = builder
        .layer(RequestIdLayer)
        .layer(InFlightLayer)
        .layer(AdmissionLayer::new(limits.max_concurrent_requests))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(exporter);

    let addr = listener.local_addr()?;
    info!("listening on {addr}");
    // Shutdown stops accepting at once; in-flight requests get a grace
    // period, after which the server stops regardless of what is open.
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        health
            .set_not_serving::<ExporterServer<ExporterService>>()
            .await;
        let _ = stopping_tx.send(true);
    };
    let shutdown_grace = opts.shutdown_grace;
    let grace = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(shutdown_grace).await;
        warn!("in-flight requests did not finish within {shutdown_grace:?} (--shutdown-grace); cancelling them");
    };
    let max_conns = limits.max_connections;
    let (result, socket) = match listener {
        Listener::Tcp(l) => {
            let serve = router.serve_with_incoming_shutdown(
                bounded(TcpListenerStream::new(l), max_conns),
                signal,
            );
            (finish_within(serve, grace).await, None)
        }
        Listener::Unix(l, path) => {
            let serve = router.serve_with_incoming_shutdown(
                bounded(UnixListenerStream::new(l), max_conns),
                signal,
            );
            (finish_within(serve, grace).await, Some(path))
        }
        Listener::Activated(l) => {
            let serve = router.serve_with_incoming_shutdown(
                bounded(UnixListenerStream::new(l), max_conns),
                signal,
            );
            (finish_within(serve, grace).await, None)
        }
    };
    expiry.abort();
    if let Some(path) = socket {
        let _ = std::fs::remove_file(path);
    }
    info!("server stopped");
    Ok(result?)
}

/// Removes abandoned partial uploads at start-up, then every ten minutes.
async fn expire_uploads(store: Arc<Store>, max_age: std::time::Duration) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        every.tick().await;
        let s = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || s.expire_uploads(max_age)).await {
            Ok(Err(e)) => warn!(error = %e, "expiring partial uploads failed"),
            Err(e) => warn!(error = %e, "expiring partial uploads failed"),
            Ok(Ok(_)) => {}
        }
    }
}

/// Runs the server until it ends by itself or the grace period runs out.
async fn finish_within<E>(
    serve: impl Future<Output = Result<(), E>>,
    grace: impl Future<Output = ()>,
) -> Result<(), E> {
    tokio::select! {
        r = serve => r,
        _ = grace => Ok(()),
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    info!("shutting down");
}

/// A server run inside the current process on a private unix socket with a
/// private state directory, both removed when it stops. The CLI uses it when
/// no `--addr` is given, so that it talks gRPC like any other client.
pub struct Embedded {
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
    _dir: tempfile::TempDir,
}

impl Embedded {
    pub async fn start() -> Result<Embedded, ServeError> {
        Embedded::start_with(ServeOptions::default()).await
    }

    /// [`Embedded::start`] with these options (the CLI's signing keys).
    pub async fn start_with(opts: ServeOptions) -> Result<Embedded, ServeError> {
        let dir = tempfile::Builder::new().prefix("oxport-").tempdir()?;
        let socket: PathBuf = dir.path().join("oxport.sock");
        let state = dir.path().join("state");
        let listener = Listener::bind(&ListenAddr::Unix(socket.clone())).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve_with(listener, &state, &opts, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(Embedded {
            addr: format!("unix://{}", socket.display()),
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        })
    }

    /// The address to connect to (`unix://...`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| ServeError::Io(std::io::Error::other(e.to_string())))?,
            None => Ok(()),
        }
    }
}
