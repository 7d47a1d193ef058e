//! The Bearer token flow end to end: credentials from a Docker config file,
//! the `Bearer` challenge, the token endpoint, and a token that runs out in
//! the middle of a push and must be renewed. The registry here is the test
//! double in `registry_support::fake` (with token auth on): Debian's registry
//! package has no token server to pair it with.

mod registry_support;
mod support;

use std::process::Command;

use registry_support::fake::FakeRegistry;
use registry_support::{example_case, BIN};

const USER: &str = "builder";
const PASSWORD: &str = "s3cret-token-pass";

/// A Docker config directory whose `auths` hold `user:password` for `host`.
fn docker_config(host: &str, password: &str) -> tempfile::TempDir {
    registry_support::docker_config(host, USER, password)
}

fn push(host: &str, config: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(["export", "--result"])
        .arg(example_case())
        .arg("--output")
        .arg(format!(
            "type=image,name={host}/demo:v1,push=true,registry.insecure=true"
        ))
        .env("DOCKER_CONFIG", config)
        .env("OXPORT_REGISTRY_ATTEMPTS", "3")
        .env("OXPORT_REGISTRY_RETRY_DELAY_MS", "20")
        .output()
        .expect("run oxport export")
}

#[test]
fn bearer_tokens_from_docker_config_are_fetched_and_renewed() {
    // Each token is good for 4 requests: a push of the example needs dozens.
    let fake = FakeRegistry::start_with_token(USER, PASSWORD, 4);
    let config = docker_config(&fake.host(), PASSWORD);
    let out = push(&fake.host(), config.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "push failed: {stderr}");
    assert_eq!(fake.tags("demo"), vec!["v1".to_string()]);
    let st = fake.state.lock().unwrap();
    let auth = st.token_auth.as_ref().unwrap();
    assert!(
        auth.issued >= 2,
        "the token must be renewed when it runs out; issued {}",
        auth.issued
    );
    assert!(
        auth.scopes
            .iter()
            .all(|s| s.starts_with("repository:demo:"))
            && auth.scopes.iter().any(|s| s.contains("push")),
        "token scopes: {:?}",
        auth.scopes
    );
    assert!(
        !stderr.contains(PASSWORD),
        "the password must never be printed"
    );
}

#[test]
fn a_wrong_password_is_refused_and_moves_no_tag() {
    let fake = FakeRegistry::start_with_token(USER, PASSWORD, 100);
    let config = docker_config(&fake.host(), "wrong-password");
    let out = push(&fake.host(), config.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong password must fail the push");
    assert!(
        stderr.contains("authentication failed"),
        "the error must say authentication failed: {stderr}"
    );
    assert!(
        !stderr.contains("wrong-password"),
        "no secret in errors: {stderr}"
    );
    assert!(fake.tags("demo").is_empty(), "no tag may move");
}
