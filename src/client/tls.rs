//! TLS for the client: `https://HOST:PORT` or `tcp+tls://HOST:PORT`, with a
//! CA to trust (else Mozilla's roots) and, for mutual TLS, a client
//! certificate and key.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::{ClientError, Result};

/// The files a TLS connection uses (PEM).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ClientTls {
    /// The CA that signed the server's certificate (https:// and tcp+tls:// addresses).
    #[arg(long = "tls-ca")]
    pub ca: Option<PathBuf>,
    /// The client certificate, for servers that require mutual TLS.
    #[arg(long = "tls-cert", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client key that goes with --tls-cert.
    #[arg(long = "tls-key", requires = "cert")]
    pub key: Option<PathBuf>,
}

static DEFAULT: OnceLock<ClientTls> = OnceLock::new();

/// Sets the files [`super::Client::connect`] uses for TLS addresses (the
/// CLI's `--tls-*` flags); the first call wins.
pub fn set_default(tls: ClientTls) {
    let _ = DEFAULT.set(tls);
}

pub(crate) fn default_files() -> ClientTls {
    DEFAULT.get().cloned().unwrap_or_default()
}

/// The `HOST:PORT` of a TLS address, or None for other schemes.
pub fn tls_host_port(addr: &str) -> Option<&str> {
    addr.strip_prefix("https://")
        .or_else(|| addr.strip_prefix("tcp+tls://"))
        .map(|r| r.trim_end_matches('/'))
}

impl ClientTls {
    pub fn config(&self, host: &str) -> Result<ClientTlsConfig> {
        let read = |p: &Path| {
            std::fs::read(p)
                .map_err(|e| ClientError::Address(format!("TLS file {}: {e}", p.display())))
        };
        let mut cfg = ClientTlsConfig::new().domain_name(host);
        cfg = match &self.ca {
            Some(ca) => cfg.ca_certificate(Certificate::from_pem(read(ca)?)),
            None => cfg.with_webpki_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            cfg = cfg.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_addresses() {
        assert_eq!(
            tls_host_port("https://127.0.0.1:9000"),
            Some("127.0.0.1:9000")
        );
        assert_eq!(tls_host_port("tcp+tls://h:1/"), Some("h:1"));
        assert_eq!(tls_host_port("tcp://h:1"), None);
        assert_eq!(tls_host_port("unix:///s"), None);
    }
}
