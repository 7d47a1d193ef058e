//! Pushes to registries over TLS, against real processes: `docker-registry`
//! served over HTTPS with a CA made in the test (with Basic auth, and with a
//! required client certificate), certificate directories in the Docker
//! layout given with `--registry-certs-dir`, `registry.insecure=true` as
//! BuildKit means it, and the plain-HTTP fall-back of loopback registries.
//! What was pushed is read back with curl.

mod registry_support;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use registry_support::tls::{have_curl, Pki};
use registry_support::{example_case, KillProxy, Registry, Server, BIN, PASSWORD, USER};

/// A Docker config with the test credentials for `host`.
fn docker_config(host: &str) -> tempfile::TempDir {
    registry_support::docker_config(host, USER, PASSWORD)
}

/// oxport with the credentials of `config`, a short retry budget and `env`.
fn oxport(config: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("RUST_LOG")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env("DOCKER_CONFIG", config)
        .env("OXPORT_REGISTRY_ATTEMPTS", "2")
        .env("OXPORT_REGISTRY_RETRY_DELAY_MS", "50");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// `oxport export` of the example to `name` with push and `extra`
/// attributes, with `--registry-certs-dir` when given and the credentials of
/// `config`; returns the output and the response map.
fn push(
    name: &str,
    extra: &str,
    certs: Option<&Path>,
    config: &Path,
) -> (Output, BTreeMap<String, String>) {
    push_env(name, extra, certs, config, &[])
}

/// [`push`] with more environment.
fn push_env(
    name: &str,
    extra: &str,
    certs: Option<&Path>,
    config: &Path,
    env: &[(&str, &str)],
) -> (Output, BTreeMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("meta.json");
    let mut cmd = oxport(config, env);
    cmd.args(["export", "--result"])
        .arg(example_case())
        .arg("--output")
        .arg(format!("type=image,name={name},push=true{extra}"))
        .arg("--metadata-file")
        .arg(&meta);
    if let Some(c) = certs {
        cmd.arg("--registry-certs-dir").arg(c);
    }
    let o = cmd.output().expect("run oxport");
    let response = std::fs::read(&meta)
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_default();
    (o, response)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_ok(o: &Output) {
    assert!(o.status.success(), "oxport failed: {}", stderr(o));
}

/// The PKI and an HTTPS registry, or None when a tool is missing.
fn https_registry(auth: bool, client_cas: bool) -> Option<(Pki, Registry)> {
    if !have_curl() {
        return None;
    }
    let pki = Pki::make()?;
    let reg = pki.registry(auth, client_cas)?;
    Some((pki, reg))
}

#[test]
fn a_push_through_the_ca_file_reaches_an_https_registry_with_basic_auth() {
    let Some((pki, reg)) = https_registry(true, false) else {
        return;
    };
    let certs = pki.certs_dir(&reg.host(), true, false);
    let config = docker_config(&reg.host());
    let name = format!("{}/x:1", reg.host());
    let (o, resp) = push(&name, "", Some(certs.path()), config.path());
    assert_ok(&o);
    let pushed = pki
        .manifest_digest(&reg, "x", "1")
        .expect("the tag is there");
    assert_eq!(pushed, resp["containerimage.digest"]);

    // `inspect` reads it back through the same flag, and not without it.
    let empty = tempfile::tempdir().unwrap();
    let image = format!("docker://{name}");
    for (dir, ok) in [(certs.path(), true), (empty.path(), false)] {
        let o = oxport(config.path(), &[])
            .args([
                "inspect",
                &image,
                "--format",
                "json",
                "--registry-certs-dir",
            ])
            .arg(dir)
            .output()
            .unwrap();
        assert_eq!(o.status.success(), ok, "inspect: {}", stderr(&o));
        if ok {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                text.contains(&pushed),
                "inspect does not show {pushed}: {text}"
            );
        } else {
            assert!(
                stderr(&o).contains("TLS certificate error"),
                "{}",
                stderr(&o)
            );
        }
    }

    // The system's trust store counts too (here through SSL_CERT_FILE).
    let ca = pki.file("ca.pem");
    let system = [("SSL_CERT_FILE", ca.to_str().unwrap())];
    let name = format!("{}/x:2", reg.host());
    let (o, resp) = push_env(&name, "", Some(empty.path()), config.path(), &system);
    assert_ok(&o);
    assert_eq!(
        pki.manifest_digest(&reg, "x", "2")
            .expect("the tag is there"),
        resp["containerimage.digest"]
    );
}

#[test]
fn without_the_ca_the_push_fails_with_a_certificate_error_and_no_plain_http() {
    let Some((pki, reg)) = https_registry(true, false) else {
        return;
    };
    // A proxy records every byte oxport sends (it never fires).
    let proxy = KillProxy::start(reg.port, "never sent", || {});
    let host = format!("127.0.0.1:{}", proxy.port);
    let config = docker_config(&host);
    let empty = tempfile::tempdir().unwrap();
    let (o, _) = push(
        &format!("{host}/x:1"),
        "",
        Some(empty.path()),
        config.path(),
    );
    assert!(
        !o.status.success(),
        "a push to an untrusted registry succeeded"
    );
    let text = stderr(&o);
    assert!(
        text.contains(&format!("{host}: TLS certificate error")),
        "not a certificate error naming {host}: {text}"
    );
    assert!(text.contains("failed verification"), "{text}");
    // Not retried: a retried failure ends as "unavailable after N attempts".
    assert!(!text.contains("attempts"), "{text}");
    assert!(
        proxy.occurrences("\u{16}\u{3}") > 0,
        "no TLS hello was sent"
    );
    assert_eq!(
        proxy.occurrences("HTTP/1.1\r\n"),
        0,
        "a plain HTTP request was sent"
    );
    assert_eq!(
        pki.manifest_digest(&reg, "x", "1"),
        None,
        "something was pushed"
    );
}

#[test]
fn a_registry_that_requires_a_client_certificate_accepts_the_one_in_the_certs_dir() {
    let Some((pki, reg)) = https_registry(false, true) else {
        return;
    };
    let config = docker_config("nowhere.invalid");
    let name = format!("{}/mtls:1", reg.host());

    let without = pki.certs_dir(&reg.host(), true, false);
    let (o, _) = push(&name, "", Some(without.path()), config.path());
    assert!(!o.status.success(), "pushed without a client certificate");
    let text = stderr(&o);
    assert!(
        text.contains(&format!("{}: TLS certificate error", reg.host())),
        "{text}"
    );
    assert!(text.contains("client certificate"), "{text}");
    assert_eq!(pki.manifest_digest(&reg, "mtls", "1"), None);

    // A certificate without its key: an error naming both files.
    let with = pki.certs_dir(&reg.host(), true, true);
    let key = with.path().join(reg.host()).join("client.key");
    let kept = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let (o, _) = push(&name, "", Some(with.path()), config.path());
    assert!(
        !o.status.success(),
        "pushed with a certificate lacking its key"
    );
    let text = stderr(&o);
    assert!(
        text.contains("client.cert") && text.contains(key.to_str().unwrap()),
        "{text}"
    );
    std::fs::write(&key, kept).unwrap();

    let (o, resp) = push(&name, "", Some(with.path()), config.path());
    assert_ok(&o);
    let pushed = pki
        .manifest_digest(&reg, "mtls", "1")
        .expect("the tag is there");
    assert_eq!(pushed, resp["containerimage.digest"]);
}

#[test]
fn insecure_skips_verification_over_https_and_falls_back_to_plain_http() {
    let Some((pki, reg)) = https_registry(true, false) else {
        return;
    };
    let config = docker_config(&reg.host());
    let empty = tempfile::tempdir().unwrap();
    let name = format!("{}/insecure:1", reg.host());
    let (o, resp) = push(
        &name,
        ",registry.insecure=true",
        Some(empty.path()),
        config.path(),
    );
    assert_ok(&o);
    assert_eq!(
        pki.manifest_digest(&reg, "insecure", "1")
            .expect("the tag is there"),
        resp["containerimage.digest"]
    );

    let Some(plain) = Registry::start(false) else {
        return;
    };
    let name = format!("{}/insecure:1", plain.host());
    let (o, resp) = push(&name, ",registry.insecure=true", None, config.path());
    assert_ok(&o);
    let (digest, _) = plain.manifest("insecure", "1").expect("the tag is there");
    assert_eq!(digest, resp["containerimage.digest"]);
}

#[test]
fn a_plain_http_loopback_registry_works_without_attributes() {
    let Some(plain) = Registry::start(false) else {
        return;
    };
    let config = docker_config("nowhere.invalid");
    let name = format!("{}/plain:1", plain.host());
    let (o, resp) = push(&name, "", None, config.path());
    assert_ok(&o);
    let (digest, _) = plain.manifest("plain", "1").expect("the tag is there");
    assert_eq!(digest, resp["containerimage.digest"]);
}

/// One export through a server with the library client.
fn export_via(
    addr: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, oxport::client::ClientError> {
    registry_support::push_example(addr, &[("name", name), ("push", "true")])
}

#[test]
fn oxport_serve_pushes_through_its_registry_certs_dir() {
    let Some((pki, reg)) = https_registry(true, true) else {
        return;
    };
    let certs = pki.certs_dir(&reg.host(), true, true);
    let config = docker_config(&reg.host());
    let server = Server::start_with(
        &[
            "--docker-credentials",
            "--registry-certs-dir",
            certs.path().to_str().unwrap(),
        ],
        &[("DOCKER_CONFIG", config.path().to_str().unwrap())],
    );
    let name = format!("{}/served:1", reg.host());
    let resp = export_via(&server.addr, &name).expect("push through the server");
    assert_eq!(
        pki.manifest_digest(&reg, "served", "1")
            .expect("the tag is there"),
        resp["containerimage.digest"]
    );

    // The same server without the files for this host: a certificate error.
    let empty = tempfile::tempdir().unwrap();
    let bare = Server::start_with(
        &[
            "--docker-credentials",
            "--registry-certs-dir",
            empty.path().to_str().unwrap(),
        ],
        &[("DOCKER_CONFIG", config.path().to_str().unwrap())],
    );
    let err = export_via(&bare.addr, &format!("{}/served:2", reg.host())).unwrap_err();
    assert_eq!(err.code(), Some(tonic::Code::FailedPrecondition), "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
}
