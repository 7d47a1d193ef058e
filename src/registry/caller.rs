//! Credentials that the caller of an export supplies while it runs.
//!
//! A builder daemon pushes with its client's credentials, which it obtains
//! through the client's session, and a shared oxport must push with those,
//! not its own. So when a registry answers `401`, the export asks its caller
//! (see `AuthChallenge` in the proto): for a Bearer challenge, preferably a
//! token for exactly the scopes asked, so the long-lived secret stays on the
//! client side; for Basic, the username and secret the registry needs. The
//! answers live in the registry client of one export and go with it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a registry asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthQuestion {
    /// `host[:port]` as image references name the registry.
    pub host: String,
    /// The token service of a Bearer challenge; empty for Basic.
    pub realm: String,
    pub service: String,
    /// For example `repository:team/app:pull,push`.
    pub scopes: Vec<String>,
}

/// What the caller answered. `Debug` hides the secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthAnswer {
    /// A bearer token for the question's scopes.
    Token(String),
    /// A username and secret.
    Basic { username: String, secret: String },
    /// The caller has nothing for this registry.
    Anonymous,
}

impl std::fmt::Debug for AuthAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthAnswer::Token(_) => f.write_str("Token(<redacted>)"),
            AuthAnswer::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, secret: <redacted> }}")
            }
            AuthAnswer::Anonymous => f.write_str("Anonymous"),
        }
    }
}

/// The future of one answer; `Err` carries a text for the user (never a secret).
pub type AnswerFuture = Pin<Box<dyn Future<Output = Result<AuthAnswer, String>> + Send>>;

/// Asks the caller of an export for credentials.
pub trait AskCaller: Send + Sync {
    fn ask(&self, question: AuthQuestion) -> AnswerFuture;
}

/// A shareable asker.
pub type Asker = Arc<dyn AskCaller>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let t = format!("{:?}", AuthAnswer::Token("tok-123".into()));
        let b = format!(
            "{:?}",
            AuthAnswer::Basic {
                username: "u".into(),
                secret: "s3cret".into()
            }
        );
        assert!(!t.contains("tok-123") && !b.contains("s3cret"), "{t} {b}");
        assert!(b.contains("\"u\""));
    }
}
