//! The `oxport` command: parse arguments, call the library.
//!
//! - `oxport serve` runs the gRPC server.
//! - `oxport export` sends a build result stored as `case.json` to a server
//!   (`--addr`) or to an embedded one started in-process, and writes the
//!   output where `--output` says.
//! - `oxport convert` moves attestation manifests between the legacy and the
//!   artifact form; `oxport inspect` shows and checks what an image holds.
//! - `oxport health` asks a server's `grpc.health.v1` (container probes).
//! - `oxport self-image` builds oxport's own image through the export path.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing::info;

use oxport::casefile;
use oxport::client::output::{parse_bool, parse_output};
use oxport::client::progress::ProgressView;
use oxport::client::Client;
use oxport::destination::{write_atomically, Destination};
use oxport::image::remote::RemoteOptions;
use oxport::model::ExportResponse;
use oxport::progress::Progress;
use oxport::server::{self, Embedded, ListenAddr, Listener, DEFAULT_LISTEN, DEFAULT_STATE};

#[derive(Parser)]
#[command(
    name = "oxport",
    version,
    about = "An out-of-process image exporter for BuildKit-style builders"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text or as one JSON object per line (span fields,
    /// request ids included).
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// A directory of per-registry TLS files in the Docker layout
    /// (DIR/HOST[:PORT]/*.crt CAs, *.cert with *.key client certificates).
    /// Repeatable; replaces /etc/docker/certs.d. Applies to serve, to the
    /// embedded server of export, and to docker:// in convert and inspect.
    #[arg(long, global = true, value_name = "DIR")]
    registry_certs_dir: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the exporter over gRPC until SIGINT or SIGTERM.
    Serve {
        /// unix:///path/to.sock or tcp://HOST:PORT
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: ListenAddr,
        /// Where the content store keeps blobs and uploads.
        #[arg(long, default_value = DEFAULT_STATE)]
        state: PathBuf,
        /// Serve Prometheus metrics on http://HOST:PORT/metrics.
        #[arg(long, value_name = "HOST:PORT")]
        metrics_listen: Option<String>,
        #[command(flatten)]
        flags: server::flags::ServeFlags,
    },
    /// Export a build result stored as case.json.
    Export {
        /// The build result (case.json; paths in it are relative to its directory).
        #[arg(long)]
        result: PathBuf,
        /// buildx-style CSV, e.g. type=oci,dest=out.tar,oci-artifact=true.
        /// type overrides the result's exporter, dest is the destination
        /// (- for stdout), every other key is an exporter attribute.
        #[arg(long)]
        output: Option<String>,
        /// Write the exporter response map here as a JSON object.
        #[arg(long)]
        metadata_file: Option<PathBuf>,
        /// A running server (unix:///path.sock or tcp://HOST:PORT); without
        /// it an embedded server is started in-process.
        #[arg(long)]
        addr: Option<String>,
        /// TLS files for https:// and tcp+tls:// addresses.
        #[command(flatten)]
        tls: oxport::client::tls::ClientTls,
    },
    /// Move an image's attestation manifests to the legacy or the artifact form.
    Convert {
        /// The target form.
        #[arg(long, value_parser = ["artifact", "legacy"])]
        to: String,
        /// oci-archive:PATH, oci:DIR[:REF] or docker://REF
        src: String,
        /// oci-archive:PATH, oci:DIR[:REF] or docker://REF (may equal SRC)
        dst: String,
        /// Reach docker:// registries without verifying their TLS certificate,
        /// over plain HTTP when they do not speak TLS (as loopback hosts may).
        #[arg(long)]
        insecure: bool,
    },
    /// Exit 0 when the server at ADDR reports SERVING through grpc.health.v1.
    Health {
        /// unix:///path.sock or tcp://HOST:PORT
        #[arg(long, default_value = DEFAULT_LISTEN)]
        addr: String,
        /// The service to ask about ("" for the server as a whole).
        #[arg(long, default_value = oxport::client::health::EXPORTER_SERVICE)]
        service: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Build oxport's own OCI image (this binary, an SBOM, a provenance) and
    /// export it like any build result.
    SelfImage {
        /// buildx-style CSV, as for export (e.g. type=oci,dest=oxport-image.tar).
        #[arg(long)]
        output: Option<String>,
        /// The binary to package; defaults to the running one.
        #[arg(long)]
        binary: Option<PathBuf>,
        /// The image version; defaults to the crate version.
        #[arg(long)]
        version: Option<String>,
        /// The source revision, recorded in a label and the provenance.
        #[arg(long)]
        revision: Option<String>,
        /// The source repository URL, recorded likewise.
        #[arg(long)]
        source: Option<String>,
        /// Unix time for every timestamp [default: $SOURCE_DATE_EPOCH or 0].
        #[arg(long)]
        source_date_epoch: Option<i64>,
        /// Write the exporter response map here as a JSON object.
        #[arg(long)]
        metadata_file: Option<PathBuf>,
        /// A running server; without it an embedded server is started.
        #[arg(long)]
        addr: Option<String>,
    },
    /// Show an image's platforms, attestations and referrers, checking every blob.
    Inspect {
        /// oci-archive:PATH, oci:DIR[:REF] or docker://REF
        src: String,
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
        /// Reach docker:// registries without verifying their TLS certificate,
        /// over plain HTTP when they do not speak TLS (as loopback hosts may).
        #[arg(long)]
        insecure: bool,
    },
}

fn main() -> ExitCode {
    oxport::alloc::tune_for_streaming();
    let cli = Cli::parse();
    if !cli.registry_certs_dir.is_empty() {
        oxport::registry::tls::set_default_certs_dirs(cli.registry_certs_dir.clone());
    }
    let default_filter = match cli.command {
        Command::Serve { .. } => "info",
        Command::Export { .. } | Command::SelfImage { .. } => {
            "warn,oxport::client=info,oxport::cli=info"
        }
        Command::Convert { .. } | Command::Inspect { .. } | Command::Health { .. } => {
            "warn,oxport::cli=info"
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        logs.json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
    // A socket passed by systemd is taken while the process has one thread.
    let inherited = match &cli.command {
        Command::Serve { .. } => match oxport::server::activation::take_from_env() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve {
                listen,
                state,
                metrics_listen,
                flags,
            } => match flags.options() {
                Ok(opts) => serve(listen, state, metrics_listen, inherited, opts).await,
                Err(e) => Err(e),
            },
            Command::Health {
                addr,
                service,
                timeout,
            } => health(&addr, &service, timeout).await,
            Command::SelfImage {
                output,
                binary,
                version,
                revision,
                source,
                source_date_epoch,
                metadata_file,
                addr,
            } => {
                let params =
                    self_image_params(binary, version, revision, source, source_date_epoch);
                match params {
                    Ok(p) => self_image(p, output, metadata_file, addr).await,
                    Err(e) => Err(e),
                }
            }
            Command::Export {
                result,
                output,
                metadata_file,
                addr,
                tls,
            } => {
                oxport::client::tls::set_default(tls);
                export(result, output, metadata_file, addr).await
            }
            Command::Convert {
                to,
                src,
                dst,
                insecure,
            } => convert(&to, &src, &dst, &RemoteOptions { insecure }),
            Command::Inspect {
                src,
                format,
                insecure,
            } => inspect(&src, &format, &RemoteOptions { insecure }),
        }
    });
    // Blocking work still running here (a conversion stuck on hostile input,
    // an export past its grace) must not keep the process alive: its threads
    // are left to the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
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
        info!("metrics on http://{bound}/metrics");
        tokio::spawn(oxport::metrics::http::serve(l));
    }
    let listener = match inherited {
        Some(socket) => {
            info!("using the socket passed by the service manager; --listen is ignored");
            Listener::from_inherited(socket).map_err(|e| format!("inherited socket: {e}"))?
        }
        None => Listener::bind(&listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?,
    };
    server::serve_with(listener, &state, &opts, server::shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

async fn export(
    result: PathBuf,
    output: Option<String>,
    metadata_file: Option<PathBuf>,
    addr: Option<String>,
) -> Result<(), String> {
    let case = casefile::load(&result).map_err(|e| e.message)?;
    export_case(case, output, metadata_file, addr).await
}

/// Exports a loaded build result as `--output` says.
async fn export_case(
    case: casefile::Case,
    output: Option<String>,
    metadata_file: Option<PathBuf>,
    addr: Option<String>,
) -> Result<(), String> {
    let mut req = case.request.clone();
    let spec = output
        .as_deref()
        .map(parse_output)
        .transpose()?
        .unwrap_or_default();
    if let Some(t) = spec.exporter {
        req.exporter = t;
    }
    req.attrs.extend(spec.attrs);

    let as_dir = req.attrs.get("tar").and_then(|v| parse_bool(v)) == Some(false);
    let mut dest = if req.exporter == "image" {
        Destination::Discard
    } else {
        let dest = match spec.dest.filter(|d| !d.is_empty()) {
            Some(d) => d,
            None if std::io::stdout().is_terminal() => {
                return Err(format!(
                    "dest file is required for {} exporter. refusing to write to console",
                    req.exporter
                ))
            }
            None => "-".to_string(),
        };
        Destination::create(&dest, as_dir).map_err(|e| format!("cannot write {dest}: {e}"))?
    };

    let embedded = match addr {
        Some(_) => None,
        None => Some(Embedded::start().await.map_err(|e| e.to_string())?),
    };
    let addr = addr.unwrap_or_else(|| {
        embedded
            .as_ref()
            .map(|e| e.addr().to_string())
            .unwrap_or_default()
    });
    // A server of its own reads the user's Docker config itself; a running
    // server is given the user's credentials per request instead, so it
    // never pushes with credentials of its own on the user's behalf.
    let answerer = embedded
        .is_none()
        .then(oxport::client::docker_config_answerer);
    let response = run_export(&addr, &case, &req, &mut dest, answerer.as_deref()).await;
    if let Some(server) = embedded {
        if tokio::time::timeout(Duration::from_secs(10), server.stop())
            .await
            .is_err()
        {
            tracing::warn!(target: "oxport::cli", "the embedded server did not stop in time");
        }
    }
    // On error `dest` is dropped here, which removes the temporary output.
    let response = response?;
    dest.finish()
        .map_err(|e| format!("cannot finish the output: {e}"))?;
    if let Some(path) = metadata_file {
        let json = serde_json::to_vec_pretty(&response).map_err(|e| e.to_string())?;
        write_atomically(&path, &json)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

async fn health(addr: &str, service: &str, timeout: u64) -> Result<(), String> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let status = oxport::client::health::check(addr, service, Duration::from_secs(timeout))
        .await
        .map_err(|e| e.to_string())?;
    println!("{}", status.as_str_name());
    match status {
        ServingStatus::Serving => Ok(()),
        other => Err(format!("{addr}: {service:?} is {}", other.as_str_name())),
    }
}

fn self_image_params(
    binary: Option<PathBuf>,
    version: Option<String>,
    revision: Option<String>,
    source: Option<String>,
    epoch: Option<i64>,
) -> Result<oxport::selfimage::Params, String> {
    let binary = match binary {
        Some(b) => b,
        None => std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?,
    };
    let epoch = match epoch {
        Some(e) => e,
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("invalid SOURCE_DATE_EPOCH {v:?}"))?,
            Err(_) => 0,
        },
    };
    Ok(oxport::selfimage::Params {
        binary,
        version: version.unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
        revision,
        source,
        epoch,
        platform: oxport::selfimage::host_platform(),
    })
}

async fn self_image(
    params: oxport::selfimage::Params,
    output: Option<String>,
    metadata_file: Option<PathBuf>,
    addr: Option<String>,
) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("oxport-self-image-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let case = oxport::selfimage::build(&params, dir.path()).map_err(|e| e.message)?;
    info!(target: "oxport::cli", binary = %params.binary.display(), platform = %params.platform, "self-image assembled");
    export_case(case, output, metadata_file, addr).await
}

fn convert(to: &str, src: &str, dst: &str, opts: &RemoteOptions) -> Result<(), String> {
    let to: oxport::convert::Form = to.parse()?;
    let summary =
        oxport::convert::run(&src.parse()?, &dst.parse()?, to, opts).map_err(|e| e.message)?;
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

fn inspect(src: &str, format: &str, opts: &RemoteOptions) -> Result<(), String> {
    let report = oxport::inspect::run(&src.parse()?, opts).map_err(|e| e.message)?;
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

async fn run_export(
    addr: &str,
    case: &casefile::Case,
    req: &oxport::model::ExportRequest,
    dest: &mut Destination,
    answerer: Option<&oxport::client::Answerer>,
) -> Result<ExportResponse, String> {
    let mut client = Client::connect(addr).await.map_err(|e| e.to_string())?;
    client
        .upload_missing(&case.layer_blobs())
        .await
        .map_err(|e| e.to_string())?;
    let mut view = ProgressView::stderr();
    let mut progress = |p: &Progress| view.event(p);
    let response = client
        .export_answering(req, dest, &mut progress, answerer)
        .await;
    view.finish();
    let response = response.map_err(|e| e.to_string())?;
    info!(
        target: "oxport::cli",
        digest = response.get("containerimage.digest").map(String::as_str).unwrap_or(""),
        "export done"
    );
    Ok(response)
}
