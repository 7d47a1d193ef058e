//! Credentials per request: an export that asks its caller (registry_auth)
//! pushes with what the caller answers, and never with the server's own.
//! A real docker-registry with Basic auth and a real `oxport serve`.

mod registry_support;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use oxport::proto::{AnswerAuthRequest, AuthChallenge};
use registry_support::*;

/// Pushes the example through `server` as `name`, answering every
/// credential request with `answer`; counts the requests.
fn push_answering(
    server: &Server,
    name: &str,
    extra: &[(&str, &str)],
    answer: impl Fn(&AuthChallenge) -> AnswerAuthRequest + Send + Sync + 'static,
) -> (
    Result<std::collections::BTreeMap<String, String>, oxport::client::ClientError>,
    usize,
) {
    let case = oxport::casefile::load(&example_case()).unwrap();
    let mut req = case.request.clone();
    req.exporter = "image".into();
    for (k, v) in [("name", name), ("push", "true")].iter().chain(extra) {
        req.attrs.insert(k.to_string(), v.to_string());
    }
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let answerer: Box<oxport::client::Answerer> = Box::new(move |c: &AuthChallenge| {
        counter.fetch_add(1, Ordering::SeqCst);
        answer(c)
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        let mut client = oxport::client::Client::connect(&server.addr).await?;
        client.upload_missing(&case.layer_blobs()).await?;
        client
            .export_answering(&req, &mut std::io::sink(), &mut |_| {}, Some(&*answerer))
            .await
    });
    (result, asked.load(Ordering::SeqCst))
}

fn basic(c: &AuthChallenge, user: &str, secret: &str) -> AnswerAuthRequest {
    AnswerAuthRequest {
        id: c.id.clone(),
        username: user.into(),
        secret: secret.into(),
        ..Default::default()
    }
}

#[test]
fn pushes_with_the_callers_credentials_only() {
    let Some(reg) = Registry::start(true) else {
        return;
    };
    // The server's own Docker config has good credentials; with a request
    // that brings its own, they must not be used.
    let config = docker_config(&reg.host(), USER, PASSWORD);
    let server = Server::start_with(
        &["--docker-credentials"],
        &[
            ("DOCKER_CONFIG", config.path().to_str().unwrap()),
            ("RUST_LOG", "debug"),
        ],
    );
    let host = reg.host();

    // The right answer: the push succeeds, and the challenge named the host.
    let h = host.clone();
    let (result, asked) = push_answering(&server, &format!("{host}/caller:v1"), &[], move |c| {
        assert_eq!(c.host, h, "the challenge names the registry");
        assert!(c.realm.is_empty(), "docker-registry's htpasswd is Basic");
        assert_eq!(c.id.len(), 32);
        basic(c, USER, PASSWORD)
    });
    let resp = result.expect("the push with the caller's credentials");
    assert!(asked >= 1, "the caller was never asked");
    assert_eq!(
        reg.manifest("caller", "v1").map(|m| m.0),
        Some(resp["containerimage.digest"].clone())
    );

    // A wrong answer: UNAUTHENTICATED naming the registry, although the
    // server's own config would have worked; the tag stays.
    let wrong = "wrong-Secret-4711";
    let (result, _) = push_answering(
        &server,
        &format!("{host}/caller:v2"),
        &[("annotation.org.example.v", "2")],
        move |c| basic(c, USER, wrong),
    );
    let err = result.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::Unauthenticated), "{err}");
    assert!(err.to_string().contains(&host), "{err}");
    assert!(
        !err.to_string().contains(wrong),
        "the error holds the secret"
    );
    assert!(reg.manifest("caller", "v2").is_none(), "a tag was pushed");

    // The caller has nothing: anonymous, refused, with a clear text.
    let (result, _) = push_answering(&server, &format!("{host}/caller:v3"), &[], |c| {
        AnswerAuthRequest {
            id: c.id.clone(),
            ..Default::default()
        }
    });
    let err = result.unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::Unauthenticated), "{err}");
    assert!(err.to_string().contains("no credentials"), "{err}");

    // The caller's own failure reaches the user.
    let (result, _) = push_answering(&server, &format!("{host}/caller:v4"), &[], |c| {
        AnswerAuthRequest {
            id: c.id.clone(),
            error: "credential helper docker-credential-pass failed".into(),
            ..Default::default()
        }
    });
    let err = result.unwrap_err();
    assert!(err.to_string().contains("docker-credential-pass"), "{err}");

    // No secret in the server's log, in clear or in base64.
    let log = server.log();
    for secret in [PASSWORD, wrong] {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{secret}"));
        assert!(!log.contains(secret), "the log has a password");
        assert!(!log.contains(&b64), "the log has a Basic header");
    }
    assert!(
        log.contains("asking the caller for credentials"),
        "debug log missing"
    );
}

