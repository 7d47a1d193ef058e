//! The runs of `serve`, `health`, `convert` and `inspect`: each calls its
//! library entry point and turns the outcome into log lines, printed output
//! and an error text for the exit status.

use std::path::PathBuf;
use std::time::Duration;

use tracing::info;

use crate::image::remote::RemoteOptions;
use crate::server::{self, ListenAddr, Listener};

/// `oxport serve`: metrics (when asked), then the gRPC server on the socket
/// the service manager passed, else on `listen`, until a signal.
pub async fn serve(
    listen: ListenAddr,
    state: PathBuf,
    metrics_listen: Option<String>,
    inherited: Option<server::activation::Inherited>,
    opts: server::ServeOptions,
) -> Result<(), String> {
    if let Some(addr) = metrics_listen {
        let l = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
        let bound = l.local_addr().map_err(|e| e.to_string())?;
        info!(target: "oxport", "metrics on http://{bound}/metrics");
        tokio::spawn(crate::metrics::http::serve(l));
    }
    let listener = match inherited {
        Some(socket) => {
            info!(
                target: "oxport",
                "using the socket passed by the service manager; --listen is ignored"
            );
            Listener::from_inherited(socket).map_err(|e| format!("inherited socket: {e}"))?
        }
        None => Listener::bind(&listen).await.map_err(|e| {
            format!(
                "cannot listen on {listen}: {e}{}",
                denied_hint(&e, "--listen unix://$XDG_RUNTIME_DIR/oxport.sock")
            )
        })?,
    };
    server::serve_with(listener, &state, &opts, server::shutdown_signal())
        .await
        .map_err(|e| match e {
            // The one place serving writes before it answers: the store.
            server::ServeError::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                format!(
                    "cannot use the state directory {}: {io}{}",
                    state.display(),
                    denied_hint(&io, "--state $HOME/.local/share/oxport")
                )
            }
            other => other.to_string(),
        })
}

/// What to do when the default paths under /run and /var/lib are not the
/// caller's to write.
fn denied_hint(e: &std::io::Error, flag: &str) -> String {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        format!("; run as root, or give a path you can write: {flag}")
    } else {
        String::new()
    }
}

/// `oxport health`: prints the status; anything but SERVING is an error.
pub async fn health(addr: &str, service: &str, timeout: u64) -> Result<(), String> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let status = crate::client::health::check(addr, service, Duration::from_secs(timeout))
        .await
        .map_err(|e| e.to_string())?;
    println!("{}", status.as_str_name());
    match status {
        ServingStatus::Serving => Ok(()),
        other => Err(format!("{addr}: {service:?} is {}", other.as_str_name())),
    }
}

/// `oxport convert`: logs each rewritten manifest and the push.
pub fn convert(to: &str, src: &str, dst: &str, opts: &RemoteOptions) -> Result<(), String> {
    let to: crate::convert::Form = to.parse()?;
    let summary =
        crate::convert::run(&src.parse()?, &dst.parse()?, to, opts).map_err(|e| e.message)?;
    for c in &summary.changes {
        info!(target: "oxport::cli", location = %c.location, from = %c.from, to = %c.to, "rewritten");
    }
    if let Some(p) = &summary.pushed {
        info!(
            target: "oxport::cli",
            root = %p.root.digest,
            written = p.written,
            existing = p.existing,
            mounted = p.mounted,
            tags = %p.tags.join(","),
            fallback_tags = %p.fallback_tags.join(","),
            "pushed"
        );
    }
    info!(target: "oxport::cli", changed = summary.changes.len(), %dst, "converted");
    Ok(())
}

/// `oxport inspect`: prints the report; any problem is an error.
pub fn inspect(
    src: &str,
    format: &str,
    opts: &RemoteOptions,
    key: Option<&std::path::Path>,
) -> Result<(), String> {
    let key = key.map(super::signing::public_key).transpose()?;
    let report = crate::inspect::run(&src.parse()?, opts, key.as_ref()).map_err(|e| e.message)?;
    let out = match format {
        "json" => report.to_json(),
        _ => report.to_text(),
    };
    println!("{out}");
    match report.problems.len() {
        0 => Ok(()),
        n => Err(format!("{n} problem(s) found in {src}")),
    }
}
