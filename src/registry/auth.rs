//! Registry authentication: anonymous, Basic, and the Bearer token flow.
//!
//! The scheme is learnt from the first `401` and its `WWW-Authenticate`
//! challenge. Bearer tokens are fetched per scope (`repository:<name>:pull,push`,
//! plus `repository:<source>:pull` for a mount) and fetched again when a
//! request carrying one is refused. Credentials come from a fixed source
//! (the Docker config, given, or none) or from the caller of the export,
//! asked at each challenge ([`super::caller`]). Header values are marked
//! sensitive, and no secret is ever formatted into a log line or an error.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};
use tracing::debug;

use super::caller::{Asker, AuthAnswer, AuthQuestion};
use super::credentials::Credential;
use super::error::{body_detail, RegistryError, Result};
use super::retry::{retryable_status, RetryPolicy};
use super::transport::{self, Transport};

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses the first challenge we can answer (`Bearer` or `Basic`).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(pk, _)| pk.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
        })
    } else if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else {
        None
    }
}

/// `k="v", k2=v2`: quoted strings may hold commas and `\"`.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() {
            return out;
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_string();
        }
        out.push((key, value));
    }
}

/// The scope string of a push to `repo`, with `pull` on each mount source.
pub fn push_scope(repo: &str, mount_from: Option<&str>) -> String {
    let mut s = format!("repository:{repo}:pull,push");
    if let Some(from) = mount_from.filter(|f| *f != repo) {
        s.push_str(&format!(" repository:{from}:pull"));
    }
    s
}

pub fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

#[derive(Debug, Default)]
struct State {
    challenge: Option<Challenge>,
    /// Bearer tokens by scope string.
    tokens: HashMap<String, String>,
    /// The username and secret (or identity token) in use: the fixed one,
    /// or the caller's Basic answer once given.
    credential: Option<Credential>,
}

/// Where credentials come from.
pub enum Origin {
    /// Known up front; `none` says why there is none, for the error when a
    /// registry wants some.
    Fixed {
        credential: Option<Credential>,
        none: String,
    },
    /// Asked of the export's caller at each challenge.
    Caller(Asker),
}

/// The authentication state of one registry.
pub struct Auth {
    registry: String,
    origin: Origin,
    state: Mutex<State>,
    /// One answer at a time: requests refused at once (parallel blob
    /// uploads) wait for the first answer instead of asking again.
    answering: tokio::sync::Mutex<()>,
}

impl Auth {
    pub fn new(registry: &str, credential: Option<Credential>) -> Auth {
        let none = format!("no credentials for {registry} in the Docker config (run docker login)");
        Auth::with_origin(registry, Origin::Fixed { credential, none })
    }

