//! Credentials from the Docker client configuration: `$DOCKER_CONFIG/config.json`
//! or `~/.docker/config.json`, with `auths` entries (`auth`, `username` and
//! `password`, `identitytoken`), a `credsStore`, and per-registry
//! `credHelpers` run through the `docker-credential-<name> get` protocol.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::Value;
use tracing::debug;

use super::error::{RegistryError, Result};

/// The key Docker Hub's credentials are stored under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A credential for one registry. Its `Debug` form hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token, exchanged at the token endpoint.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// The config file: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The key a registry host is looked up under (`docker.io` has its own).
fn lookup_key(host: &str) -> String {
    if host == "docker.io" || host == "registry-1.docker.io" || host == "index.docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        host.to_string()
    }
}

/// `https://host/v1/` and `host` both name `host`.
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// Finds the credential for a registry host (`docker.io`, `ghcr.io`,
/// `127.0.0.1:5000`); `None` means anonymous.
pub fn lookup(host: &str) -> Result<Option<Credential>> {
    let Some(path) = config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RegistryError::io(format!("{}", path.display()), e)),
    };
    let config: Value = serde_json::from_slice(&text).map_err(|e| {
        RegistryError::Invalid(format!("{}: invalid Docker config: {e}", path.display()))
    })?;
    from_config(&config, host, &|helper, key| run_helper(helper, key))
}

/// The lookup over a parsed config; `helper(name, server_url)` runs a credential helper.
pub fn from_config(
    config: &Value,
    host: &str,
    helper: &dyn Fn(&str, &str) -> Result<Option<Credential>>,
) -> Result<Option<Credential>> {
    let key = lookup_key(host);
    let want = key_host(&key);
    let helper_name = config
        .get("credHelpers")
        .and_then(|h| h.as_object())
        .and_then(|h| h.iter().find(|(k, _)| key_host(k) == want))
        .and_then(|(_, v)| v.as_str())
        .or_else(|| config.get("credsStore").and_then(Value::as_str))
        .filter(|s| !s.is_empty());
    if let Some(name) = helper_name {
        if let Some(c) = helper(name, &key)? {
            return Ok(Some(c));
        }
    }
    let Some(auths) = config.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    let Some((_, entry)) = auths.iter().find(|(k, _)| key_host(k) == want) else {
        return Ok(None);
    };
    let s = |k: &str| entry.get(k).and_then(Value::as_str).unwrap_or_default();
    if !s("identitytoken").is_empty() {
        return Ok(Some(Credential::IdentityToken(s("identitytoken").into())));
    }
    if !s("auth").is_empty() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(s("auth").trim())
            .map_err(|_| {
                RegistryError::Invalid(format!("Docker config: invalid auth entry for {host}"))
            })?;
        let text = String::from_utf8_lossy(&raw);
        let Some((u, p)) = text.split_once(':') else {
            return Err(RegistryError::Invalid(format!(
                "Docker config: invalid auth entry for {host}"
            )));
        };
        return Ok(Some(Credential::Basic {
            username: u.into(),
            password: p.trim_end_matches('\0').into(),
        }));
    }
    if !s("username").is_empty() {
        return Ok(Some(Credential::Basic {
            username: s("username").into(),
            password: s("password").into(),
        }));
    }
    Ok(None)
}

/// `docker-credential-<name> get` with the server URL on stdin; prints
/// `{"ServerURL","Username","Secret"}`. A `<token>` user means an identity token.
fn run_helper(name: &str, server: &str) -> Result<Option<Credential>> {
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RegistryError::io(format!("credential helper {program}"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| RegistryError::io(format!("credential helper {program}"), e))?;
    if !out.status.success() {
        // The protocol's "not found" is an exit status with that text; anything
        // else is reported without the helper's output, which may hold secrets.
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("credentials not found") {
            debug!(helper = %program, "no credentials for this registry");
            return Ok(None);
        }
        return Err(RegistryError::Invalid(format!(
            "credential helper {program} failed ({})",
            out.status
        )));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        RegistryError::Invalid(format!("credential helper {program}: unreadable answer"))
    })?;
    let user = v.get("Username").and_then(Value::as_str).unwrap_or("");
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or("");
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if user == "<token>" {
        Credential::IdentityToken(secret.into())
    } else {
        Credential::Basic {
            username: user.into(),
            password: secret.into(),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_helper(_: &str, _: &str) -> Result<Option<Credential>> {
        panic!("no helper expected")
    }

    #[test]
    fn auths_entries() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let config = serde_json::json!({
            "auths": {
                "https://index.docker.io/v1/": {"auth": auth},
                "127.0.0.1:5000": {"username": "bob", "password": "pw"},
                "https://ghcr.io": {"identitytoken": "refresh"}
            }
        });
        assert_eq!(
            from_config(&config, "docker.io", &no_helper).unwrap(),
            Some(Credential::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            })
        );
        assert_eq!(
            from_config(&config, "127.0.0.1:5000", &no_helper).unwrap(),
            Some(Credential::Basic {
                username: "bob".into(),
                password: "pw".into()
            })
        );
        assert_eq!(
            from_config(&config, "ghcr.io", &no_helper).unwrap(),
            Some(Credential::IdentityToken("refresh".into()))
        );
        assert_eq!(from_config(&config, "quay.io", &no_helper).unwrap(), None);
    }

    #[test]
    fn helpers_come_first() {
        let config = serde_json::json!({
            "credsStore": "store",
            "credHelpers": {"gcr.io": "gcloud"},
            "auths": {"gcr.io": {"username": "file", "password": "x"}}
        });
        let helper = |name: &str, url: &str| -> Result<Option<Credential>> {
            Ok(match (name, url) {
                ("gcloud", "gcr.io") => Some(Credential::IdentityToken("t".into())),
                _ => None,
            })
        };
        assert_eq!(
            from_config(&config, "gcr.io", &helper).unwrap(),
            Some(Credential::IdentityToken("t".into()))
        );
        // The store has nothing for quay.io and there is no auths entry.
        assert_eq!(from_config(&config, "quay.io", &helper).unwrap(), None);
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credential::Basic {
            username: "u".into(),
            password: "topsecret".into(),
        };
        assert!(!format!("{c:?}").contains("topsecret"));
        assert!(!format!("{:?}", Credential::IdentityToken("tok".into())).contains("tok"));
    }
}
