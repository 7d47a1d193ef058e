//! Transport security against a real `oxport serve`: TLS and mutual TLS on
//! TCP (certificates made by the `openssl` command), the CLI connecting over
//! TLS, the warning for plain TCP beyond loopback, and the unix socket's
//! mode and group.

mod grpc_support;
mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use grpc_support::{fixture, ServerProc, BIN};
use oxport::client::tls::ClientTls;
use oxport::client::Client;
use support::pki::{issue, make_ca};
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, plus
/// a second CA and a client certificate it signed (which the server must
/// refuse). None when `openssl` is missing outside CI.
fn make_pki(dir: &Path) -> Option<()> {
    support::require_tool("openssl", "TLS and mutual TLS to oxport serve")?;
    make_ca(dir, "ca", "/CN=oxport test ca");
    make_ca(dir, "other-ca", "/CN=oxport test other-ca");
    let client = "extendedKeyUsage=clientAuth\n";
    issue(
        dir,
        "ca",
        "server",
        "/CN=server",
        "subjectAltName=IP:127.0.0.1\n",
    );
    issue(dir, "ca", "client", "/CN=client", client);
    issue(dir, "other-ca", "stranger", "/CN=stranger", client);
    Some(())
}

fn files(dir: &Path, ca: &str, cert: Option<&str>) -> ClientTls {
    ClientTls {
        ca: Some(dir.join(format!("{ca}.pem"))),
        cert: cert.map(|c| dir.join(format!("{c}.pem"))),
        key: cert.map(|c| dir.join(format!("{c}.key"))),
    }
}

/// Health over a TLS connection with these files: Ok(status) or the error.
async fn health_with(addr: &str, tls: &ClientTls) -> Result<ServingStatus, String> {
    let client = Client::connect_tls(addr, tls)
        .await
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(
        Duration::from_secs(20),
        HealthClient::new(client.channel()).check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .map_err(|_| "no answer".to_string())?
    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
    Ok(resp.into_inner().status())
}

fn pem(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_clients_with_a_certificate_of_the_ca() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path();
    if make_pki(dir).is_none() {
        return;
    }
    let (cert, key, ca) = (
        pem(dir, "server.pem"),
        pem(dir, "server.key"),
        pem(dir, "ca.pem"),
    );
    let server = ServerProc::tcp_with(
        "tcp://127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--tls-client-ca",
            ca.to_str().unwrap(),
        ],
    );
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let https = format!("https://127.0.0.1:{port}");

    assert_eq!(
        health_with(&https, &files(dir, "ca", Some("client"))).await,
        Ok(ServingStatus::Serving),
        "a client with a certificate of the CA is admitted"
    );
    let tcp_tls = format!("tcp+tls://127.0.0.1:{port}");
    assert_eq!(
        health_with(&tcp_tls, &files(dir, "ca", Some("client"))).await,
        Ok(ServingStatus::Serving)
    );
    for (what, tls) in [
        ("no client certificate", files(dir, "ca", None)),
        (
            "a certificate of another CA",
            files(dir, "ca", Some("stranger")),
        ),
    ] {
        let r = health_with(&https, &tls).await;
        assert!(r.is_err(), "{what}: admitted ({r:?})");
    }
    // Plain HTTP/2 to a TLS port, and TLS that distrusts the server, fail too.
    let plain = format!("tcp://127.0.0.1:{port}");
    assert!(health_with(&plain, &ClientTls::default()).await.is_err());
    assert!(health_with(&https, &files(dir, "other-ca", Some("client")))
        .await
        .is_err());
    drop(server);

    // The CLI exports over mutual TLS.
    let server = ServerProc::tcp_with(
        "tcp://127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--tls-client-ca",
            ca.to_str().unwrap(),
        ],
    );
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let out = tempfile::tempdir().unwrap();
    let case = fixture("gw_single_art");
    let run = |with_cert: bool| {
        let mut cmd = Command::new(BIN);
        cmd.args(["export", "--result"])
            .arg(&case)
            .arg("--output")
            .arg(format!(
                "type=oci,dest={}",
                out.path().join("o.tar").display()
            ))
            .args(["--addr", &format!("https://127.0.0.1:{port}"), "--tls-ca"])
            .arg(&ca);
        if with_cert {
            cmd.arg("--tls-cert")
                .arg(pem(dir, "client.pem"))
                .arg("--tls-key")
                .arg(pem(dir, "client.key"));
        }
        cmd.output().unwrap()
    };
    let refused = run(false);
    assert!(
        !refused.status.success(),
        "the CLI without a certificate got in"
    );
    assert!(!out.path().join("o.tar").exists());
    let ok = run(true);
    assert!(
        ok.status.success(),
        "CLI over mutual TLS: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.path().join("o.tar").metadata().unwrap().len() > 0);
}

#[test]
fn plain_tcp_beyond_loopback_is_warned_about() {
    let server = ServerProc::tcp_with("tcp://0.0.0.0:0", &[]);
    let line = server.wait_for_line("INSECURE", Duration::from_secs(30));
    assert!(line.contains("WARN"), "{line}");
}

#[test]
fn unix_socket_is_0660_and_owned_by_the_socket_group() {
    // Root may hand it to any group; others to their own primary group.
    let probe = tempfile::NamedTempFile::new().unwrap();
    let meta = probe.as_file().metadata().unwrap();
    let gid = if meta.uid() == 0 { 65534 } else { meta.gid() };
    let server = ServerProc::unix_with(&["--socket-group", &gid.to_string()]);
    server.wait_for_line("listening on", Duration::from_secs(30));
    let meta = std::fs::metadata(server.socket().unwrap()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), gid);
}
