//! Registry errors. Messages name the registry and the operation, and never
//! carry a credential: no header values, no token, no password.

use crate::error::{ErrorKind, ExportError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused the credentials (or asked for some and none were found).
    #[error("{registry}: authentication failed: {detail}")]
    Unauthenticated { registry: String, detail: String },
    /// Credentials were accepted but the operation is not allowed.
    #[error("{registry}: access denied: {detail}")]
    Denied { registry: String, detail: String },
    /// Connection errors, 5xx or 429 answers outlasted the retry budget.
    #[error("{registry} unavailable after {attempts} attempts: {detail}")]
    Unavailable {
        registry: String,
        attempts: u32,
        detail: String,
    },
    /// A conditional write lost (`If-Match` answered 412).
    #[error("{what}: changed concurrently (precondition failed)")]
    PreconditionFailed { what: String },
    #[error("{what}: not found")]
    NotFound { what: String },
    /// A manifest PUT named a blob or manifest the repository lacks.
    #[error("{what}: the registry lacks content it names: {detail}")]
    ManifestBlobUnknown { what: String, detail: String },
    /// Any other unexpected answer.
    #[error("{what}: unexpected response {status}{detail}")]
    Status {
        what: String,
        status: u16,
        detail: String,
    },
    /// TLS trust failed: the server's certificate did not verify, the
    /// server refused the client certificate, or the certificate files of
    /// the host are unusable. Never retried, never answered with plain HTTP.
    #[error("{registry}: TLS certificate error: {detail}")]
    Certificate { registry: String, detail: String },
    /// A malformed answer or input (bad JSON, digest mismatch, bad address).
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        RegistryError::Io {
            what: what.into(),
            source,
        }
    }

    /// The export error kind this maps to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Unauthenticated { .. } => ErrorKind::Unauthenticated,
            RegistryError::Denied { .. } => ErrorKind::PermissionDenied,
            RegistryError::Unavailable { .. } => ErrorKind::Unavailable,
            RegistryError::PreconditionFailed { .. } => ErrorKind::Unavailable,
            RegistryError::NotFound { .. } => ErrorKind::NotFound,
            // Not UNAVAILABLE: retrying cannot help until someone installs
            // the right CA or client certificate (or fixes the registry's),
            // which is what FAILED_PRECONDITION tells a caller.
            RegistryError::Certificate { .. } => ErrorKind::FailedPrecondition,
            RegistryError::Status { .. }
            | RegistryError::Invalid(_)
            | RegistryError::ManifestBlobUnknown { .. } => ErrorKind::Internal,
            RegistryError::Io { source, .. } => {
                ExportError::from(std::io::Error::from(source.kind())).kind
            }
        }
    }
}

impl From<RegistryError> for ExportError {
    fn from(e: RegistryError) -> Self {
        ExportError::new(e.kind(), e.to_string())
    }
}

/// A short detail from a registry error body (`{"errors":[{"code","message"}]}`),
/// else the start of the body as text. Bodies never echo credentials.
pub fn body_detail(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(errs) = v.get("errors").and_then(|e| e.as_array()) {
            let parts: Vec<String> = errs
                .iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{code}: {msg}")
                        .trim_matches([' ', ':'])
                        .to_string()
                })
                .filter(|s| !s.is_empty())
                .collect();
            if !parts.is_empty() {
                return parts.join("; ");
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    text.chars().take(200).collect()
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_come_from_the_error_body() {
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        assert_eq!(body_detail(body), "UNAUTHORIZED: authentication required");
        assert_eq!(body_detail(b"  page not found\n"), "page not found");
        let e = RegistryError::Unavailable {
            registry: "r".into(),
            attempts: 3,
            detail: "x".into(),
        };
        assert_eq!(ExportError::from(e).kind, ErrorKind::Unavailable);
    }
}