    pub fn with_origin(registry: &str, origin: Origin) -> Auth {
        let credential = match &origin {
            Origin::Fixed { credential, .. } => credential.clone(),
            Origin::Caller(_) => None,
        };
        Auth {
            registry: registry.to_string(),
            origin,
            state: Mutex::new(State {
                credential,
                ..State::default()
            }),
            answering: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `Authorization` value to send for `scope`, if any is known yet.
    pub fn header(&self, scope: &str) -> Option<HeaderValue> {
        let state = self.lock();
        match state.challenge.as_ref()? {
            Challenge::Basic => match &state.credential {
                Some(Credential::Basic { username, password }) => {
                    Some(basic_header(username, password))
                }
                _ => None,
            },
            Challenge::Bearer { .. } => state.tokens.get(scope).map(|t| {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                    .unwrap_or_else(|_| HeaderValue::from_static(""));
                v.set_sensitive(true);
                v
            }),
        }
    }

    fn unauthenticated(&self, detail: impl Into<String>) -> RegistryError {
        RegistryError::Unauthenticated {
            registry: self.registry.clone(),
            detail: detail.into(),
        }
    }

    /// Answers a 401: learns the challenge and, for Bearer, fetches a fresh
    /// token for `scope`. Errors when there is nothing more to try.
    ///
    /// Returns whether the next attempt carries new credentials (a token
    /// fetched here or by a concurrent request). Basic credentials never
    /// change, so a second refusal of them is final.
    pub async fn authorize(
        &self,
        transport: &Transport,
        retry: &RetryPolicy,
        www_authenticate: Option<&str>,
        scope: &str,
    ) -> Result<bool> {
        let challenge = www_authenticate.and_then(parse_challenge).ok_or_else(|| {
            self.unauthenticated("the registry refused the request without a usable challenge")
        })?;
        let refused = self.header(scope);
        let _one_at_a_time = self.answering.lock().await;
        if self.header(scope) != refused {
            // Another request got new credentials while this one waited.
            return Ok(true);
        }
        self.lock().challenge = Some(challenge.clone());
        match challenge {
            Challenge::Basic => {
                if let Origin::Caller(asker) = &self.origin {
                    if self.lock().credential.is_none() {
                        let credential = match self.ask(asker, "", "", scope).await? {
                            AuthAnswer::Basic { username, secret } => Credential::Basic {
                                username,
                                password: secret,
                            },
                            AuthAnswer::Token(_) => return Err(self.unauthenticated(
                                "the registry wants a username and password, the builder answered a token",
                            )),
                            AuthAnswer::Anonymous => return Err(self.unauthenticated(format!(
                                "the builder's client has no credentials for {}",
                                self.registry
                            ))),
                        };
                        self.lock().credential = Some(credential);
                    }
                }
                match (&self.lock().credential, &self.origin) {
                    (Some(Credential::Basic { .. }), _) => Ok(false),
                    (Some(Credential::IdentityToken(_)), _) => Err(self.unauthenticated(
                        "the registry wants a username and password, the Docker config has a token",
                    )),
                    (None, Origin::Fixed { none, .. }) => Err(self.unauthenticated(none.clone())),
                    (None, Origin::Caller(_)) => Err(self.unauthenticated("no credentials")),
                }
            }
            Challenge::Bearer { realm, service } => {
                let token = self
                    .bearer_token(transport, retry, &realm, service.as_deref(), scope)
                    .await?;
                self.lock().tokens.insert(scope.to_string(), token);
                Ok(true)
            }
        }
    }

    /// A token for `scope`: from the caller when it answers with one,
    /// otherwise fetched here with the credential known or answered.
    async fn bearer_token(
        &self,
        transport: &Transport,
        retry: &RetryPolicy,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String> {
        let known = self.lock().credential.clone();
        if let (Origin::Caller(asker), None) = (&self.origin, &known) {
            match self.ask(asker, realm, service.unwrap_or(""), scope).await? {
                AuthAnswer::Token(t) => return Ok(t),
                AuthAnswer::Basic { username, secret } => {
                    let c = Credential::Basic {
                        username,
                        password: secret,
                    };
                    self.lock().credential = Some(c.clone());
                    return self
                        .fetch_token(transport, retry, realm, service, scope, Some(&c))
                        .await;
                }
                AuthAnswer::Anonymous => {}
            }
        }
        self.fetch_token(transport, retry, realm, service, scope, known.as_ref())
            .await
    }

    /// Asks the caller; its failure is an authentication error naming the registry.
    async fn ask(
        &self,
        asker: &Asker,
        realm: &str,
        service: &str,
        scope: &str,
    ) -> Result<AuthAnswer> {
        let question = AuthQuestion {
            host: self.registry.clone(),
            realm: realm.to_string(),
            service: service.to_string(),
            scopes: scope.split(' ').map(String::from).collect(),
        };
        debug!(registry = %self.registry, realm, scope, "asking the caller for credentials");
        asker
            .ask(question)
            .await
            .map_err(|why| self.unauthenticated(format!("no credentials from the builder: {why}")))
    }

    async fn fetch_token(
        &self,
        transport: &Transport,
        retry: &RetryPolicy,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credential: Option<&Credential>,
    ) -> Result<String> {
        let mut params: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            params.push(("service", s));
        }
        for s in scope.split(' ') {
            params.push(("scope", s));
        }
        let mut attempt = 0;
        loop {
            let req = match credential {
                Some(Credential::IdentityToken(refresh)) => {
                    let mut form = params.clone();
                    form.extend([
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh.as_str()),
                        ("client_id", "oxport"),
                    ]);
                    Request::builder()
                        .method(Method::POST)
                        .uri(realm)
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(transport::full(query(&form)))
                }
                cred => {
                    let sep = if realm.contains('?') { '&' } else { '?' };
                    let mut b = Request::builder()
                        .method(Method::GET)
                        .uri(format!("{realm}{sep}{}", query(&params)));
                    if let Some(Credential::Basic { username, password }) = cred {
                        b = b.header(AUTHORIZATION, basic_header(username, password));
                    }
                    b.body(transport::empty())
                }
            }
            .map_err(|e| RegistryError::Invalid(format!("token realm {realm:?}: {e}")))?;
            let failure = match transport.send(req).await {
                Ok(resp) if resp.status().is_success() => {
                    let body =
                        transport::read_body(resp, 1 << 20, transport::idle_timeout_from_env())
                            .await
                            .map_err(|e| RegistryError::io("token response", e))?;
                    return token_from(&body).ok_or_else(|| {
                        RegistryError::Invalid(format!("{realm}: the token answer has no token"))
                    });
                }
                Ok(resp)
                    if resp.status() == StatusCode::UNAUTHORIZED
                        || resp.status() == StatusCode::FORBIDDEN =>
                {
                    let body =
                        transport::read_body(resp, 1 << 16, transport::idle_timeout_from_env())
                            .await
                            .unwrap_or_default();
                    return Err(self.unauthenticated(format!(
                        "the token service refused the credentials: {}",
                        body_detail(&body)
                    )));
                }
                Ok(resp) if retryable_status(resp.status()) => {
                    format!("token service answered {}", resp.status())
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body =
                        transport::read_body(resp, 1 << 16, transport::idle_timeout_from_env())
                            .await
                            .unwrap_or_default();
                    return Err(RegistryError::Status {
                        what: format!("token from {realm}"),
                        status,
                        detail: format!(": {}", body_detail(&body)),
                    });
                }
                Err(e) => e.to_string(),
            };
            attempt += 1;
            if attempt >= retry.attempts {
                return Err(RegistryError::Unavailable {
                    registry: realm.to_string(),
                    attempts: attempt,
                    detail: failure,
                });
            }
            debug!(realm, attempt, error = %failure, "token request failed; retrying");
            crate::metrics::global().registry_retry();
            tokio::time::sleep(retry.delay(attempt - 1, None)).await;
        }
    }
}

fn basic_header(username: &str, password: &str) -> HeaderValue {
    let raw = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut v = HeaderValue::from_str(&format!("Basic {raw}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
    v.set_sensitive(true);
    v
}

fn token_from(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["token", "access_token"]
        .iter()
        .filter_map(|k| v.get(*k).and_then(|t| t.as_str()))
        .find(|t| !t.is_empty())
        .map(String::from)
}

/// `k=v&k2=v2` with RFC 3986 percent-encoding.
pub fn query(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn scopes_and_queries() {
        assert_eq!(push_scope("a/b", None), "repository:a/b:pull,push");
        assert_eq!(
            push_scope("a/b", Some("c")),
            "repository:a/b:pull,push repository:c:pull"
        );
        assert_eq!(
            query(&[("scope", "repository:a/b:pull,push")]),
            "scope=repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }

    #[test]
    fn basic_header_is_sensitive() {
        let auth = Auth::new(
            "r",
            Some(Credential::Basic {
                username: "u".into(),
                password: "p".into(),
            }),
        );
        assert!(auth.header("s").is_none());
        auth.lock().challenge = Some(Challenge::Basic);
        let h = auth.header("s").unwrap();
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().unwrap(), "Basic dTpw");
    }
}
