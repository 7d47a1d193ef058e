//! The one error type of an export. Its message is BuildKit's text where
//! BuildKit has one; its kind picks the gRPC status code.

/// What went wrong, coarsely: the server maps it to a gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A bad attribute or a bad build result.
    InvalidArgument,
    /// Attributes that conflict with each other or with the result.
    FailedPrecondition,
    /// A limit was passed.
    ResourceExhausted,
    /// A blob the result names is not in the content store.
    NotFound,
    /// A remote (registry) stayed unreachable after retries.
    Unavailable,
    /// A remote (registry) refused the credentials, or none were found.
    Unauthenticated,
    /// A remote (registry) accepted the credentials but denied the access.
    PermissionDenied,
    /// The caller went away.
    Cancelled,
    /// The request ran past its deadline.
    DeadlineExceeded,
    /// Local I/O failed, or a bug.
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ExportError {
    pub kind: ErrorKind,
    pub message: String,
    /// The attribute or field path the error is about, e.g. `oci-artifact` or
    /// `refs["linux/amd64"][0].digest`.
    pub field: Option<String>,
}

impl ExportError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ExportError {
            kind,
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ExportError {
            kind: ErrorKind::InvalidArgument,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        ExportError {
            kind: ErrorKind::FailedPrecondition,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ExportError::new(ErrorKind::Internal, message)
    }

    /// Prefixes the message with context, keeping kind and field.
    pub fn context(mut self, what: &str) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl From<std::io::Error> for ExportError {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                ErrorKind::Cancelled
            }
            _ => ErrorKind::Internal,
        };
        ExportError::new(kind, e.to_string())
    }
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;

impl ExportError {
    /// Names the attribute or field the error is about.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

/// An error and its causes on one line, "outer: inner: ...", each cause
/// once: the top level of a transport error (hyper's, tonic's) says little,
/// its causes say what went wrong ("Connection refused").
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}
