//! TLS to registries: which roots a registry's certificate is checked
//! against, and which client certificate oxport presents.
//!
//! Registries in production often use a private CA, and some ask for a
//! client certificate. Docker, containerd and BuildKit agree on where those
//! files live: a directory per registry host (`<dir>/<host[:port]>/`) in
//! which every `*.crt` is a CA bundle and every `*.cert` is a client
//! certificate whose key is the `*.key` of the same base name. Following
//! that layout means a machine already set up for `docker push` is set up
//! for oxport.
//!
//! Server certificates are checked against Mozilla's roots, the system's
//! trust store (where operators install company CAs) and the host's CA
//! files together. `registry.insecure=true` keeps BuildKit's meaning: TLS
//! without certificate verification (see [`AcceptAnyServerCert`]); the
//! fall-back to plain HTTP lives in [`super::fallback`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tracing::debug;

use super::error::RegistryError;

/// The Docker directory of per-registry certificates.
pub const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";

/// The directories a process uses when nothing else is said
/// (`--registry-certs-dir`); None: [`DOCKER_CERTS_DIR`].
static DEFAULT_DIRS: RwLock<Option<Vec<PathBuf>>> = RwLock::new(None);

/// Makes `dirs` the certificate directories of every [`TlsOptions::default`]
/// from now on (the command line's `--registry-certs-dir`).
pub fn set_default_certs_dirs(dirs: Vec<PathBuf>) {
    *DEFAULT_DIRS.write().unwrap_or_else(|p| p.into_inner()) = Some(dirs);
}

/// Where per-registry CA files and client certificates are looked up.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// Directories in the Docker layout (`<dir>/<host[:port]>/`), searched in order.
    pub certs_dirs: Vec<PathBuf>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        let set = DEFAULT_DIRS
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        TlsOptions {
            certs_dirs: set.unwrap_or_else(|| vec![PathBuf::from(DOCKER_CERTS_DIR)]),
        }
    }
}

/// The CA certificates and client identities found for one host.
#[derive(Default)]
struct HostFiles {
    cas: Vec<CertificateDer<'static>>,
    identities: Vec<Arc<CertifiedKey>>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn cert_error(host: &str, detail: String) -> RegistryError {
    RegistryError::Certificate {
        registry: host.to_string(),
        detail,
    }
}

/// The TLS configuration for registry `host` (`host[:port]` as in image
/// references): roots and client certificates from `opts`, and no server
/// certificate check at all when `skip_verify`.
pub fn client_config(
    host: &str,
    opts: &TlsOptions,
    skip_verify: bool,
) -> Result<ClientConfig, RegistryError> {
    let files = load_host_files(host, &opts.certs_dirs)?;
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_error(host, format!("TLS set-up: {e}")))?;
    let builder = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
    } else {
        let mut roots = base_roots().clone();
        for ca in files.cas {
            // Checked when loaded; a certificate webpki cannot use as a
            // trust anchor is refused there.
            roots
                .add(ca)
                .map_err(|e| cert_error(host, format!("a CA certificate is unusable: {e}")))?;
        }
        builder.with_root_certificates(roots)
    };
    Ok(if files.identities.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_resolver(Arc::new(ClientIdentities(files.identities)))
    })
}

/// Mozilla's roots and the system's, loaded once per process: reading the
/// system store costs a few milliseconds and does not change under us.
fn base_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let system = rustls_native_certs::load_native_certs();
        for e in &system.errors {
            // A missing or unreadable system store leaves Mozilla's roots.
            debug!(error = %e, "system trust store");
        }
        let (added, ignored) = roots.add_parsable_certificates(system.certs);
        debug!(added, ignored, "system trust store roots");
        roots
    })
}

/// The host's directory in each certificate directory, in order.
fn host_dirs(host: &str, dirs: &[PathBuf]) -> Result<Vec<PathBuf>, RegistryError> {
    // A host name is one path component; anything else would leave the
    // directory (image references cannot name such a host, but say so).
    if host.is_empty() || host == "." || host == ".." || host.contains(['/', '\\']) {
        return Err(cert_error(host, "not a usable directory name".into()));
    }
    Ok(dirs.iter().map(|d| d.join(host)).collect())
}

/// Reads every `*.crt`, `*.cert` and `*.key` pair of the host's directories.
fn load_host_files(host: &str, dirs: &[PathBuf]) -> Result<HostFiles, RegistryError> {
    let mut files = HostFiles::default();
    for dir in host_dirs(host, dirs)? {
        let mut names = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| cert_error(host, format!("cannot list {}: {e}", dir.display())))?,
            // No directory for this host: nothing extra to trust or present.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
            Err(e) => {
                return Err(cert_error(
                    host,
                    format!("cannot list {}: {e}", dir.display()),
                ))
            }
        };
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let name = name.to_string_lossy();
            if name.ends_with(".crt") {
                files.cas.extend(read_certs(host, &path)?);
            } else if let Some(base) = name.strip_suffix(".cert") {
                let key = dir.join(format!("{base}.key"));
                files.identities.push(read_identity(host, &path, &key)?);
            }
        }
        debug!(registry = host, dir = %dir.display(), cas = files.cas.len(),
            client_certs = files.identities.len(), "registry certificates");
    }
    Ok(files)
}

