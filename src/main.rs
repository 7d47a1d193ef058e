//! The `oxport` command: parse arguments, call the library (the runs of
//! the commands are in `oxport::cli`).
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

use clap::{Parser, Subcommand};

use oxport::cli::commands::{convert, health, inspect, serve};
use oxport::cli::export::{export_file, ExportTarget};
use oxport::cli::self_image::{self_image, SelfImageFlags};
use oxport::image::remote::RemoteOptions;
use oxport::server::{self, ListenAddr, DEFAULT_LISTEN, DEFAULT_STATE};

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
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"], help_heading = "Global options")]
    log_format: String,
    /// The least severe log lines shown. Default: info for serve; for the
    /// other commands warn, with their own progress and result lines.
    /// RUST_LOG, when set, overrides it.
    #[arg(long, global = true, value_parser = ["error", "warn", "info", "debug", "trace"], help_heading = "Global options")]
    log_level: Option<String>,
    /// A directory of per-registry TLS files in the Docker layout
    /// (DIR/HOST[:PORT]/*.crt CAs, *.cert with *.key client certificates).
    /// Repeatable; replaces /etc/docker/certs.d. Applies to serve, to the
    /// embedded server of export, and to docker:// in convert and inspect.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
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
        #[command(flatten)]
        signing: server::flags::SigningFlags,
    },
    /// Export a build result stored as case.json.
    Export {
        /// The build result (case.json; paths in it are relative to its directory).
        #[arg(long)]
        result: PathBuf,
        /// buildx-style CSV, e.g. type=oci,dest=out.tar,oci-artifact=true.
        /// type overrides the result's exporter, dest is the destination
        /// (- for stdout), every other key is an exporter attribute.
        /// Default: the result's own exporter, its archive to stdout (refused
        /// when stdout is a terminal).
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
        /// Keys for the embedded server (oxport.sign=NAME); a running
        /// server (--addr) signs with its own.
        #[command(flatten)]
        signing: server::flags::SigningFlags,
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
        /// text: a tree for people; json: one object with stable field
        /// names, for programs.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
        /// Reach docker:// registries without verifying their TLS certificate,
        /// over plain HTTP when they do not speak TLS (as loopback hosts may).
        #[arg(long)]
        insecure: bool,
        /// Check the image's signatures with this public key (PEM).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Sign an existing image and its attestations as an export with
    /// oxport.sign does (docker://REF or oci:DIR).
    Sign {
        /// docker://REF or oci:DIR[:REF]
        src: String,
        /// The private key: PEM PKCS#8 ECDSA P-256, or cosign's encrypted key.
        #[arg(long)]
        key: PathBuf,
        /// The file holding the password of an encrypted key (else the
        /// COSIGN_PASSWORD environment variable).
        #[arg(long)]
        key_password_file: Option<PathBuf>,
        /// Also sign each platform manifest under an index (as cosign sign
        /// --recursive); without it, the root alone of the image's manifests.
        #[arg(long)]
        recursive: bool,
        /// Reach docker:// registries without verifying their TLS certificate,
        /// over plain HTTP when they do not speak TLS (as loopback hosts may).
        #[arg(long)]
        insecure: bool,
    },
    /// Check an image's signatures with a public key, as cosign verify --key does.
    Verify {
        /// oci-archive:PATH, oci:DIR[:REF] or docker://REF
        src: String,
        /// The public key (PEM "PUBLIC KEY", as cosign.pub).
        #[arg(long)]
        key: PathBuf,
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
    init_logging(&cli);
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
    let result = runtime.block_on(run(cli.command, inherited));
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

/// Logs to stderr, as text or JSON; `RUST_LOG` overrides the command's
/// default filter.
fn init_logging(cli: &Cli) {
    let default_filter = match cli.command {
        Command::Serve { .. } => "info",
        Command::Export { .. } | Command::SelfImage { .. } => {
            "warn,oxport::client=info,oxport::cli=info"
        }
        Command::Convert { .. }
        | Command::Inspect { .. }
        | Command::Verify { .. }
        | Command::Sign { .. }
        | Command::Health { .. } => "warn,oxport::cli=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(cli.log_level.as_deref().unwrap_or(default_filter))
    });
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
}

/// Runs the parsed command.
async fn run(
    command: Command,
    inherited: Option<server::activation::Inherited>,
) -> Result<(), String> {
    match command {
        Command::Serve {
            listen,
            state,
            metrics_listen,
            flags,
            signing,
        } => match flags.options().and_then(|mut opts| {
            opts.keyring = signing.keyring()?;
            Ok(opts)
        }) {
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
            let flags = SelfImageFlags {
                binary,
                version,
                revision,
                source,
                source_date_epoch,
            };
            let target = ExportTarget {
                output,
                metadata_file,
                addr,
                keyring: Default::default(),
            };
            match oxport::cli::self_image::params(flags) {
                Ok(p) => self_image(p, target).await,
                Err(e) => Err(e),
            }
        }
        Command::Export {
            result,
            output,
            metadata_file,
            addr,
            tls,
            signing,
        } => {
            oxport::client::tls::set_default(tls);
            if addr.is_some() && !signing.signing_key.is_empty() {
                return Err("--signing-key is for the embedded server; a running server (--addr) signs with the keys it was started with".into());
            }
            match signing.keyring() {
                Ok(keyring) => {
                    let target = ExportTarget {
                        output,
                        metadata_file,
                        addr,
                        keyring,
                    };
                    export_file(result, target).await
                }
                Err(e) => Err(e),
            }
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
            key,
        } => inspect(&src, &format, &RemoteOptions { insecure }, key.as_deref()),
        Command::Sign {
            src,
            key,
            key_password_file,
            recursive,
            insecure,
        } => oxport::cli::signing::sign(
            &src,
            &key,
            key_password_file.as_deref(),
            recursive,
            &RemoteOptions { insecure },
        ),
        Command::Verify { src, key, insecure } => {
            oxport::cli::signing::verify(&src, &key, &RemoteOptions { insecure })
        }
    }
}