#[test]
fn an_answer_nobody_waits_for_is_not_found() {
    let server = Server::start_with(&[], &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let mut rpc = oxport::proto::exporter_client::ExporterClient::connect(format!(
            "http://{}",
            server.addr.trim_start_matches("tcp://")
        ))
        .await
        .unwrap();
        rpc.answer_auth(AnswerAuthRequest {
            id: "0123456789abcdef0123456789abcdef".into(),
            token: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap_err()
    });
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
}

/// A Bearer registry: the caller fetches each token itself, with its own
/// credentials, and answers only the token (as BuildKit's client does for
/// a daemon), so the secret never reaches the server. Tokens run out after
/// 4 requests, so the push asks again and again. The registry is the test
/// double of registry_support::fake: Debian's registry has no token server.
#[test]
fn bearer_tokens_fetched_by_the_caller() {
    use registry_support::fake::FakeRegistry;
    let fake = FakeRegistry::start_with_token(USER, PASSWORD, 4);
    let server = Server::start_with(&[], &[("RUST_LOG", "debug")]);
    let host = fake.host();
    let port: u16 = host.rsplit(':').next().unwrap().parse().unwrap();
    let h = host.clone();
    let push_scopes = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&push_scopes);
    let (result, asked) = push_answering(&server, &format!("{host}/demo:v1"), &[], move |c| {
        assert_eq!(c.host, h);
        assert_eq!(c.realm, format!("http://{h}/token"));
        assert_eq!(c.service, "fake-registry");
        for s in &c.scopes {
            assert!(
                s == "repository:demo:pull,push" || s == "repository:demo:pull",
                "{s}"
            );
            if s.ends_with(",push") {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
        let mut path = format!("/token?service={}", c.service);
        for s in &c.scopes {
            path.push_str(&format!(
                "&scope={}",
                s.replace(':', "%3A").replace(',', "%2C")
            ));
        }
        let resp = http_get(port, &path, "application/json", Some((USER, PASSWORD)));
        assert_eq!(resp.status, 200, "{}", resp.text());
        let token: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        AnswerAuthRequest {
            id: c.id.clone(),
            token: token["token"].as_str().unwrap().to_string(),
            ..Default::default()
        }
    });
    result.expect("the push with the caller's tokens");
    assert_eq!(fake.tags("demo"), vec!["v1".to_string()]);
    assert!(
        asked > 1,
        "tokens were renewed through the caller: asked {asked} times"
    );
    assert!(
        push_scopes.load(Ordering::SeqCst) > 0,
        "no token with push was asked for"
    );
    let log = server.log();
    assert!(!log.contains(PASSWORD), "the log has the password");
    assert!(!log.contains("token-1"), "the log has a token");
}

/// `oxport export --addr` to a running server that has no credentials of
/// its own: the CLI answers from the user's Docker config.
#[test]
fn the_cli_answers_from_the_users_docker_config() {
    let Some(reg) = Registry::start(true) else {
        return;
    };
    let server = Server::start_with(&[], &[]);
    let config = docker_config(&reg.host(), USER, PASSWORD);
    let out = std::process::Command::new(BIN)
        .args(["export", "--addr", &server.addr, "--result"])
        .arg(example_case())
        .arg("--output")
        .arg(format!("type=image,name={}/cli:v1,push=true", reg.host()))
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(reg.manifest("cli", "v1").is_some());

    // Without the user's credentials, the server's lack of them shows.
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["export", "--addr", &server.addr, "--result"])
        .arg(example_case())
        .arg("--output")
        .arg(format!("type=image,name={}/cli:v2,push=true", reg.host()))
        .env("DOCKER_CONFIG", empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no credentials"));
}
