//! The `oxport serve` flags for limits, shutdown and transport security.

use std::path::PathBuf;
use std::time::Duration;

use crate::limits::{parse_duration, parse_size, Limits, JSON_DEPTH_CEILING};

use super::security::ServerTls;
use super::ServeOptions;

fn size(s: &str) -> Result<u64, String> {
    parse_size(s)
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeFlags {
    /// The largest gRPC message (e.g. 64MiB).
    #[arg(long, value_parser = size, default_value = "64MiB")]
    pub max_message_size: u64,
    /// The largest blob a client may upload.
    #[arg(long, value_parser = size, default_value = "64GiB")]
    pub max_blob_size: u64,
    /// Bytes one upload stream (WriteBlob or Convert input) may carry.
    #[arg(long, value_parser = size, default_value = "64GiB")]
    pub max_upload_bytes: u64,
    /// Attestations per platform of one build result.
    #[arg(long, default_value_t = 64)]
    pub max_attestations: usize,
    /// The largest in-toto statement.
    #[arg(long, value_parser = size, default_value = "40MiB")]
    pub max_statement_size: u64,
    /// Platforms (refs) per build result.
    #[arg(long, default_value_t = 64)]
    pub max_platforms: usize,
    /// Layers per build result, all platforms together.
    #[arg(long, default_value_t = 8192)]
    pub max_layers: usize,
    /// Digests per MissingBlobs request.
    #[arg(long, default_value_t = 8192)]
    pub max_request_digests: usize,
    /// The largest annotation, key plus value.
    #[arg(long, value_parser = size, default_value = "64KiB")]
    pub max_annotation_size: u64,
    /// Nesting depth of configs, platform lists and predicates (at most 128).
    #[arg(long, default_value_t = 64)]
    pub max_json_depth: usize,
    /// How long one request (an upload, an export) may take.
    #[arg(long, value_parser = duration, default_value = "1h")]
    pub request_timeout: Duration,
    /// How long an upload stream (WriteBlob, Convert input) may send nothing.
    #[arg(long, value_parser = duration, default_value = "60s")]
    pub stream_idle_timeout: Duration,
    /// How long an abandoned partial upload is kept for a resume.
    #[arg(long, value_parser = duration, default_value = "24h")]
    pub upload_expiry: Duration,
    /// Requests in progress at once; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 256)]
    pub max_concurrent_requests: usize,
    /// Connections open at once; more wait to be accepted.
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    /// Requests one connection may have open at once (HTTP/2 streams).
    #[arg(long, default_value_t = 64)]
    pub max_streams_per_connection: usize,
    /// Exports and conversions running at once (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    pub max_exports: usize,
    /// Exports waiting for a slot; more are refused with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = 128)]
    pub export_queue: usize,
    /// How long SIGTERM waits for in-flight requests before cancelling them.
    #[arg(long, value_parser = duration, default_value = "10s")]
    pub shutdown_grace: Duration,
    /// Group (name or gid) that owns the unix socket; mode 0660 lets it connect.
    #[arg(long)]
    pub socket_group: Option<String>,
    /// The server certificate (PEM) for TLS on TCP.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The server key (PEM) for TLS on TCP.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Push and pull with the server's own Docker config ($DOCKER_CONFIG or
    /// ~/.docker/config.json, credential helpers) when a request brings no
    /// credentials of its own. Without it such requests are anonymous.
    #[arg(long)]
    pub docker_credentials: bool,
}

/// Signing keys, for `serve` and for the CLI's embedded server.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Signing")]
pub struct SigningFlags {
    /// A key requests may sign with by naming it (oxport.sign=NAME): PEM
    /// PKCS#8 ECDSA P-256, or cosign's encrypted key. Repeatable.
    #[arg(long, value_name = "NAME=PATH", value_parser = key_spec)]
    pub signing_key: Vec<(String, PathBuf)>,
    /// The file holding the password of key NAME when it is encrypted (else
    /// the COSIGN_PASSWORD environment variable). Repeatable.
    #[arg(long, value_name = "NAME=PATH", value_parser = password_spec)]
    pub signing_key_password_file: Vec<(String, PathBuf)>,
}

fn key_spec(v: &str) -> Result<(String, PathBuf), String> {
    crate::sign::keyring::name_and_path("--signing-key", v)
}

fn password_spec(v: &str) -> Result<(String, PathBuf), String> {
    crate::sign::keyring::name_and_path("--signing-key-password-file", v)
}

impl SigningFlags {
    /// The keys loaded (and opened with their passwords).
    pub fn keyring(&self) -> Result<crate::sign::Keyring, String> {
        crate::sign::Keyring::load(&crate::sign::keyring::KeySpecs {
            keys: self.signing_key.clone(),
            password_files: self.signing_key_password_file.clone(),
        })
    }
}

impl ServeFlags {
    pub fn options(&self) -> Result<ServeOptions, String> {
        if self.max_json_depth > JSON_DEPTH_CEILING {
            return Err(format!(
                "--max-json-depth {} is above {JSON_DEPTH_CEILING}, the parser's own ceiling",
                self.max_json_depth
            ));
        }
        let usize_of = |flag: &str, v: u64| {
            usize::try_from(v).map_err(|_| format!("--{flag} {v} is too large"))
        };
        let limits = Limits {
            max_message_size: usize_of("max-message-size", self.max_message_size)?,
            max_blob_size: self.max_blob_size,
            max_upload_bytes: self.max_upload_bytes,
            max_attestations_per_platform: self.max_attestations,
            max_statement_size: usize_of("max-statement-size", self.max_statement_size)?,
            max_platforms: self.max_platforms,
            max_layers: self.max_layers,
            max_request_digests: self.max_request_digests,
            max_annotation_size: usize_of("max-annotation-size", self.max_annotation_size)?,
            max_json_depth: self.max_json_depth,
            request_timeout: self.request_timeout,
            stream_idle_timeout: self.stream_idle_timeout,
            upload_expiry: self.upload_expiry,
            max_concurrent_requests: self.max_concurrent_requests,
            max_connections: self.max_connections,
            max_streams_per_connection: self.max_streams_per_connection,
            max_exports: self.max_exports,
            export_queue: self.export_queue,
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(ServerTls {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            }),
            _ => None,
        };
        Ok(ServeOptions {
            limits,
            shutdown_grace: self.shutdown_grace,
            socket_group: self.socket_group.clone(),
            tls,
            registry: crate::registry::ClientOptions {
                credentials: if self.docker_credentials {
                    crate::registry::CredentialSource::DockerConfig
                } else {
                    crate::registry::CredentialSource::Anonymous
                },
                ..Default::default()
            },
            keyring: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        flags: ServeFlags,
    }

    #[test]
    fn defaults_match_the_library_defaults() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        let opts = cli.flags.options().unwrap();
        assert_eq!(opts.limits, Limits::default());
        assert!(opts.tls.is_none());
    }

    #[test]
    fn flags_set_limits_and_tls() {
        let cli = Cli::try_parse_from([
            "x",
            "--max-statement-size",
            "1MiB",
            "--request-timeout",
            "2s",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--shutdown-grace",
            "500ms",
        ])
        .unwrap();
        let opts = cli.flags.options().unwrap();
        assert_eq!(opts.limits.max_statement_size, 1 << 20);
        assert_eq!(opts.limits.request_timeout, Duration::from_secs(2));
        assert_eq!(opts.shutdown_grace, Duration::from_millis(500));
        assert_eq!(opts.tls.unwrap().client_ca, None);
        assert!(Cli::try_parse_from(["x", "--tls-cert", "c.pem"]).is_err());
        let deep = Cli::try_parse_from(["x", "--max-json-depth", "500"]).unwrap();
        assert!(deep.flags.options().is_err());
    }
}
