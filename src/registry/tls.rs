//! TLS to registries: which CA files and client certificates a registry
//! host gets.

use std::path::PathBuf;

/// The Docker directory of per-registry certificates.
pub const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";

/// Where per-registry CA files and client certificates are looked up.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// Directories in the Docker layout (`<dir>/<host[:port]>/`), searched in order.
    pub certs_dirs: Vec<PathBuf>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            certs_dirs: vec![PathBuf::from(DOCKER_CERTS_DIR)],
        }
    }
}
