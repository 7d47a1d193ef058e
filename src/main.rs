//! The `oxport` command: parse arguments, call the library.
//!
//! - `oxport serve` runs the gRPC server.
//! - `oxport export` sends a build result stored as `case.json` to a server
//!   (`--addr`) or to an embedded one started in-process, and writes the
//!   output where `--output` says.
//! - `oxport convert` moves attestation manifests between the legacy and the
//!   artifact form; `oxport inspect` shows and checks what an image holds.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing::info;

use oxport::casefile;
use oxport::client::output::{parse_bool, parse_output, write_atomically, Destination};
use oxport::client::progress::ProgressView;
use oxport::client::Client;
use oxport::export::Progress;
use oxport::model::ExportResponse;
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
    },
    /// Show an image's platforms, attestations and referrers, checking every blob.
    Inspect {
        /// oci-archive:PATH, oci:DIR[:REF] or docker://REF
        src: String,
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Serve { .. } => "info",
        Command::Export { .. } => "warn,oxport::client=info,oxport::cli=info",
        Command::Convert { .. } | Command::Inspect { .. } => "warn,oxport::cli=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

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
            Command::Serve { listen, state } => serve(listen, state).await,
            Command::Export {
                result,
                output,
                metadata_file,
                addr,
            } => export(result, output, metadata_file, addr).await,
            Command::Convert { to, src, dst } => convert(&to, &src, &dst),
            Command::Inspect { src, format } => inspect(&src, &format),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(listen: ListenAddr, state: PathBuf) -> Result<(), String> {
    let listener = Listener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    server::serve(listener, &state, server::shutdown_signal())
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
    let response = run_export(&addr, &case, &req, &mut dest).await;
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

fn convert(to: &str, src: &str, dst: &str) -> Result<(), String> {
    let to: oxport::convert::Form = to.parse()?;
    let summary = oxport::convert::run(&src.parse()?, &dst.parse()?, to).map_err(|e| e.message)?;
    for c in &summary.changes {
        info!(target: "oxport::cli", location = %c.location, from = %c.from, to = %c.to, "rewritten");
    }
    info!(target: "oxport::cli", changed = summary.changes.len(), %dst, "converted");
    Ok(())
}

fn inspect(src: &str, format: &str) -> Result<(), String> {
    let report = oxport::inspect::run(&src.parse()?).map_err(|e| e.message)?;
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
) -> Result<ExportResponse, String> {
    let mut client = Client::connect(addr).await.map_err(|e| e.to_string())?;
    client
        .upload_missing(&case.layer_blobs())
        .await
        .map_err(|e| e.to_string())?;
    let mut view = ProgressView::stderr();
    let mut progress = |p: &Progress| view.event(p);
    let response = client.export(req, dest, &mut progress).await;
    view.finish();
    let response = response.map_err(|e| e.to_string())?;
    info!(
        target: "oxport::cli",
        digest = response.get("containerimage.digest").map(String::as_str).unwrap_or(""),
        "export done"
    );
    Ok(response)
}