fn read_file(host: &str, path: &Path) -> Result<Vec<u8>, RegistryError> {
    std::fs::read(path)
        .map_err(|e| cert_error(host, format!("cannot read {}: {e}", path.display())))
}

/// The certificates of a PEM file; at least one.
fn read_certs(host: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, RegistryError> {
    let pem = read_file(host, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(host, format!("{}: invalid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(cert_error(
            host,
            format!("{}: no PEM certificate in it", path.display()),
        ));
    }
    Ok(certs)
}

/// A client certificate chain and its key; the key must exist and match.
fn read_identity(host: &str, cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, RegistryError> {
    if !key.exists() {
        return Err(cert_error(
            host,
            format!(
                "client certificate {} has no key: {} is missing",
                cert.display(),
                key.display()
            ),
        ));
    }
    let chain = read_certs(host, cert)?;
    let pem = read_file(host, key)?;
    let der = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| cert_error(host, format!("{}: invalid PEM key: {e}", key.display())))?;
    let pair = CertifiedKey::from_der(chain, der, &provider()).map_err(|e| {
        cert_error(
            host,
            format!("{} and {}: {e}", cert.display(), key.display()),
        )
    })?;
    Ok(Arc::new(pair))
}

/// Several client certificates: the first whose key can sign with a scheme
/// the server accepts, preferring one issued by a CA the server names.
#[derive(Debug)]
struct ClientIdentities(Vec<Arc<CertifiedKey>>);

impl ResolvesClientCert for ClientIdentities {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let usable = |k: &&Arc<CertifiedKey>| k.key.choose_scheme(sigschemes).is_some();
        let issued_by_hint = |k: &&Arc<CertifiedKey>| {
            k.cert.iter().any(|c| {
                // The issuer name's DER appears in the certificate as is.
                root_hint_subjects
                    .iter()
                    .any(|dn| !dn.is_empty() && contains(c.as_ref(), dn))
            })
        };
        self.0
            .iter()
            .filter(usable)
            .find(issued_by_hint)
            .or_else(|| self.0.iter().find(usable))
            .cloned()
    }

    fn has_certs(&self) -> bool {
        !self.0.is_empty()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `registry.insecure=true`: any server certificate is accepted, as
/// BuildKit's `InsecureSkipVerify` does, but the handshake signatures are
/// still checked so the session keys belong to whoever sent the certificate.
#[derive(Debug)]
pub struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The certificate problem behind an error, if any: a server certificate
/// that failed verification, or a server that refused the client's
/// certificate (or its absence). Such failures are not retried and never
/// lead to plain HTTP.
pub fn certificate_problem(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::AlertDescription as A;
    let mut cur = Some(e);
    while let Some(err) = cur {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        match tls {
            Some(t @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)) => {
                return Some(format!("the server certificate failed verification: {t}"))
            }
            Some(
                t @ rustls::Error::AlertReceived(
                    A::BadCertificate
                    | A::UnsupportedCertificate
                    | A::CertificateRevoked
                    | A::CertificateExpired
                    | A::CertificateUnknown
                    | A::UnknownCA
                    | A::CertificateRequired,
                ),
            ) => {
                return Some(format!(
                    "the registry refused the client certificate (or wants one and none is configured): {t}"
                ))
            }
            _ => {}
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directories_add_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = load_host_files("r.example:5000", &[dir.path().join("absent")]).unwrap();
        assert!(files.cas.is_empty() && files.identities.is_empty());
        client_config("r.example:5000", &TlsOptions { certs_dirs: vec![] }, false).unwrap();
    }

    #[test]
    fn a_cert_without_its_key_names_both_paths() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("r.example");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("client.cert"), "x").unwrap();
        let e = load_host_files("r.example", &[dir.path().to_path_buf()])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("client.cert") && e.contains("client.key"), "{e}");
        assert!(e.starts_with("r.example:"), "{e}");
    }

    #[test]
    fn bad_pem_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("r.example");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("ca.crt"), "not a certificate").unwrap();
        let e = load_host_files("r.example", &[dir.path().to_path_buf()])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("ca.crt"), "{e}");
    }

    #[test]
    fn hosts_stay_inside_the_directory() {
        assert!(host_dirs("..", &[PathBuf::from("/d")]).is_err());
        assert!(host_dirs("a/b", &[PathBuf::from("/d")]).is_err());
        assert_eq!(
            host_dirs("127.0.0.1:5000", &[PathBuf::from("/d")]).unwrap(),
            vec![PathBuf::from("/d/127.0.0.1:5000")]
        );
    }
}
